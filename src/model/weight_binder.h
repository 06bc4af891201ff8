// WeightBinder: looks up GGUF tensors by name and turns them into typed views with their shape
// checked (llama.cpp's create_tensor). Matrices stay in the memory map; small 1-D tensors
// (norm weights, scales) are converted to float32 vectors once, at load. Not architecture-
// specific: the architecture file says which names and shapes it expects.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "gguf/gguf_file.h"
#include "ops/weight_matrix.h"
#include "util/result.h"

namespace nibble {

class WeightBinder {
 public:
  explicit WeightBinder(const GgufFile& file) : file_(file) {}

  bool has(const std::string& name) const { return file_.find_tensor(name) != nullptr; }

  // A 2-D weight {n_in, n_out} (or 3-D {n_in, n_rows, n_mat}, viewed as n_rows * n_mat rows).
  // Errors: missing, wrong shape, type nibble cannot dequantize.
  Result<WeightMatrix> matrix(const std::string& name, const std::vector<int64_t>& shape) const;
  // A 1-D tensor of n values (any dequantizable type), as float32.
  Result<std::vector<float>> vector(const std::string& name, int64_t n) const;

 private:
  Result<const GgufTensorInfo*> lookup(const std::string& name,
                                       const std::vector<int64_t>& shape) const;
  const GgufFile& file_;
};

// "{a, b, c}" for messages.
std::string shape_string(const std::vector<int64_t>& shape);

}  // namespace nibble
