// Reference GELU (tanh approximation) and softmax (scalar, double).
#include <cmath>

#include "ops/reference/reference_ops.h"

namespace nibble::ref {

float gelu(float x) {
  const double xd = x;
  const double k = std::sqrt(2.0 / M_PI);
  return static_cast<float>(0.5 * xd * (1.0 + std::tanh(k * (xd + 0.044715 * xd * xd * xd))));
}

void softmax(float* x, int64_t n) {
  double mx = x[0];
  for (int64_t i = 1; i < n; ++i) mx = x[i] > mx ? x[i] : mx;
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(x[i] - mx);
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(std::exp(x[i] - mx) / sum);
}

}  // namespace nibble::ref
