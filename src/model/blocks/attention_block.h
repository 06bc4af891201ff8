// Gemma 4 self-attention block (spec §4.5): Q projection + per-head q_norm + RoPE; on layers
// that own their KV, K projection + k_norm + RoPE and V projection (or the raw K projection
// when the layer has no V weight, attention_k_eq_v) + weightless v_norm, stored in the cache;
// KV-shared layers read the cache of their source layer. Scale 1.0, no soft-cap.
// Mirrors Gemma4TextAttention in the reference implementation.
#pragma once

#include <cstdint>

#include "model/activation_observer.h"
#include "ops/kv_view.h"
#include "ops/weight_matrix.h"

namespace nibble {

struct AttentionWeights {
  WeightMatrix q;                 // {H, n_head * d}
  WeightMatrix k;                 // {H, n_head_kv * d} (unused on KV-shared layers)
  WeightMatrix v;                 // {H, n_head_kv * d}, empty => V from the K projection
  WeightMatrix o;                 // {n_head * d, H}
  const float* q_norm = nullptr;  // [d]
  const float* k_norm = nullptr;  // [d]
};

struct AttentionParams {
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  int64_t head_dim = 0;
  int64_t window = 0;   // 0 = full attention
  bool owns_kv = true;  // false: read `kv` as written by the source layer
  float eps = 1e-6f;
  float scale = 1.0f;
  const float* rope_cos = nullptr;         // [n_tokens, head_dim/2]
  const float* rope_sin = nullptr;         // [n_tokens, head_dim/2]
  int layer = -1;                          // for trace()
  ActivationObserver* observer = nullptr;  // sees the q/k/v/o matmul inputs (optional)
};

// x: [n_tokens, H] (attn_norm output); out: [n_tokens, H] (overwritten).
void attention_block(const AttentionWeights& w, const AttentionParams& p, const KvView& kv,
                     const float* x, int64_t n_tokens, int64_t pos0, float* out);

}  // namespace nibble
