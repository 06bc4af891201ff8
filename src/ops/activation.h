// Element-wise activations in float32: GELU (tanh approximation, computed directly, no lookup
// table), the GeGLU product, and the final logit soft-cap. Oracle: ref::gelu.
#pragma once

#include <cstdint>

namespace nibble {

float gelu(float x);
// gate[i] = gelu(gate[i]) * up[i]
void geglu(float* gate, const float* up, int64_t n);
// x[i] = cap * tanh(x[i] / cap); cap <= 0 leaves x unchanged.
void softcap(float* x, int64_t n, float cap);

}  // namespace nibble
