// Reference NeoX RoPE (scalar, angles and rotation in double).
#include <cmath>

#include "ops/reference/reference_ops.h"

namespace nibble::ref {

void rope(float* v, int64_t d, int64_t pos, const double* inv_freq) {
  const int64_t half = d / 2;
  for (int64_t j = 0; j < half; ++j) {
    const double a = static_cast<double>(pos) * inv_freq[j];
    const double c = std::cos(a), s = std::sin(a);
    const double x0 = v[j], x1 = v[j + half];
    v[j] = static_cast<float>(x0 * c - x1 * s);
    v[j + half] = static_cast<float>(x1 * c + x0 * s);
  }
}

}  // namespace nibble::ref
