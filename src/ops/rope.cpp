// RoPE tables and rotation (float32 rotation, double angles).
#include "ops/rope.h"

#include <cmath>

namespace nibble {

std::vector<double> rope_inv_freq(int64_t d, double base, const float* factors) {
  std::vector<double> f(static_cast<size_t>(d / 2));
  for (int64_t j = 0; j < d / 2; ++j) {
    f[j] = std::pow(base, -2.0 * static_cast<double>(j) / static_cast<double>(d));
    if (factors != nullptr) f[j] /= static_cast<double>(factors[j]);
  }
  return f;
}

void rope_table(const std::vector<double>& inv_freq, const int64_t* positions, int64_t n,
                float* cos_out, float* sin_out) {
  const int64_t half = static_cast<int64_t>(inv_freq.size());
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t j = 0; j < half; ++j) {
      const double a = static_cast<double>(positions[t]) * inv_freq[j];
      cos_out[t * half + j] = static_cast<float>(std::cos(a));
      sin_out[t * half + j] = static_cast<float>(std::sin(a));
    }
  }
}

void rope_apply(float* x, int64_t n_vec, int64_t d, const float* cos, const float* sin) {
  const int64_t half = d / 2;
  for (int64_t h = 0; h < n_vec; ++h) {
    float* v = x + h * d;
    for (int64_t j = 0; j < half; ++j) {
      const float x0 = v[j], x1 = v[j + half];
      v[j] = x0 * cos[j] - x1 * sin[j];
      v[j + half] = x1 * cos[j] + x0 * sin[j];
    }
  }
}

}  // namespace nibble
