// KvView: where one attention layer's cached K and V live. The storage belongs to the runtime's
// KvCache; a view is either linear (slot = position; full-attention layers, the whole context)
// or a ring (slot = position mod n_slots; sliding-window layers, which only ever look back
// `window` positions). Rows are post-norm, post-RoPE K and post-norm V.
#pragma once

#include <cstdint>

namespace nibble {

struct KvView {
  float* k = nullptr;  // [n_slots, n_head_kv, head_dim]
  float* v = nullptr;  // [n_slots, n_head_kv, head_dim]
  int64_t n_slots = 0;
  int64_t n_head_kv = 0;
  int64_t head_dim = 0;
  bool ring = false;

  int64_t row_size() const { return n_head_kv * head_dim; }
  int64_t slot(int64_t pos) const { return ring ? pos % n_slots : pos; }
  float* k_at(int64_t pos) const { return k + slot(pos) * row_size(); }
  float* v_at(int64_t pos) const { return v + slot(pos) * row_size(); }
};

}  // namespace nibble
