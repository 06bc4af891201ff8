// The GGUF layout of a Gemma 4 model, from its Hugging Face config alone: every tensor's GGUF
// name, HF source name and shape (spec gemma4-architecture §3), and the gemma4.* metadata keys
// (§2.2). Shared by `convert` (which fills the tensors from safetensors), and by anything that
// needs a model's exact shape without its weights (memory planning, synthetic models).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "convert/hf_config.h"
#include "gguf/gguf_value.h"
#include "tensor/ggml_type.h"

namespace nibble {

struct Gemma4TensorSpec {
  std::string gguf_name;
  std::string hf_name;            // "" for tensors the converter generates (rope_freqs)
  std::vector<uint64_t> hf_shape; // PyTorch order; the GGUF shape is its reverse
  bool required = true;           // false: optional in the checkpoint (layer_scalar)
  GgmlType type = GgmlType::F32;  // storage type for the requested file type

  std::vector<uint64_t> gguf_shape() const { return {hf_shape.rbegin(), hf_shape.rend()}; }
  uint64_t n_elements() const;
  uint64_t n_bytes() const;
};

// Tensors of a GGUF for `cfg` with `n_vocab` token rows, stored as `type` (f32, f16, bf16, q8_0,
// q4_0; see convert_tensor_type for the per-tensor rules). Order: rope_freqs, globals, layers.
std::vector<Gemma4TensorSpec> gemma4_tensor_layout(const Gemma4HfConfig& cfg, uint64_t n_vocab,
                                                   GgmlType type);

// The storage type of one tensor for a requested file type: 1-D tensors and the MoE router stay
// F32; with q8_0/q4_0, the token embedding / output head stays BF16, and tensors whose rows do
// not split into 32-blocks and per_layer_model_proj (never quantized by llama.cpp) are F16.
GgmlType convert_tensor_type(const std::string& gguf_name, const std::vector<uint64_t>& hf_shape,
                             GgmlType want);

// general.architecture/type/file_type/quantization_version and every gemma4.* key.
void gemma4_model_metadata(const Gemma4HfConfig& cfg, GgmlType type, const std::string& name,
                           GgufMetadata& md);

// HF names of the K/V weights a KV-shared layer may carry but never uses (dropped on convert).
std::vector<std::string> gemma4_unused_shared_kv_names(const Gemma4HfConfig& cfg);

// The rope_freqs values: 1 for the rotated frequency pairs of the proportional RoPE, 1e30
// (effectively unrotated in llama.cpp) for the rest (spec §3.4).
std::vector<float> gemma4_rope_freqs(const Gemma4HfConfig& cfg);

}  // namespace nibble
