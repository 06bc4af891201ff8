// Mixture-of-experts block of Gemma 4 26B-A4B (spec §4.7): a router (weightless RMSNorm,
// × router.scale × H^-1/2, linear, softmax over all experts, top-k, renormalise, × per-expert
// scale) and GeGLU experts with fused gate_up weights. Tokens are grouped by expert so each
// expert's rows are dequantized once per batch. Mirrors Gemma4TextRouter / Gemma4TextExperts.
#pragma once

#include <cstdint>

#include "model/activation_observer.h"
#include "ops/weight_matrix.h"

namespace nibble {

struct MoeWeights {
  WeightMatrix router;                  // {H, E}
  const float* router_scale = nullptr;  // [H]
  const float* expert_scale = nullptr;  // [E]
  WeightMatrix gate_up;                 // {H, 2I, E} fused (gate rows first), or empty
  WeightMatrix gate, up;                // {H, I, E} each, when not fused
  WeightMatrix down;                    // {I, H, E}
  int64_t n_expert = 0;
  int64_t n_expert_used = 0;
  int64_t n_ff_exp = 0;  // I
};

// Routing for one token from its router logits [n_expert] (softmax taken here): writes the k
// chosen expert ids (by descending probability; ties go to the lower id) and their final weights
// (renormalised over the k, times expert_scale).
void moe_route(const float* router_logits, int64_t n_expert, int64_t k, const float* expert_scale,
               int32_t* ids, float* weights);

// router_in: [n_tokens, H] (the residual stream after attention); expert_in: [n_tokens, H]
// (its pre_ffw_norm_2 norm); out: [n_tokens, H] (overwritten). `obs` (optional) sees the router
// input and, per expert, the inputs of its slices (only the tokens routed to it).
void moe_block(const MoeWeights& w, const float* router_in, const float* expert_in,
               int64_t n_tokens, int64_t n_embd, float eps, float* out,
               ActivationObserver* obs = nullptr);

}  // namespace nibble
