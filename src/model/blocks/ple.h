// Per-Layer Embeddings of the Gemma 4 "E" models (spec §4.3 and the PLE step of §4.6).
// per_layer_inputs builds u[t, l] once per token from the token id (table row × √P) and the
// scaled embedding (projection × H^-1/2, RMSNorm per layer slice, then (b + a) / √2).
// ple_inject adds layer l's part to the residual stream after the FFN.
#pragma once

#include <cstdint>

#include "model/activation_observer.h"
#include "ops/weight_matrix.h"

namespace nibble {

struct PleGlobalWeights {
  WeightMatrix token_embd;           // per_layer_token_embd {L*P, V}
  WeightMatrix model_proj;           // per_layer_model_proj {H, L*P}
  const float* proj_norm = nullptr;  // per_layer_proj_norm [P]
};

struct PleLayerWeights {
  WeightMatrix inp_gate;             // {H, P}
  WeightMatrix proj;                 // {P, H}
  const float* post_norm = nullptr;  // [H]
};

// tokens [n_tokens]; emb: scaled embeddings [n_tokens, H]; u: [n_tokens, L, P] (overwritten).
void per_layer_inputs(const PleGlobalWeights& w, const int32_t* tokens, const float* emb,
                      int64_t n_tokens, int64_t n_embd, int64_t n_layer, int64_t n_per_layer,
                      float eps, float* u, ActivationObserver* obs = nullptr);

// h [n_tokens, H] += RMSNorm_post(W_proj · (GELU(W_inp_gate · h) ⊙ u[:, layer, :])).
void ple_inject(const PleLayerWeights& w, const float* u, int64_t layer, int64_t n_layer,
                int64_t n_per_layer, int64_t n_tokens, int64_t n_embd, float eps, float* h,
                ActivationObserver* obs = nullptr);

}  // namespace nibble
