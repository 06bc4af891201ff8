// KV cache allocation: linear for full layers, ring for sliding layers, aliases for shared ones.
#include "runtime/kv_cache.h"

#include <algorithm>

#include "util/check.h"

namespace nibble {

KvCache::KvCache(const std::vector<KvLayerSpec>& layout, int64_t n_ctx, int64_t n_batch_max)
    : n_ctx_(n_ctx), n_batch_max_(n_batch_max) {
  const size_t n = layout.size();
  k_.resize(n);
  v_.resize(n);
  views_.resize(n);
  for (size_t l = 0; l < n; ++l) {
    const KvLayerSpec& s = layout[l];
    if (s.source_layer != static_cast<int>(l)) continue;
    KvView& view = views_[l];
    view.n_head_kv = s.n_head_kv;
    view.head_dim = s.head_dim;
    const int64_t ring_slots = s.window - 1 + n_batch_max;
    view.ring = s.window > 0 && ring_slots < n_ctx;
    view.n_slots = view.ring ? ring_slots : n_ctx;
    const size_t elems = static_cast<size_t>(view.n_slots * view.row_size());
    k_[l].assign(elems, 0.0f);
    v_[l].assign(elems, 0.0f);
    view.k = k_[l].data();
    view.v = v_[l].data();
  }
  for (size_t l = 0; l < n; ++l) {
    const int src = layout[l].source_layer;
    if (src == static_cast<int>(l)) continue;
    NIBBLE_CHECK(src >= 0 && src < static_cast<int>(l) && layout[src].source_layer == src,
                 "kv cache: a shared layer must read an earlier owning layer");
    views_[l] = views_[src];
  }
}

uint64_t KvCache::size_bytes() const {
  uint64_t total = 0;
  for (size_t l = 0; l < k_.size(); ++l) total += (k_[l].size() + v_[l].size()) * sizeof(float);
  return total;
}

}  // namespace nibble
