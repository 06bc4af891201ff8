// KV cache allocation: linear for full layers, ring for sliding layers, aliases for shared ones.
#include "runtime/kv_cache.h"

#include <algorithm>
#include <cctype>
#include <string>

#include "util/check.h"
#include "util/text.h"

namespace nibble {
namespace {

bool owns(const std::vector<KvLayerSpec>& layout, size_t l) {
  return layout[l].source_layer == static_cast<int>(l);
}

// Slots of layer l: a ring for a sliding layer when the ring is shorter than the context.
int64_t n_slots(const KvLayerSpec& s, int64_t n_ctx, int64_t n_batch_max, bool* ring) {
  const int64_t ring_slots = s.window - 1 + n_batch_max;
  *ring = s.window > 0 && ring_slots < n_ctx;
  return *ring ? ring_slots : n_ctx;
}

}  // namespace

int64_t kv_recent_slots(GgmlType type, int64_t recent, int64_t n_ctx, int64_t n_batch_max) {
  if (recent <= 0 || kv_block_elems(type) == 1) return 0;
  return std::min(recent + n_batch_max - 1, n_ctx);
}

Result<GgmlType> parse_kv_type(std::string_view name) {
  std::string low(name);
  for (char& c : low) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::Q8_0, GgmlType::Q4_0}) {
    if (low == ggml_type_name(t)) return t;
  }
  return make_error(ErrorCode::kInvalidArgument, "'%s' is not a KV cache type (choose %s)",
                    printable(name).c_str(), kKvTypeNames);
}

Status KvCache::check(const std::vector<KvLayerSpec>& layout, KvTypes types) {
  for (GgmlType t : {types.full, types.swa}) {
    if (!kv_type_supported(t)) {
      return make_error(ErrorCode::kInvalidArgument,
                        "KV cache type %s is not supported (choose %s)", ggml_type_name(t),
                        kKvTypeNames);
    }
  }
  if (types.recent < 0 || types.recent > kKvRecentMax) {
    return make_error(ErrorCode::kInvalidArgument,
                      "KV recent positions %lld are out of range (choose 0 to %lld)",
                      static_cast<long long>(types.recent), static_cast<long long>(kKvRecentMax));
  }
  for (size_t l = 0; l < layout.size(); ++l) {
    if (!owns(layout, l)) continue;
    const GgmlType t = layout[l].window > 0 ? types.swa : types.full;
    if (layout[l].head_dim <= 0 || layout[l].head_dim % kv_block_elems(t) != 0) {
      return make_error(ErrorCode::kInvalidArgument,
                        "KV cache type %s needs a head size that is a multiple of %lld, but layer "
                        "%zu has head size %lld (use --kv-type f16 or f32)",
                        ggml_type_name(t), static_cast<long long>(kv_block_elems(t)), l,
                        static_cast<long long>(layout[l].head_dim));
    }
  }
  return ok_status();
}

KvCacheBytes KvCache::estimate(const std::vector<KvLayerSpec>& layout, int64_t n_ctx,
                               int64_t n_batch_max, KvTypes types) {
  KvCacheBytes b;
  for (size_t l = 0; l < layout.size(); ++l) {
    if (!owns(layout, l)) continue;
    const KvLayerSpec& s = layout[l];
    bool ring = false;
    const int64_t slots = n_slots(s, n_ctx, n_batch_max, &ring);
    const GgmlType t = s.window > 0 ? types.swa : types.full;
    const int64_t recent_slots = kv_recent_slots(t, types.recent, n_ctx, n_batch_max);
    const uint64_t bytes = 2 * static_cast<uint64_t>(s.n_head_kv) *
                           (static_cast<uint64_t>(slots) * kv_bytes(t, s.head_dim) +
                            static_cast<uint64_t>(recent_slots) * kv_bytes(GgmlType::F16, s.head_dim));
    (s.window > 0 ? b.swa : b.full) += bytes;
  }
  return b;
}

KvCache::KvCache(const std::vector<KvLayerSpec>& layout, int64_t n_ctx, int64_t n_batch_max,
                 KvTypes types, bool flash)
    : n_ctx_(n_ctx), n_batch_max_(n_batch_max), types_(types) {
  NIBBLE_CHECK(check(layout, types).ok(), "kv cache: types must pass KvCache::check");
  const size_t n = layout.size();
  k_.resize(n);
  v_.resize(n);
  rk_.resize(n);
  rv_.resize(n);
  views_.resize(n);
  for (size_t l = 0; l < n; ++l) {
    const KvLayerSpec& s = layout[l];
    if (!owns(layout, l)) continue;
    KvView& view = views_[l];
    view.type = s.window > 0 ? types.swa : types.full;
    view.n_head_kv = s.n_head_kv;
    view.head_dim = s.head_dim;
    view.flash = flash;
    view.rotate = types.rotate_quantized && kv_block_elems(view.type) > 1;
    view.n_slots = n_slots(s, n_ctx, n_batch_max, &view.ring);
    const size_t bytes = static_cast<size_t>(view.n_slots) * view.row_bytes();
    k_[l].assign(bytes, 0);
    v_[l].assign(bytes, 0);
    view.k = k_[l].data();
    view.v = v_[l].data();
    (s.window > 0 ? bytes_.swa : bytes_.full) += 2 * static_cast<uint64_t>(bytes);
    view.n_recent_slots = kv_recent_slots(view.type, types.recent, n_ctx, n_batch_max);
    if (view.n_recent_slots > 0) {
      view.n_recent = types.recent;
      const size_t rbytes = static_cast<size_t>(view.n_recent_slots) * view.recent_row_bytes();
      rk_[l].assign(rbytes, 0);
      rv_[l].assign(rbytes, 0);
      view.rk = rk_[l].data();
      view.rv = rv_[l].data();
      (s.window > 0 ? bytes_.swa : bytes_.full) += 2 * static_cast<uint64_t>(rbytes);
    }
  }
  for (size_t l = 0; l < n; ++l) {
    const int src = layout[l].source_layer;
    if (src == static_cast<int>(l)) continue;
    NIBBLE_CHECK(src >= 0 && src < static_cast<int>(l) && layout[src].source_layer == src,
                 "kv cache: a shared layer must read an earlier owning layer");
    views_[l] = views_[src];
  }
}

}  // namespace nibble
