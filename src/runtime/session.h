// Session: one sequence being evaluated by a model: its KV cache and position. eval() checks
// the input (token ids, context room), splits it into batches of at most n_batch tokens
// (prompt processing) and returns logits; decoding is eval() of one token at a time.
// Prompt processing and token-by-token decoding give the same logits (for every KV type and
// either attention kernel).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "model/model.h"
#include "runtime/kv_cache.h"
#include "util/result.h"

namespace nibble {

// Flash attention (ops/flash_attention.h) or the materialized-softmax kernel; auto = on.
enum class FlashAttn : uint8_t { kAuto, kOn, kOff };

struct SessionOptions {
  int64_t n_ctx = 0;      // 0: the model's training context, capped at kDefaultCtx
  int64_t n_batch = 256;  // most tokens per forward call
  GgmlType kv_type_full = GgmlType::F16;  // KV cache of full-attention layers (f32/f16/q8_0/q4_0)
  GgmlType kv_type_swa = GgmlType::F16;   // KV cache of sliding-window layers
  // Positions a q8_0 / q4_0 cache keeps at f16 as well (the last kv_recent of every layer;
  // KvTypes::recent); 0: none. 0 .. kKvRecentMax.
  int64_t kv_recent = 32;
  FlashAttn flash_attn = FlashAttn::kAuto;
  static constexpr int64_t kDefaultCtx = 4096;
};

class Session {
 public:
  // Errors: a negative or huge context, a batch size < 1, a KV type the model's head size
  // cannot hold (q8_0 / q4_0 need head sizes that are multiples of 32), kv_recent out of range.
  static Result<std::unique_ptr<Session>> create(const Model& model, SessionOptions opts = {});

  // Appends tokens to the sequence. logits receives [n, n_vocab] floats: n = tokens.size() when
  // all_logits, else 1 (after the last token). Errors: empty input, an id outside the vocab, or
  // no room left in the context; nothing is evaluated then.
  Status eval(std::span<const int32_t> tokens, bool all_logits, std::vector<float>& logits);

  // Forgets the sequence (position back to 0; cache contents are overwritten as it refills).
  void reset() { n_past_ = 0; }

  int64_t n_past() const { return n_past_; }
  int64_t n_ctx() const { return cache_.n_ctx(); }
  int64_t n_vocab() const { return model_.info().n_vocab; }
  const Model& model() const { return model_; }
  // The cache: its types, bytes by layer kind (kv_bytes_full / kv_bytes_swa), flash setting.
  const KvCache& kv_cache() const { return cache_; }

 private:
  Session(const Model& model, int64_t n_ctx, int64_t n_batch, KvTypes types, bool flash)
      : model_(model), cache_(model.kv_layout(), n_ctx, n_batch, types, flash), n_batch_(n_batch) {}

  const Model& model_;
  KvCache cache_;
  int64_t n_batch_;
  int64_t n_past_ = 0;
};

}  // namespace nibble
