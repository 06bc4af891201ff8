// Element-wise activations in float32: GELU (tanh approximation, computed directly, no lookup
// table), the GeGLU product, and the final logit soft-cap; vectorised and threaded for large
// inputs, the same bits either way. Oracle: ref::gelu.
#pragma once

#include <cstdint>

namespace nibble {

// tanh in float32, a few ulp from std::tanh, identical in the scalar and vector code.
float tanh_fast(float x);
float gelu(float x);
// gate[i] = gelu(gate[i]) * up[i]
void geglu(float* gate, const float* up, int64_t n);
// x[i] = cap * tanh(x[i] / cap); cap <= 0 leaves x unchanged.
void softcap(float* x, int64_t n, float cap);

}  // namespace nibble
