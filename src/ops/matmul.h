// matmul: y = x · W^T for a batch of tokens, the fast path. Integer-quantized weights run on
// int8 dot products with 8-bit activations (ops/int8_dot.h); float weights on float dot
// products over rows dequantized once per batch. Threads split the output rows
// (util/thread_pool). Oracles: ref::matmul in ops/reference, the int8 tests.
#pragma once

#include <cstdint>

#include "ops/weight_matrix.h"

namespace nibble {

// x: [n_tokens, w.n_in], y: [n_tokens, w.n_out] (overwritten).
void matmul(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y);

// y1 = x · W1^T and y2 = x · W2^T (a GeGLU's gate and up). Decoding one token through two
// matrices of the same type and n_in, they run as one job over the pool: one activation
// quantization, one join, and the threads' uneven finish paid once. Otherwise two matmul calls.
void matmul_pair(const WeightMatrix& w1, const WeightMatrix& w2, const float* x, int64_t n_tokens,
                 float* y1, float* y2);

// True when $NIBBLE_MATMUL=float asks for float activations on every weight type (quality over
// speed; the default quantizes activations to 8 bits for the integer-quantized types, as
// llama.cpp does).
bool float_activations();

// Dequantizes row `o` of `w` into `out` (w.n_in floats).
void weight_row(const WeightMatrix& w, int64_t o, float* out);

}  // namespace nibble
