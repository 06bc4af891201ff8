// Cached attention in float32: scores, max-subtracted softmax, weighted sum of V.
#include "ops/attention.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "ops/dot.h"
#include "util/thread_pool.h"

namespace nibble {

void kv_store(const KvView& kv, const float* k, const float* v, int64_t pos0, int64_t n_tokens) {
  const int64_t row = kv.row_size();
  for (int64_t t = 0; t < n_tokens; ++t) {
    std::memcpy(kv.k_at(pos0 + t), k + t * row, static_cast<size_t>(row) * sizeof(float));
    std::memcpy(kv.v_at(pos0 + t), v + t * row, static_cast<size_t>(row) * sizeof(float));
  }
}

void attention(const KvView& kv, const float* q, float* out, int64_t n_tokens, int64_t n_head,
               int64_t pos0, int64_t window, float scale) {
  const int64_t d = kv.head_dim;
  const int64_t group = n_head / kv.n_head_kv;
  const int64_t row = kv.row_size();
  const int64_t n_work = n_tokens * n_head;
  const int64_t max_keys = pos0 + n_tokens;
  const size_t n_p = static_cast<size_t>(window > 0 && window < max_keys ? window : max_keys);
  auto one = [&](int64_t w) {
    thread_local std::vector<float> p;
    if (p.size() < n_p) p.resize(n_p);
    const int64_t t = w / n_head, h = w % n_head;
    const int64_t pos = pos0 + t;
    const int64_t lo = window > 0 && pos - window + 1 > 0 ? pos - window + 1 : 0;
    const int64_t n_keys = pos - lo + 1;
    const int64_t g = h / group;
    const float* qh = q + (t * n_head + h) * d;
    float mx = -INFINITY;
    for (int64_t s = 0; s < n_keys; ++s) {
      const float* ks = kv.k + kv.slot(lo + s) * row + g * d;
      p[s] = dot_f32(qh, ks, d) * scale;
      mx = p[s] > mx ? p[s] : mx;
    }
    float sum = 0.0f;
    for (int64_t s = 0; s < n_keys; ++s) {
      p[s] = std::exp(p[s] - mx);
      sum += p[s];
    }
    float* oh = out + (t * n_head + h) * d;
    std::memset(oh, 0, static_cast<size_t>(d) * sizeof(float));
    for (int64_t s = 0; s < n_keys; ++s) {
      axpy_f32(p[s], kv.v + kv.slot(lo + s) * row + g * d, oh, d);
    }
    const float inv = 1.0f / sum;
    for (int64_t i = 0; i < d; ++i) oh[i] *= inv;
  };
  if (n_work > 1 && max_keys * d * n_work >= (int64_t{1} << 20)) {
    parallel_for(n_work, one);
  } else {
    for (int64_t w = 0; w < n_work; ++w) one(w);
  }
}

}  // namespace nibble
