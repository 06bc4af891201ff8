// Scalar reference ops: the oracle every fast kernel in ops/ is tested against. Plain loops,
// double accumulation, no threads, no tricks. Never used on the default inference path.
#pragma once

#include <cstdint>

#include "ops/kv_view.h"
#include "tensor/ggml_type.h"

namespace nibble::ref {

// y[i] = x[i] / sqrt(mean(x^2) + eps) * (w ? w[i] : 1). In-place allowed.
void rms_norm(const float* x, const float* w, float* y, int64_t n, float eps);

// NeoX ("rotate-half") RoPE on one head vector of length d, in place: dimension j pairs with
// j + d/2 and turns by angle pos * inv_freq[j] (inv_freq has d/2 entries).
void rope(float* v, int64_t d, int64_t pos, const double* inv_freq);

// y[t, o] = sum_i W[o, i] * x[t, i] with W stored as n_out rows of `type` (ne0 = n_in).
// x: [n_tokens, n_in], y: [n_tokens, n_out].
void matmul(GgmlType type, const uint8_t* w, int64_t n_in, int64_t n_out, const float* x,
            int64_t n_tokens, float* y);

// GELU, tanh approximation (HF gelu_pytorch_tanh).
float gelu(float x);

// Softmax over n values, in place.
void softmax(float* x, int64_t n);

// Causal multi-head attention over a whole sequence, no cache (the oracle for ops/attention).
// q: [n_tokens, n_head, d], k, v: [n_tokens, n_head_kv, d], out: [n_tokens, n_head, d].
// `window` > 0 restricts token t to keys t' with t - t' < window. Query head h uses KV head
// h / (n_head / n_head_kv).
void attention(const float* q, const float* k, const float* v, float* out, int64_t n_tokens,
               int64_t n_head, int64_t n_head_kv, int64_t d, int64_t window, float scale);

// The same attention read from a KV cache of any KV type (the oracle for ops/attention and
// ops/flash_attention): query t (position pos0 + t) attends to the cached rows at positions
// [max(0, pos0 + t - window + 1), pos0 + t], each dequantized with quant/quant.h's reference
// dequantizer and, for a rotated cache (kv.rotate), turned back with ref::hadamard. With an f16
// recent ring (kv.n_recent), row s of query position p comes from the ring when p - s < n_recent.
// q, out: [n_tokens, n_head, kv.head_dim].
void attention_kv(const KvView& kv, const float* q, float* out, int64_t n_tokens, int64_t n_head,
                  int64_t pos0, int64_t window, float scale);

// The KV cache's Hadamard rotation as a plain matrix product: each block of n values (n the
// largest power of two dividing head_dim, at most 512) of each head becomes H x / sqrt(n),
// H[i][j] = (-1)^popcount(i & j). Its own inverse. x: n_heads * head_dim values, in place.
void hadamard(float* x, int64_t n_heads, int64_t head_dim);

}  // namespace nibble::ref
