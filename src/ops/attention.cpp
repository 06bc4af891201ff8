// Cached attention in float32: scores, max-subtracted softmax, weighted sum of V.
#include "ops/attention.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "ops/dot.h"
#include "ops/flash_attention.h"
#include "ops/kv_rows.h"
#include "util/thread_pool.h"

namespace nibble {

void kv_store(const KvView& kv, const float* k, const float* v, int64_t pos0, int64_t n_tokens) {
  const int64_t row = kv.row_size();
  thread_local std::vector<float> tmp;
  if (kv.rotate && tmp.size() < static_cast<size_t>(row)) tmp.resize(static_cast<size_t>(row));
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int kind = 0; kind < 2; ++kind) {
      const float* src = (kind == 0 ? k : v) + t * row;
      uint8_t* dst = kind == 0 ? kv.k_at(pos0 + t) : kv.v_at(pos0 + t);
      if (kv.rotate) {
        std::memcpy(tmp.data(), src, static_cast<size_t>(row) * sizeof(float));
        kv_rotate(tmp.data(), kv.n_head_kv, kv.head_dim);
        src = tmp.data();
      }
      for (int64_t g = 0; g < kv.n_head_kv; ++g) {
        kv_encode_row(kv.type, src + g * kv.head_dim, dst + g * kv.head_bytes(), kv.head_dim);
      }
      if (kv.n_recent > 0) {  // the same (rotated) row at f16 in the recent ring
        uint8_t* rdst = kind == 0 ? kv.rk_at(pos0 + t) : kv.rv_at(pos0 + t);
        for (int64_t g = 0; g < kv.n_head_kv; ++g) {
          kv_encode_row(GgmlType::F16, src + g * kv.head_dim, rdst + g * kv.recent_head_bytes(),
                        kv.head_dim);
        }
      }
    }
  }
}

void attention(const KvView& kv, const float* q, float* out, int64_t n_tokens, int64_t n_head,
               int64_t pos0, int64_t window, float scale) {
  thread_local std::vector<float> q_rot;
  if (kv.rotate) {  // q.k is invariant when both are rotated; the output comes out rotated
    const size_t n = static_cast<size_t>(n_tokens * n_head * kv.head_dim);
    if (q_rot.size() < n) q_rot.resize(n);
    std::memcpy(q_rot.data(), q, n * sizeof(float));
    kv_rotate(q_rot.data(), n_tokens * n_head, kv.head_dim);
    q = q_rot.data();
  }
  if (kv.flash) {
    flash_attention(kv, q, out, n_tokens, n_head, pos0, window, scale);
  } else {
    attention_materialized(kv, q, out, n_tokens, n_head, pos0, window, scale);
  }
  if (kv.rotate) kv_rotate(out, n_tokens * n_head, kv.head_dim);
}

void attention_materialized(const KvView& kv, const float* q, float* out, int64_t n_tokens,
                            int64_t n_head, int64_t pos0, int64_t window, float scale) {
  const int64_t d = kv.head_dim;
  const int64_t group = n_head / kv.n_head_kv;
  const int64_t n_work = n_tokens * n_head;
  const int64_t max_keys = pos0 + n_tokens;
  const size_t n_p = static_cast<size_t>(window > 0 && window < max_keys ? window : max_keys);
  const bool direct = kv.type == GgmlType::F32 && kv.n_recent == 0;  // rows are read in place
  auto one = [&](int64_t w) {
    thread_local std::vector<float> p, kbuf, vbuf;
    if (p.size() < n_p) p.resize(n_p);
    const int64_t t = w / n_head, h = w % n_head;
    const int64_t pos = pos0 + t;
    const int64_t lo = window > 0 && pos - window + 1 > 0 ? pos - window + 1 : 0;
    const int64_t n_keys = pos - lo + 1;
    const int64_t g = h / group;
    if (!direct && kbuf.size() < static_cast<size_t>(n_keys * d)) {
      kbuf.resize(static_cast<size_t>(n_keys * d));
      vbuf.resize(static_cast<size_t>(n_keys * d));
    }
    auto k_row = [&](int64_t s) {
      return direct ? reinterpret_cast<const float*>(kv.k_head(lo + s, g)) : kbuf.data() + s * d;
    };
    auto v_row = [&](int64_t s) {
      return direct ? reinterpret_cast<const float*>(kv.v_head(lo + s, g)) : vbuf.data() + s * d;
    };
    if (!direct) {
      for (int64_t s = 0; s < n_keys; ++s) {
        if (kv.use_recent(pos, lo + s)) {
          kv_decode_row(GgmlType::F16, kv.rk_head(lo + s, g), kbuf.data() + s * d, d);
          kv_decode_row(GgmlType::F16, kv.rv_head(lo + s, g), vbuf.data() + s * d, d);
        } else {
          kv_decode_row(kv.type, kv.k_head(lo + s, g), kbuf.data() + s * d, d);
          kv_decode_row(kv.type, kv.v_head(lo + s, g), vbuf.data() + s * d, d);
        }
      }
    }
    const float* qh = q + (t * n_head + h) * d;
    float mx = -INFINITY;
    for (int64_t s = 0; s < n_keys; ++s) {
      p[s] = dot_f32(qh, k_row(s), d) * scale;
      mx = p[s] > mx ? p[s] : mx;
    }
    float sum = 0.0f;
    for (int64_t s = 0; s < n_keys; ++s) {
      p[s] = std::exp(p[s] - mx);
      sum += p[s];
    }
    float* oh = out + (t * n_head + h) * d;
    std::memset(oh, 0, static_cast<size_t>(d) * sizeof(float));
    for (int64_t s = 0; s < n_keys; ++s) axpy_f32(p[s], v_row(s), oh, d);
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
