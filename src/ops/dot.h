// Float32 inner-product kernels every fast matmul is built on. All of them compute each
// (row, token) dot product the same way — 8 lane-wise partial sums over i in steps of 8, a fixed
// pairwise reduction of the lanes, then the scalar tail — so a token's result is bit-identical
// whichever kernel (and however many other tokens) computed it: prompt processing and decoding
// agree exactly. Compiled for x86-64-v4, v3 and baseline, chosen at load time.
#pragma once

#include <cstdint>

namespace nibble {

float dot_f32(const float* a, const float* b, int64_t n);

// out[r] = dot(w[r], x) for 4 rows (decode: x is read once for 4 rows).
void dot_4rows(const float* const* w, const float* x, int64_t n, float* out);

// out[t * 4 + r] = dot(w[r], x + t * ldx) for 4 rows and 2 tokens.
void dot_4rows_2tok(const float* const* w, const float* x, int64_t ldx, int64_t n, float* out);

// The same for BF16 weights, widened on the fly (bit-identical with widening the rows first and
// calling dot_f32 / dot_4rows): decoding reads BF16 matrices without a float copy.
float dot_bf16(const uint16_t* a, const float* b, int64_t n);
void dot_4rows_bf16(const uint16_t* const* w, const float* x, int64_t n, float* out);

// y[i] += a * x[i]
void axpy_f32(float a, const float* x, float* y, int64_t n);

}  // namespace nibble
