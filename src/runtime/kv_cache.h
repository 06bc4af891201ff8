// KvCache: the K/V storage of one sequence. Full-attention layers hold the whole context
// (n_ctx slots); sliding-window layers hold a ring of window - 1 + n_batch_max slots (the last
// window - 1 positions plus one batch of new tokens, spec §5.1); KV-shared layers hold nothing
// and get their source layer's view. Rows are [n_slots, n_head_kv, head_dim] per layer, stored
// as the layer kind's KV type (KvTypes: f32, f16, q8_0 or q4_0; default f16 like llama.cpp).
// A q8_0 / q4_0 layer also keeps its last KvTypes::recent positions at f16 (KIVI-style; a ring
// of recent + n_batch_max - 1 slots, at most n_ctx; ops/kv_view.h), which the rows' bytes by
// layer kind include.
//
// Memory by layer kind, for planners and reports: kv_bytes_full() (full-attention layers),
// kv_bytes_swa() (sliding-window layers), layer_bytes(l); KvCache::estimate() gives the same
// numbers without allocating.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "model/model.h"
#include "ops/kv_view.h"
#include "util/result.h"

namespace nibble {

// Element types of the cache, chosen separately for full-attention and sliding-window layers.
struct KvTypes {
  GgmlType full = GgmlType::F16;
  GgmlType swa = GgmlType::F16;
  // Store q8_0 / q4_0 rows Hadamard-rotated (KvView::rotate), as llama.cpp does for quantized
  // caches: outlier channels spread over the block, so 4-bit keys keep their ranking.
  bool rotate_quantized = true;
  // Positions a q8_0 / q4_0 layer also keeps at f16 (KvView::n_recent); 0: none. f32 / f16
  // layers ignore it. On tiny-e it lifts q4_0's top-1 agreement with f16 from 92% to 98%.
  int64_t recent = 32;
};

// The largest KvTypes::recent accepted (SessionOptions::kv_recent, --kv-recent).
inline constexpr int64_t kKvRecentMax = 4096;
// Slots of a quantized layer's f16 recent ring: recent + n_batch_max - 1, at most n_ctx; 0 for
// recent 0 or an f32 / f16 type.
int64_t kv_recent_slots(GgmlType type, int64_t recent, int64_t n_ctx, int64_t n_batch_max);

// "f32", "f16", "q8_0", "q4_0" (case-insensitive) -> the type; an error lists the choices.
Result<GgmlType> parse_kv_type(std::string_view name);
// "f32, f16, q8_0, q4_0": the names parse_kv_type accepts, for help and error text.
inline constexpr const char* kKvTypeNames = "f32, f16, q8_0, q4_0";

// Bytes of a cache (K and V) by layer kind.
struct KvCacheBytes {
  uint64_t full = 0;  // full-attention layers that own their KV
  uint64_t swa = 0;   // sliding-window layers that own their KV
  uint64_t total() const { return full + swa; }
};

class KvCache {
 public:
  // Checks that the types are KV types, that every owning layer's head_dim is a whole number of
  // the type's blocks (32 elements for q8_0 / q4_0) and that recent is in [0, kKvRecentMax].
  static Status check(const std::vector<KvLayerSpec>& layout, KvTypes types);

  // The bytes a cache of this shape would hold, without allocating it.
  static KvCacheBytes estimate(const std::vector<KvLayerSpec>& layout, int64_t n_ctx,
                          int64_t n_batch_max, KvTypes types = {});

  // layout: Model::kv_layout(); n_ctx: positions the sequence may reach; n_batch_max: the most
  // tokens one forward call appends; flash: how attention reads it (KvView::flash). The layout
  // must pass check() (NIBBLE_CHECKed).
  KvCache(const std::vector<KvLayerSpec>& layout, int64_t n_ctx, int64_t n_batch_max,
          KvTypes types = {}, bool flash = true);

  int64_t n_ctx() const { return n_ctx_; }
  int64_t n_batch_max() const { return n_batch_max_; }
  KvTypes types() const { return types_; }
  bool flash() const { return !views_.empty() && views_[0].flash; }
  // One view per layer (shared layers alias their source's storage).
  const std::vector<KvView>& views() const { return views_; }

  // Bytes held: all layers, full-attention layers, sliding-window layers, one layer (0 for a
  // KV-shared layer, which holds nothing).
  uint64_t size_bytes() const { return bytes_.total(); }
  uint64_t kv_bytes_full() const { return bytes_.full; }
  uint64_t kv_bytes_swa() const { return bytes_.swa; }
  KvCacheBytes bytes() const { return bytes_; }
  uint64_t layer_bytes(size_t layer) const {
    return k_[layer].size() + v_[layer].size() + rk_[layer].size() + rv_[layer].size();
  }

 private:
  int64_t n_ctx_;
  int64_t n_batch_max_;
  KvTypes types_;
  KvCacheBytes bytes_;
  std::vector<std::vector<uint8_t>> k_, v_;  // per layer; empty for shared layers
  std::vector<std::vector<uint8_t>> rk_, rv_;  // f16 recent rings; empty without one
  std::vector<KvView> views_;
};

}  // namespace nibble
