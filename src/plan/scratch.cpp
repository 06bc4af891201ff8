// Forward-pass scratch by formula (see scratch.h). Every term names the buffer it mirrors.
#include "plan/scratch.h"

#include <algorithm>

#include "plan/plan.h"

namespace nibble {

namespace {
constexpr uint64_t kF = sizeof(float);
constexpr uint64_t kMatmulRowBlock = 16;  // ops/matmul.cpp kRowBlock
}  // namespace

std::vector<ScratchItem> forward_scratch(const ScratchInput& in) {
  const Gemma4Config& c = *in.cfg;
  const uint64_t T = static_cast<uint64_t>(in.n_batch);
  const uint64_t H = static_cast<uint64_t>(c.n_embd), L = static_cast<uint64_t>(c.n_layer);
  const uint64_t P = static_cast<uint64_t>(c.n_embd_per_layer);
  const uint64_t NH = static_cast<uint64_t>(c.n_head);
  uint64_t d_swa = 0, d_full = 0, d_max = 0, n_ff_max = 0;
  for (const auto& lc : c.layers) {
    (lc.is_sliding ? d_swa : d_full) = static_cast<uint64_t>(lc.head_dim);
    d_max = std::max<uint64_t>(d_max, static_cast<uint64_t>(lc.head_dim));
    n_ff_max = std::max<uint64_t>(n_ff_max, static_cast<uint64_t>(lc.n_ff));
  }
  const bool moe = c.n_expert > 0;

  std::vector<ScratchItem> items;
  auto add = [&](const char* name, uint64_t bytes) {
    if (bytes > 0) items.push_back({name, bytes});
  };
  // gemma4.cpp forward() and the blocks keep their buffers thread_local (util/scratch.h): each
  // grows to its largest use and stays, so they add up.
  add("hidden state h [T, H]", T * H * kF);
  add("block input x [T, H]", T * H * kF);
  add("block output a [T, H]", T * H * kF);
  if (moe) add("MoE branch m2 [T, H]", T * H * kF);
  if (P > 0) add("per-layer inputs u [T, L*P]", T * L * P * kF);
  add("positions [T]", T * sizeof(int64_t));
  add("RoPE tables [2, T, d_swa/2 + d_full/2]", 2 * T * (d_swa / 2 + d_full / 2) * kF);
  uint64_t n_ff_mlp = n_ff_max;
  if (moe) n_ff_mlp = std::max<uint64_t>(n_ff_mlp, static_cast<uint64_t>(c.n_ff_exp));
  add("MLP gate + up [2, T, n_ff]", 2 * T * n_ff_mlp * kF);  // geglu_mlp (dense and experts)
  if (P > 0) {
    add("PLE token row [L*P]", L * P * kF);                  // per_layer_inputs
    add("PLE z [T, P] + y [T, H]", T * P * kF + T * H * kF);  // ple_inject
  }
  if (moe) {
    // moe_block with every token routed to one expert (the worst case): rho, router logits,
    // ids, weights, token lists, expert inputs and outputs; moe_route's p and order.
    const uint64_t E = static_cast<uint64_t>(c.n_expert), K = static_cast<uint64_t>(c.n_expert_used);
    add("MoE routing and expert rows", T * H * kF + T * E * kF + 2 * T * K * 4 + T * (8 + 4) + 2 * T * H * kF + 2 * E * 4);
  }
  // attention_block: q, k, v, o are thread_local and grow to their largest layer (all live at
  // once; a vector that grows frees its old storage, smaller than the others' final sizes).
  uint64_t attn = 0, q_all = 0, kv_all = 0, q_max = 0, row_max = 0, q_grow = 0;
  for (int64_t l = 0; l < c.n_layer; ++l) {
    const auto& lc = c.layers[static_cast<size_t>(l)];
    const uint64_t d = static_cast<uint64_t>(lc.head_dim), kv = static_cast<uint64_t>(lc.n_head_kv);
    const uint64_t q = T * NH * d * kF;
    const uint64_t kvb = lc.owns_kv(static_cast<int>(l)) ? 2 * T * kv * d * kF : 0;
    q_all = std::max(q_all, q);
    kv_all = std::max(kv_all, kvb);
    const bool rotated = lc.is_sliding ? in.kv_rotated_swa : in.kv_rotated_full;
    if (rotated) {
      // attention(): rotated queries (quantized caches). The vector grows when a layer with a
      // larger head comes; while it grows the old and the new storage are both live.
      if (q > q_max && q_max > 0) q_grow = std::max(q_grow, q_max);
      q_max = std::max(q_max, q);
      row_max = std::max(row_max, kv * d * kF);  // kv_store(): one rotated row
      if (lc.is_sliding ? in.kv_q4_swa : in.kv_q4_full) row_max += kv * d * kF;  // q4_0 encode: unit weights
    }
  }
  attn = 2 * q_all + kv_all;  // q and o [T, heads, d], k and v [T, kv_heads, d]
  add("attention q, k, v, output [T, heads, d] (thread_local)", attn);
  add("attention rotated queries [T, heads, d] (quantized KV)", q_max);
  add("attention rotated queries while growing (the old storage)", q_grow);
  add("KV store rotated row [kv_heads, d] (quantized KV)", row_max);

  // Kernels' buffers (thread_local, kept for the process's life). Matmul, integer path: the
  // calling thread's quantized activations [T, n_in] (int8 + a scale per 32 (+ a sum per 16)), and
  // per worker 16 unpacked rows (int8 + scale per 4 + offset per 16).
  const uint64_t th = static_cast<uint64_t>(in.n_threads);
  if (in.int8_n_in_max > 0) {
    const uint64_t n = static_cast<uint64_t>(in.int8_n_in_max);
    add("matmul int8 activations [T, n_in]", T * n + T * (n / 32) * kF + (in.int8_has_min ? T * (n / 16) * kF : 0));
    add("matmul int8 unpacked rows (per thread) [16, n_in]", th * (16 * n + 16 * (n / 4) * kF + 16 * (n / 16) * kF));
    if (in.int8_panels && T >= 16) {  // kPanelMinTokens
      const uint64_t groups = n / (in.int8_k_groups ? 16 : 32);
      add("matmul int8 unsigned activations [T, n_in]", T * n);
      add("matmul int8 panels (per thread) [16, n_in]",
          th * (16 * n + 2 * 16 * groups * 4 + (in.int8_has_min ? 16 * (n / 16) * kF : 0)));
    }
  }
  if (in.int8_row_max > 0) {  // dequant_fast int8_form_row: q, scales, offsets of one row
    const uint64_t n = static_cast<uint64_t>(in.int8_row_max);
    add("row dequantization through int8 (per thread) [n]", th * (n + (n / 4 + 1) * kF + (n / 16 + 1) * kF));
  }
  if (in.float_n_in_max > 0) {
    add("matmul dequantized rows (per thread) [16, n_in]",
        th * kMatmulRowBlock * static_cast<uint64_t>(in.float_n_in_max) * kF);
  }
  // Flash attention (ops/flash_attention.cpp, the default kernel): per thread the running and
  // partial softmax states of a block of 8 tokens x the GQA group x (head_dim + 2), and decoded
  // key/value tiles of 32 rows for non-f32 caches; on the calling thread, when decoding splits a
  // long context over chunks of 256 keys, every chunk's partial states.
  uint64_t states = 0, tiles = 0, partials = 0;
  for (int64_t l = 0; l < c.n_layer; ++l) {
    const auto& lc = c.layers[static_cast<size_t>(l)];
    const uint64_t d = static_cast<uint64_t>(lc.head_dim), kvh = static_cast<uint64_t>(lc.n_head_kv);
    const uint64_t group = kvh > 0 ? NH / kvh : NH;
    const uint64_t bt = std::min<uint64_t>(8, T);
    states = std::max(states, 2 * bt * group * (d + 2) * kF);
    if (lc.is_sliding ? in.kv_quantized_swa : in.kv_quantized_full) {
      // recent rows at f16: their tiles too (near the diagonal both versions are decoded)
      const uint64_t copies = (lc.is_sliding ? in.kv_recent_swa : in.kv_recent_full) ? 4 : 2;
      tiles = std::max(tiles, copies * 32 * d * kF);
    }
    const uint64_t keys = lc.is_sliding ? std::min<uint64_t>(static_cast<uint64_t>(c.sliding_window),
                                                             static_cast<uint64_t>(in.n_ctx))
                                        : static_cast<uint64_t>(in.n_ctx);
    const uint64_t chunks = (keys + 255) / 256 + 1;
    const uint64_t part = kvh * chunks * group * (d + 2);
    if (th > 1 && chunks > 1 && part <= (uint64_t{1} << 24)) partials = std::max(partials, part * kF);
  }
  add("flash attention states (per thread) [8, group, d+2] x2", th * states);
  add("flash attention K/V tiles (per thread) [2 (4 with f16 recent rows), 32, d]", th * tiles);
  add("flash attention chunk partials (decode) [kv, chunks, group, d+2]", partials);

  // runtime/session.cpp: the last-token logits the caller keeps, and a throwaway row for the
  // batches before the last.
  add("logits [V] + middle-batch logits [V]", 2 * static_cast<uint64_t>(in.n_vocab) * kF);
  return items;
}

}  // namespace nibble
