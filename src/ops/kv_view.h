// KvView: where one attention layer's cached K and V live. The storage belongs to the runtime's
// KvCache; a view is either linear (slot = position; full-attention layers, the whole context)
// or a ring (slot = position mod n_slots; sliding-window layers, which only ever look back
// `window` positions). Rows are post-norm, post-RoPE K and post-norm V, stored as `type`
// (f32, f16, q8_0 or q4_0; ggml's block layouts): one slot row is n_head_kv heads of head_dim
// elements, each head a whole number of blocks, so head g of a row starts at g * head_bytes().
//
// Recent rows at f16 (KIVI-style): a quantized view may also keep the last n_recent positions in
// an f16 ring (rk / rv, n_recent_slots rows of [n_head_kv, head_dim] f16, slot = pos mod
// n_recent_slots, rotated like the quantized rows when `rotate` is set). kv_store writes every
// row to both; a query at position p reads row s from the ring when p - s < n_recent
// (use_recent), else from the quantized rows. The rule depends only on (p, s), so a query's
// result does not depend on how the tokens were batched. n_recent_slots must be at least
// n_recent + n_tokens - 1 for the largest batch (the first query of a batch still reads the
// n_recent - 1 rows before it).
#pragma once

#include <cstdint>

#include "tensor/ggml_type.h"

namespace nibble {

// The element types a KV cache can hold.
inline constexpr bool kv_type_supported(GgmlType t) {
  return t == GgmlType::F32 || t == GgmlType::F16 || t == GgmlType::Q8_0 || t == GgmlType::Q4_0;
}
// Elements per block of a KV type (head_dim must be a multiple of it).
inline constexpr int64_t kv_block_elems(GgmlType t) {
  return t == GgmlType::Q8_0 || t == GgmlType::Q4_0 ? 32 : 1;
}
// Bytes of `n` elements (a multiple of kv_block_elems) of a KV type.
inline constexpr uint64_t kv_bytes(GgmlType t, int64_t n) {
  const uint64_t u = static_cast<uint64_t>(n);
  switch (t) {
    case GgmlType::F32: return u * 4;
    case GgmlType::F16: return u * 2;
    case GgmlType::Q8_0: return u / 32 * 34;
    case GgmlType::Q4_0: return u / 32 * 18;
    default: return 0;
  }
}

struct KvView {
  uint8_t* k = nullptr;  // n_slots rows of row_bytes(): [n_head_kv, head_dim] of `type`
  uint8_t* v = nullptr;  // same layout as k
  GgmlType type = GgmlType::F32;
  int64_t n_slots = 0;
  int64_t n_head_kv = 0;
  int64_t head_dim = 0;
  bool ring = false;
  // How ops/attention reads the cache: the flash kernel (online softmax over key tiles,
  // ops/flash_attention.h) or materialized per-query score rows. Set by the runtime.
  bool flash = true;
  // Rows are stored Hadamard-rotated (ops/kv_rows.h kv_rotate): kv_store rotates K and V before
  // quantizing, attention rotates the queries and its output. On by default for q8_0 / q4_0.
  bool rotate = false;
  // The f16 ring of recent rows (see the top of this file); n_recent 0: none.
  uint8_t* rk = nullptr;
  uint8_t* rv = nullptr;
  int64_t n_recent = 0;
  int64_t n_recent_slots = 0;

  int64_t row_size() const { return n_head_kv * head_dim; }  // elements per slot row
  uint64_t head_bytes() const { return kv_bytes(type, head_dim); }
  uint64_t row_bytes() const { return head_bytes() * static_cast<uint64_t>(n_head_kv); }
  int64_t slot(int64_t pos) const { return ring ? pos % n_slots : pos; }
  uint8_t* k_at(int64_t pos) const { return k + static_cast<uint64_t>(slot(pos)) * row_bytes(); }
  uint8_t* v_at(int64_t pos) const { return v + static_cast<uint64_t>(slot(pos)) * row_bytes(); }
  // Head g of the K / V row at `pos`.
  const uint8_t* k_head(int64_t pos, int64_t g) const {
    return k_at(pos) + static_cast<uint64_t>(g) * head_bytes();
  }
  const uint8_t* v_head(int64_t pos, int64_t g) const {
    return v_at(pos) + static_cast<uint64_t>(g) * head_bytes();
  }
  // A query at position p reads row s (s <= p) from the f16 ring.
  bool use_recent(int64_t p, int64_t s) const { return p - s < n_recent; }
  uint64_t recent_head_bytes() const { return kv_bytes(GgmlType::F16, head_dim); }
  uint64_t recent_row_bytes() const { return recent_head_bytes() * static_cast<uint64_t>(n_head_kv); }
  uint8_t* rk_at(int64_t pos) const {
    return rk + static_cast<uint64_t>(pos % n_recent_slots) * recent_row_bytes();
  }
  uint8_t* rv_at(int64_t pos) const {
    return rv + static_cast<uint64_t>(pos % n_recent_slots) * recent_row_bytes();
  }
  // Head g of the f16 K / V row at `pos` in the ring (n_recent > 0).
  const uint8_t* rk_head(int64_t pos, int64_t g) const {
    return rk_at(pos) + static_cast<uint64_t>(g) * recent_head_bytes();
  }
  const uint8_t* rv_head(int64_t pos, int64_t g) const {
    return rv_at(pos) + static_cast<uint64_t>(g) * recent_head_bytes();
  }
};

}  // namespace nibble
