// KvCache: the K/V storage of one sequence. Full-attention layers hold the whole context
// (n_ctx slots); sliding-window layers hold a ring of window - 1 + n_batch_max slots (the last
// window - 1 positions plus one batch of new tokens, spec §5.1); KV-shared layers hold nothing
// and get their source layer's view. Float32 rows, [n_slots, n_head_kv, head_dim] per layer.
#pragma once

#include <cstdint>
#include <vector>

#include "model/model.h"
#include "ops/kv_view.h"

namespace nibble {

class KvCache {
 public:
  // layout: Model::kv_layout(); n_ctx: positions the sequence may reach; n_batch_max: the most
  // tokens one forward call appends.
  KvCache(const std::vector<KvLayerSpec>& layout, int64_t n_ctx, int64_t n_batch_max);

  int64_t n_ctx() const { return n_ctx_; }
  int64_t n_batch_max() const { return n_batch_max_; }
  // One view per layer (shared layers alias their source's storage).
  const std::vector<KvView>& views() const { return views_; }
  // Bytes held by the cache.
  uint64_t size_bytes() const;

 private:
  int64_t n_ctx_;
  int64_t n_batch_max_;
  std::vector<std::vector<float>> k_, v_;  // per layer; empty for shared layers
  std::vector<KvView> views_;
};

}  // namespace nibble
