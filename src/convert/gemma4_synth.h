// Synthetic Gemma 4 models for benchmarks: a GGUF with the exact tensors, shapes, types and
// metadata of a released variant (gemma4_presets + gemma4_layout), filled with deterministic
// random weights, and a full-size (262,144-token) BPE vocabulary, so that nibble and llama.cpp
// both load and run the same file. Types: f32/f16/bf16 (as `nibble convert --type` writes them)
// or any llama-quantize recipe (as `nibble quantize` would write it from a bf16 conversion).
//
// Not a model: the weights are noise, scaled so that the forward pass stays numerically sane
// (finite logits of order 1), which is all a speed measurement needs.
//
// The file is streamed tensor by tensor and, within a tensor, in row chunks generated and
// quantized in parallel (util/thread_pool.h); it is written atomically. Weights depend only on
// (seed, tensor name, row), never on the thread count: the same options give the same bytes.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "convert/hf_config.h"
#include "gguf/gguf_value.h"
#include "quant/recipe.h"
#include "tensor/ggml_type.h"
#include "tokenizer/vocab.h"
#include "util/result.h"

namespace nibble {

struct SynthOptions {
  std::string preset;       // e2b, e4b, 31b, 26b-a4b
  std::string type = "Q4_0";  // f32, f16, bf16 or a recipe name (parse_ftype)
  std::string out_path;
  uint64_t seed = 0;
  uint32_t n_layers = 0;    // 0: the preset's; otherwise fewer layers at the real widths
  std::function<void(const std::string&)> note;                // one-line remarks
  std::function<void(uint64_t done, uint64_t total)> progress;  // output tensor bytes
};

struct SynthTensor {
  std::string name;
  GgmlType type = GgmlType::F32;
  std::vector<uint64_t> shape;  // GGUF order (ne0 first)
  uint64_t n_elements = 0;
  uint64_t n_bytes = 0;
};

struct SynthPlan {
  Gemma4HfConfig cfg;
  LlamaFtype ftype = LlamaFtype::Q4_0;
  std::vector<SynthTensor> tensors;  // file order
  GgufMetadata metadata;
  uint64_t n_bytes = 0;     // tensor data
  uint64_t n_params = 0;
};

// The preset's config with `n_layers` layers (0 = all). The first n-1 layers keep the preset's
// attention pattern and the last one is a full-attention layer (as in every released variant);
// KV sharing keeps the preset's proportion where the owning layers end with (sliding, full) so
// that nibble's and llama.cpp's source-layer rules agree (spec Appendix C.2), and is 0 otherwise.
Result<Gemma4HfConfig> gemma4_synth_config(std::string_view preset, uint32_t n_layers);

// The 262,144-token vocabulary written into synthetic models: Gemma 4's special tokens at their
// real ids (pad 0, eos 1, bos 2, unk 3, mask 4, <|turn> 105, <turn|> 106, "\n" 107, ...), the 256
// byte tokens, then printable ASCII characters, all their pairs and as many triples as fit, each
// longer token with its BPE merge, so that any text tokenizes in both engines.
Vocab synthetic_gemma4_vocab();

// Tensors (names, types, shapes, file order) and metadata of the file, without any weights.
Result<SynthPlan> plan_gemma4_synth(const SynthOptions& options);

// Writes the file. Errors name the option or the tensor.
Result<SynthPlan> write_gemma4_synth(const SynthOptions& options);

// One row of a tensor's synthetic values (exposed for tests): deterministic in (seed, name, row).
void synth_tensor_row(const Gemma4HfConfig& cfg, uint64_t seed, const std::string& name,
                      const std::vector<uint64_t>& shape, uint64_t row, float* out);

}  // namespace nibble
