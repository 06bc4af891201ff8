// Reference causal (optionally sliding-window) multi-head attention without a cache.
#include <cmath>
#include <vector>

#include "ops/reference/reference_ops.h"

namespace nibble::ref {

void attention(const float* q, const float* k, const float* v, float* out, int64_t n_tokens,
               int64_t n_head, int64_t n_head_kv, int64_t d, int64_t window, float scale) {
  const int64_t group = n_head / n_head_kv;
  std::vector<double> p(static_cast<size_t>(n_tokens));
  for (int64_t t = 0; t < n_tokens; ++t) {
    const int64_t lo = window > 0 && t - window + 1 > 0 ? t - window + 1 : 0;
    for (int64_t h = 0; h < n_head; ++h) {
      const int64_t g = h / group;
      const float* qh = q + (t * n_head + h) * d;
      double mx = -INFINITY;
      for (int64_t s = lo; s <= t; ++s) {
        const float* ks = k + (s * n_head_kv + g) * d;
        double dot = 0.0;
        for (int64_t i = 0; i < d; ++i) dot += static_cast<double>(qh[i]) * ks[i];
        p[s] = dot * scale;
        mx = p[s] > mx ? p[s] : mx;
      }
      double sum = 0.0;
      for (int64_t s = lo; s <= t; ++s) {
        p[s] = std::exp(p[s] - mx);
        sum += p[s];
      }
      float* oh = out + (t * n_head + h) * d;
      for (int64_t i = 0; i < d; ++i) {
        double acc = 0.0;
        for (int64_t s = lo; s <= t; ++s) acc += p[s] * v[(s * n_head_kv + g) * d + i];
        oh[i] = static_cast<float>(acc / sum);
      }
    }
  }
}

}  // namespace nibble::ref
