// quantize_model: `nibble quantize` — requantizes a GGUF model with llama-quantize's recipes
// (spec gguf-and-quant-formats §4): per-tensor types from quant/recipe.h, tensors in
// llama-quantize's order, metadata copied with general.quantization_version = 2 and
// general.file_type = <ftype> moved to the end (§1.12), optional importance matrix (§3.6), MoE
// expert tensors quantized one expert at a time. The output is written atomically (GgufWriter:
// temporary file + rename), so a failure or Ctrl-C never leaves a partial file.
//
// Input tensors may be F32/F16/BF16 or already quantized (dequantized, then requantized); a
// tensor already of its target type is copied byte for byte. Unlike llama-quantize, requantizing
// needs no flag (a note says how many tensors were requantized).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "quant/recipe.h"
#include "tensor/ggml_type.h"
#include "util/result.h"

namespace nibble {

struct QuantizeOptions {
  std::string input_path;
  std::string output_path;
  LlamaFtype ftype = LlamaFtype::Q8_0;
  RecipeOptions recipe;      // has_imatrix is set from imatrix_path
  std::string imatrix_path;  // "" = no importance matrix
  int n_threads = 0;         // 0: OpenMP's default
  // One line each: fallbacks, deviations from llama-quantize, imatrix coverage, SFP8 range.
  std::function<void(const std::string&)> note;
  // Input bytes processed so far, of the total.
  std::function<void(uint64_t done, uint64_t total)> progress;
};

struct QuantizedTensor {
  std::string name;
  std::vector<uint64_t> shape;
  GgmlType from = GgmlType::F32;
  GgmlType to = GgmlType::F32;
  uint64_t n_elements = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  bool quantizable = false;  // passes spec §4.2
  bool converted = false;    // bytes were recomputed (otherwise copied unchanged)
  bool imatrix = false;      // an importance-matrix entry was applied
  bool fallback = false;     // the §4.6 shape fallback chose another type
};

struct QuantizeReport {
  LlamaFtype ftype = LlamaFtype::Q8_0;
  std::string output_path;
  std::vector<QuantizedTensor> tensors;  // output order
  uint64_t n_elements = 0;
  uint64_t bytes_in = 0;     // tensor data of the input
  uint64_t bytes_out = 0;    // tensor data of the output
  uint64_t file_size = 0;    // the output file
  int n_fallback = 0;        // §4.6 fallbacks (llama-quantize's "required fallback quantization")
  int n_deviation = 0;       // tensors where llama-quantize would have stopped (see TensorChoice)
  int n_requantized = 0;     // tensors converted from an already-quantized type
  int n_imatrix = 0;         // tensors quantized with an importance-matrix entry
  int n_sfp8_kept_bf16 = 0;  // SFP8 targets outside +-1.875, kept in BF16
};

// Plans and writes the output file. Errors name the tensor, the types and the numbers.
Result<QuantizeReport> quantize_model(const QuantizeOptions& options);

// Plans only (no tensor data is converted; SFP8 range checks read the data): what quantize_model
// would write. bytes_out and the counts are exact; file_size is 0.
Result<QuantizeReport> plan_quantize(const QuantizeOptions& options);

// The closing summary: per tensor group (gguf/tensor_groups.h) the tensor count, the types used,
// parameters, size and bits per weight; then totals, input -> output size and the file size.
std::string format_quantize_summary(const QuantizeReport& report);

}  // namespace nibble
