// Reference RMSNorm (scalar, double accumulation).
#include <cmath>

#include "ops/reference/reference_ops.h"

namespace nibble::ref {

void rms_norm(const float* x, const float* w, float* y, int64_t n, float eps) {
  double ss = 0.0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const double inv = 1.0 / std::sqrt(ss / static_cast<double>(n) + eps);
  for (int64_t i = 0; i < n; ++i) {
    const double v = x[i] * inv * (w != nullptr ? w[i] : 1.0);
    y[i] = static_cast<float>(v);
  }
}

}  // namespace nibble::ref
