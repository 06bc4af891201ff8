// matmul: y = x · W^T for a batch of tokens, the default (fast) path. Weight rows are
// dequantized on the fly, once per batch, into a per-thread buffer; threads split the output
// rows (ops/thread_pool). Oracle: ref::matmul in ops/reference.
#pragma once

#include <cstdint>

#include "ops/weight_matrix.h"

namespace nibble {

// x: [n_tokens, w.n_in], y: [n_tokens, w.n_out] (overwritten).
void matmul(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y);

// Dequantizes row `o` of `w` into `out` (w.n_in floats).
void weight_row(const WeightMatrix& w, int64_t o, float* out);

}  // namespace nibble
