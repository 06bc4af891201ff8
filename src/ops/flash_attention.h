// Flash attention on the CPU: causal (optionally sliding-window) attention over a KvView of any
// KV type without a scores buffer of n_keys. Keys are visited in tiles of kFlashTile absolute
// positions; each tile's K and V rows (one KV head) are dequantized to f32 once and reused by
// every query head of the GQA group and every token of the token block; a running max, sum and
// weighted V sum per query (online softmax) absorb tile after tile. Tiles are grouped into
// chunks of kFlashChunk positions; each chunk's partial softmax is merged into the query's total
// in chunk order. Work is split over (KV head, token block), and over chunks too when that gives
// too few tasks (decoding a long context), or else over the group's query heads in even parts
// (decoding a context of one chunk with one KV head): the arithmetic per query is the same either way and
// depends only on its position, so batched prompts and token-by-token decoding agree bit for
// bit. The inner loops (scores of a query against a tile, the V-weighted sum) have AVX2+FMA
// versions that take two query heads at a time, chosen at load time; queries stay f32 (keys are
// dequantized, not queries quantized), so every KV type shares one kernel. With an f16 recent
// ring (KvView::n_recent), a tile that some query of the block reads partly from the ring (near
// the diagonal) is decoded in both versions and each query picks per key; older tiles are
// decoded from the quantized rows only. Oracle:
// ref::attention_kv.
#pragma once

#include <cstdint>

#include "ops/kv_view.h"

namespace nibble {

inline constexpr int64_t kFlashTile = 32;    // keys dequantized together
inline constexpr int64_t kFlashChunk = 256;  // keys per partial softmax (a multiple of the tile)

// How the work is split: kAuto picks by the shape and the thread count; tests force the
// per-chunk split (kChunks) or its absence (kItems) to check that both give the same bits.
enum class FlashSplit : uint8_t { kAuto, kItems, kChunks };

// q: [n_tokens, n_head, head_dim] at positions pos0 ..; out: [n_tokens, n_head, head_dim].
void flash_attention(const KvView& kv, const float* q, float* out, int64_t n_tokens,
                     int64_t n_head, int64_t pos0, int64_t window, float scale,
                     FlashSplit split = FlashSplit::kAuto);

}  // namespace nibble
