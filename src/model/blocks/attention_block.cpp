// Self-attention block over a batch of tokens with the KV cache.
#include "model/blocks/attention_block.h"

#include <algorithm>
#include <vector>

#include "model/trace.h"
#include "ops/attention.h"
#include "ops/matmul.h"
#include "ops/norm.h"
#include "ops/rope.h"

namespace nibble {
namespace {

void grow(std::vector<float>& v, int64_t n) {
  if (v.size() < static_cast<size_t>(n)) v.resize(static_cast<size_t>(n));
}

}  // namespace

void attention_block(const AttentionWeights& w, const AttentionParams& p, const KvView& kv,
                     const float* x, int64_t n_tokens, int64_t pos0, float* out) {
  const int64_t d = p.head_dim, half = d / 2;
  const int64_t q_size = p.n_head * d, kv_size = p.n_head_kv * d;
  // Scratch reused across calls (grown, never shrunk): no allocation per decoded token.
  thread_local std::vector<float> q, k, v, o;
  grow(q, n_tokens * q_size);  // [n_tokens, n_head, d]
  observe_input(p.observer, w.q, x, n_tokens);
  matmul(w.q, x, n_tokens, q.data());
  rms_norm_rows(q.data(), w.q_norm, q.data(), n_tokens * p.n_head, d, p.eps);
  for (int64_t t = 0; t < n_tokens; ++t) {
    rope_apply(q.data() + t * q_size, p.n_head, d, p.rope_cos + t * half, p.rope_sin + t * half);
  }
  trace(q.data(), n_tokens, q_size, "q_rope", p.layer);

  if (p.owns_kv) {
    grow(k, n_tokens * kv_size);  // [n_tokens, n_head_kv, d]
    grow(v, n_tokens * kv_size);  // [n_tokens, n_head_kv, d]
    observe_input(p.observer, w.k, x, n_tokens);
    matmul(w.k, x, n_tokens, k.data());
    if (w.v.empty()) {
      // attention_k_eq_v: V is the raw K projection
      std::copy(k.begin(), k.begin() + n_tokens * kv_size, v.begin());
    } else {
      observe_input(p.observer, w.v, x, n_tokens);
      matmul(w.v, x, n_tokens, v.data());
    }
    rms_norm_rows(k.data(), w.k_norm, k.data(), n_tokens * p.n_head_kv, d, p.eps);
    rms_norm_rows(v.data(), nullptr, v.data(), n_tokens * p.n_head_kv, d, p.eps);
    for (int64_t t = 0; t < n_tokens; ++t) {
      rope_apply(k.data() + t * kv_size, p.n_head_kv, d, p.rope_cos + t * half,
                 p.rope_sin + t * half);
    }
    trace(k.data(), n_tokens, kv_size, "k_rope", p.layer);
    trace(v.data(), n_tokens, kv_size, "v_norm", p.layer);
    kv_store(kv, k.data(), v.data(), pos0, n_tokens);
  }

  grow(o, n_tokens * q_size);  // [n_tokens, n_head, d]
  attention(kv, q.data(), o.data(), n_tokens, p.n_head, pos0, p.window, p.scale);
  trace(o.data(), n_tokens, q_size, "attn_heads", p.layer);
  observe_input(p.observer, w.o, o.data(), n_tokens);
  matmul(w.o, o.data(), n_tokens, out);
}

}  // namespace nibble
