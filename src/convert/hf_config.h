// Gemma4HfConfig: a Hugging Face Gemma 4 config.json (text config), validated, with the
// per-layer values derived by the rules of spec gemma4-architecture §2.1 (layer types, full-layer
// head dim and KV heads from either spelling, KV sharing, double-wide MLP).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "util/result.h"

namespace nibble {

struct Gemma4HfConfig {
  uint32_t hidden_size = 0;          // H
  uint32_t n_layer = 0;              // L
  uint32_t n_head = 0;
  uint32_t n_head_kv = 0;            // sliding layers
  uint32_t head_dim = 0;             // sliding layers
  uint32_t intermediate_size = 0;
  uint32_t vocab_size = 0;
  uint32_t max_position_embeddings = 0;
  uint32_t sliding_window = 0;
  uint32_t n_kv_shared_layers = 0;
  uint32_t hidden_size_per_layer_input = 0;  // P (0 = no PLE)
  uint32_t vocab_size_per_layer_input = 0;
  bool attention_k_eq_v = false;
  bool use_double_wide_mlp = false;
  bool tie_word_embeddings = true;
  bool enable_moe = false;
  uint32_t n_expert = 0, n_expert_used = 0, moe_intermediate_size = 0;
  float rms_norm_eps = 1e-6f;
  float final_logit_softcapping = 0.0f;  // 0 = none
  float rope_theta_full = 1e6f, rope_theta_sliding = 1e4f;
  float partial_rotary_factor = 1.0f;    // full layers
  bool rope_full_proportional = false;
  int32_t bos_id = 2, eos_id = 1, pad_id = 0;

  // Per layer.
  std::vector<bool> is_sliding;
  std::vector<uint32_t> layer_head_dim;
  std::vector<uint32_t> layer_n_head_kv;
  std::vector<uint32_t> layer_n_ff;
  uint32_t first_kv_shared = 0;  // layers >= this are KV-shared

  uint32_t full_head_dim() const;     // head dim of full layers (or sliding if none)
  bool is_kv_shared(uint32_t l) const { return l >= first_kv_shared; }
  bool multimodal = false;            // config had a text_config (multimodal checkpoint)
};

// Reads and validates HF_DIR/config.json. Messages name the key and the values.
Result<Gemma4HfConfig> load_gemma4_hf_config(const std::string& path);
// Same, from JSON text (tests, fuzzing).
Result<Gemma4HfConfig> parse_gemma4_hf_config(const std::string& text, const std::string& name);

}  // namespace nibble
