// Per-layer embeddings: computation of the per-layer inputs and their injection.
#include "model/blocks/ple.h"

#include <cmath>

#include "ops/activation.h"
#include "ops/matmul.h"
#include "ops/norm.h"
#include "util/scratch.h"

namespace nibble {

void per_layer_inputs(const PleGlobalWeights& w, const int32_t* tokens, const float* emb,
                      int64_t n_tokens, int64_t n_embd, int64_t n_layer, int64_t n_per_layer,
                      float eps, float* u, ActivationObserver* obs) {
  const int64_t n_all = n_layer * n_per_layer;
  // Context part b = (W_plm · e) * H^-1/2, then RMSNorm per layer slice.
  observe_input(obs, w.model_proj, emb, n_tokens);
  matmul(w.model_proj, emb, n_tokens, u);  // [n_tokens, L*P]
  const float proj_scale = 1.0f / std::sqrt(static_cast<float>(n_embd));
  for (int64_t i = 0; i < n_tokens * n_all; ++i) u[i] *= proj_scale;
  rms_norm_rows(u, w.proj_norm, u, n_tokens * n_layer, n_per_layer, eps);
  // Token-identity part a = table row * √P; u = (b + a) / √2.
  const float tok_scale = std::sqrt(static_cast<float>(n_per_layer));
  const float inv_sqrt2 = 1.0f / std::sqrt(2.0f);
  thread_local ScratchBuffer<float> row_buf;
  float* row = row_buf.get(static_cast<size_t>(n_all));
  for (int64_t t = 0; t < n_tokens; ++t) {
    weight_row(w.token_embd, tokens[t], row);
    float* ut = u + t * n_all;
    for (int64_t i = 0; i < n_all; ++i) ut[i] = (ut[i] + row[i] * tok_scale) * inv_sqrt2;
  }
}

void ple_inject(const PleLayerWeights& w, const float* u, int64_t layer, int64_t n_layer,
                int64_t n_per_layer, int64_t n_tokens, int64_t n_embd, float eps, float* h,
                ActivationObserver* obs) {
  thread_local ScratchBuffer<float> z_buf, y_buf;
  float* z = z_buf.get(static_cast<size_t>(n_tokens * n_per_layer));  // [n_tokens, P]
  float* y = y_buf.get(static_cast<size_t>(n_tokens * n_embd));       // [n_tokens, H]
  observe_input(obs, w.inp_gate, h, n_tokens);
  matmul(w.inp_gate, h, n_tokens, z);
  for (int64_t t = 0; t < n_tokens; ++t) {
    const float* ul = u + (t * n_layer + layer) * n_per_layer;
    float* zt = z + t * n_per_layer;
    for (int64_t i = 0; i < n_per_layer; ++i) zt[i] = gelu(zt[i]) * ul[i];
  }
  observe_input(obs, w.proj, z, n_tokens);
  matmul(w.proj, z, n_tokens, y);
  rms_norm_rows(y, w.post_norm, y, n_tokens, n_embd, eps);
  for (int64_t i = 0; i < n_tokens * n_embd; ++i) h[i] += y[i];
}

}  // namespace nibble
