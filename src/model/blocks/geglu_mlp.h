// GeGLU feed-forward block: out = W_down · (GELU_tanh(W_gate · x) ⊙ (W_up · x)). Used by the
// dense MLP and, per expert, by the MoE block (mirrors Gemma4MLP in the reference).
#pragma once

#include <cstdint>

#include "model/activation_observer.h"
#include "ops/weight_matrix.h"

namespace nibble {

// x: [n_tokens, n_embd]; out: [n_tokens, n_embd] (overwritten). gate, up: {n_embd, n_ff};
// down: {n_ff, n_embd}. `obs` (optional) sees the inputs of gate, up and down; when gate and up
// are the two halves of one fused matrix (same tensor, same expert) their shared input is
// reported once.
void geglu_mlp(const WeightMatrix& gate, const WeightMatrix& up, const WeightMatrix& down,
               const float* x, int64_t n_tokens, float* out, ActivationObserver* obs = nullptr);

}  // namespace nibble
