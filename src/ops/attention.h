// Cached causal attention, the fast path. kv_store writes a batch's K/V rows into a layer's
// cache (quantizing them to the cache's type); attention then lets each query (at position
// pos0 + t) attend to cached keys [max(0, p - window + 1), p] (window 0 = unlimited). Query
// head h reads KV head h / (n_head / n_head_kv). With kv.flash it runs the flash kernel
// (ops/flash_attention.h); otherwise one (token, head) per task materializes that query's
// scores, softmax and weighted sum (dequantizing the rows it reads). Both read every KV type,
// and a query's result never depends on how the tokens were split into batches. A view with an
// f16 recent ring (KvView::n_recent) gets every row in both stores, and a query reads its last
// n_recent rows from the ring (ops/kv_view.h).
// Oracle: ref::attention_kv.
#pragma once

#include <cstdint>

#include "ops/kv_view.h"

namespace nibble {

// k, v: [n_tokens, n_head_kv, head_dim] for positions pos0 .. pos0 + n_tokens - 1.
void kv_store(const KvView& kv, const float* k, const float* v, int64_t pos0, int64_t n_tokens);

// q: [n_tokens, n_head, head_dim]; out: [n_tokens, n_head, head_dim].
void attention(const KvView& kv, const float* q, float* out, int64_t n_tokens, int64_t n_head,
               int64_t pos0, int64_t window, float scale);

// The materialized-softmax path (what attention runs when !kv.flash).
void attention_materialized(const KvView& kv, const float* q, float* out, int64_t n_tokens,
                            int64_t n_head, int64_t pos0, int64_t window, float scale);

}  // namespace nibble
