// Gemma4Weights: every tensor the Gemma 4 text forward pass reads, bound by GGUF name with its
// expected shape (spec §3.2). Matrices point into the memory map; 1-D tensors are float32
// copies. Redundant K/V weights on KV-shared layers are accepted and never bound (spec §3.3).
#pragma once

#include <cstdint>
#include <vector>

#include "gguf/gguf_file.h"
#include "model/config.h"
#include "ops/weight_matrix.h"
#include "util/result.h"

namespace nibble {

struct Gemma4LayerWeights {
  std::vector<float> attn_norm, post_attention_norm, ffn_norm, post_ffw_norm;  // [H]
  WeightMatrix attn_q, attn_k, attn_v, attn_output;  // attn_v empty: V from K (k_eq_v)
  std::vector<float> attn_q_norm, attn_k_norm;       // [d]
  WeightMatrix ffn_gate, ffn_up, ffn_down;
  float layer_output_scale = 1.0f;

  bool has_moe = false;
  WeightMatrix ffn_gate_inp;                // {H, E}
  std::vector<float> ffn_gate_inp_scale;    // [H]
  std::vector<float> ffn_down_exps_scale;   // [E]
  WeightMatrix ffn_gate_up_exps;            // {H, 2I, E} (or the split pair below)
  WeightMatrix ffn_gate_exps, ffn_up_exps;  // {H, I, E}
  WeightMatrix ffn_down_exps;               // {I, H, E}
  std::vector<float> pre_ffw_norm_2, post_ffw_norm_1, post_ffw_norm_2;  // [H]

  WeightMatrix inp_gate, proj;   // PLE: {H, P}, {P, H}
  std::vector<float> post_norm;  // PLE: [H]
};

struct Gemma4Weights {
  int64_t n_vocab = 0;
  WeightMatrix token_embd;                 // {H, V}
  WeightMatrix output;                     // {H, V}: output.weight, else token_embd (tied)
  std::vector<float> output_norm;          // [H]
  std::vector<float> rope_freqs;           // [d_full / 2] frequency divisors; empty when absent
  WeightMatrix per_layer_token_embd;       // {L*P, V}
  WeightMatrix per_layer_model_proj;       // {H, L*P}
  std::vector<float> per_layer_proj_norm;  // [P]
  std::vector<Gemma4LayerWeights> layers;

  static Result<Gemma4Weights> bind(const GgufFile& file, const Gemma4Config& c);
};

}  // namespace nibble
