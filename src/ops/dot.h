// dot_f32: the float32 inner product every fast kernel is built on. Compiled for several ISAs
// (AVX-512, AVX2, baseline) and chosen at load time; accumulates in float32.
#pragma once

#include <cstdint>

namespace nibble {

float dot_f32(const float* a, const float* b, int64_t n);
// y[i] += a * x[i]
void axpy_f32(float a, const float* x, float* y, int64_t n);

}  // namespace nibble
