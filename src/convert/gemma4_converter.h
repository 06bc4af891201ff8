// Hugging Face Gemma 4 checkpoint -> GGUF (architecture "gemma4"), with llama.cpp's metadata
// keys, tensor names, shapes and transformations (spec gemma4-architecture §2-3), so the file
// also loads in llama.cpp and Ollama.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "tensor/ggml_type.h"
#include "util/result.h"

namespace nibble {

struct ConvertOptions {
  std::string hf_dir;
  std::string out_path;
  GgmlType type = GgmlType::BF16;  // f32, f16, bf16, q8_0 or q4_0
  std::function<void(const std::string&)> note;                  // one-line remarks
  std::function<void(uint64_t done, uint64_t total)> progress;    // output bytes
};

struct ConvertSummary {
  uint64_t n_tensors = 0;
  uint64_t n_bytes = 0;          // tensor data bytes written
  uint64_t n_params = 0;
  uint64_t n_skipped_towers = 0; // vision/audio tensors left out
  uint64_t n_dropped_shared_kv = 0;
};

// True for the --type values convert accepts.
bool convert_type_supported(GgmlType type);
// The general.file_type (llama_ftype) id for an all-`type` file.
uint32_t ftype_for_type(GgmlType type);

Result<ConvertSummary> convert_gemma4_checkpoint(const ConvertOptions& options);

}  // namespace nibble
