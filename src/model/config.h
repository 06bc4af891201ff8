// Gemma4Config: the hyper-parameters of a Gemma 4 text model, read from GGUF metadata
// (spec §2.2, keys `gemma4.*`). Differences between layers are data (STYLE §2.2): each layer
// carries its type, head dim, KV heads, MLP width, RoPE base and the layer whose KV it reads.
// Shapes are cross-checked against the tensors when the weights are bound (weights.h).
#pragma once

#include <cstdint>
#include <vector>

#include "gguf/gguf_value.h"
#include "util/result.h"

namespace nibble {

struct Gemma4LayerConfig {
  bool is_sliding = false;  // sliding-window attention (else full/global)
  int64_t head_dim = 0;     // key_length_swa (sliding) or key_length (full)
  int64_t n_head_kv = 0;
  int64_t n_ff = 0;          // dense GeGLU MLP width
  double rope_base = 0.0;    // freq_base_swa (sliding) or freq_base (full)
  int kv_source_layer = -1;  // this layer's index when it owns its KV, else the layer it reads

  bool owns_kv(int self) const { return kv_source_layer == self; }
};

struct Gemma4Config {
  int64_t n_embd = 0;       // H
  int64_t n_layer = 0;      // L
  int64_t n_head = 0;       // query heads, every layer
  int64_t n_ctx_train = 0;  // context_length (0 when absent)
  float eps = 1e-6f;
  int64_t sliding_window = 0;    // W
  int64_t n_embd_per_layer = 0;  // P (0 = no per-layer embeddings)
  int64_t n_shared_kv_layers = 0;
  int64_t n_expert = 0;  // 0 = no MoE
  int64_t n_expert_used = 0;
  int64_t n_ff_exp = 0;
  float final_logit_softcap = 30.0f;  // key absent => 30 (llama.cpp), 0 => no cap
  std::vector<Gemma4LayerConfig> layers;

  // Reads and validates the `gemma4.*` keys. Errors name the key and the numbers.
  static Result<Gemma4Config> from_gguf(const GgufMetadata& md);
};

}  // namespace nibble
