// dot_f32 / axpy_f32 with per-ISA clones (GCC target_clones resolves once, via ifunc).
#include "ops/dot.h"

namespace nibble {

__attribute__((target_clones("avx512f", "avx2", "default")))
float dot_f32(const float* a, const float* b, int64_t n) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

__attribute__((target_clones("avx512f", "avx2", "default")))
void axpy_f32(float a, const float* x, float* y, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

}  // namespace nibble
