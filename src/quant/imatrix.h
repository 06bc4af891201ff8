// Importance matrices ("imatrix") for quantization: llama.cpp's GGUF format (llama-imatrix since
// mid-2025: keys imatrix.datasets / imatrix.chunk_count / imatrix.chunk_size, per weight a tensor
// "<weight>.in_sum2" [ne0, n_mat] of summed squared activations and "<weight>.counts" [1, n_mat]),
// and the legacy binary .dat format. Loads them into per-column weights exactly as llama-quantize's
// load_imatrix does (spec §3.6). Not a producer of imatrix files.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "util/result.h"

namespace nibble {

struct Imatrix {
  // Weight tensor name ("blk.0.attn_q.weight") -> ne0 * n_mat column weights; for a 3-D MoE
  // tensor, expert k's ne0 weights start at k * ne0.
  std::unordered_map<std::string, std::vector<float>> values;
  std::vector<std::string> datasets;  // calibration data set names
  uint32_t chunk_count = 0;           // chunks the statistics were collected over (0 = unknown)
  bool legacy = false;                // read from the legacy .dat format
};

// Reads a GGUF imatrix, or the legacy format when the file does not start with "GGUF".
// GGUF: value = in_sum2 / round(count) per matrix (1 where the count is 0); requires the three
// imatrix.* metadata keys, as llama-quantize does. Legacy: value = sum / ncall (sum when ncall is
// 0). Every value must be finite. Errors name the file, the entry and the numbers.
Result<Imatrix> load_imatrix(const std::string& path);

}  // namespace nibble
