// RMSNorm, fast path: y = x / sqrt(mean(x^2) + eps) * w, w applied as stored (Gemma 4 does
// not add 1). w == nullptr gives the weightless norm (V norm, router norm). Oracle: ref::rms_norm.
#pragma once

#include <cstdint>

namespace nibble {

// One vector of n; in place allowed.
void rms_norm(const float* x, const float* w, float* y, int64_t n, float eps);
// n_rows consecutive vectors of n (e.g. [n_tokens, n_embd] or [n_tokens * n_head, head_dim]);
// w has n entries and is shared by all rows. In place allowed.
void rms_norm_rows(const float* x, const float* w, float* y, int64_t n_rows, int64_t n, float eps);

}  // namespace nibble
