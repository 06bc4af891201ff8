// SafetensorsFile / SafetensorsCheckpoint: validated read-only views of Hugging Face
// .safetensors files (8-byte header length, JSON header, raw little-endian data) and of sharded
// checkpoints (model.safetensors.index.json). Every offset, shape and dtype is checked before use.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "util/mapped_file.h"
#include "util/result.h"

namespace nibble {

enum class StDtype { kF32, kF16, kBF16, kF64, kI64, kI32, kI16, kI8, kU8, kBool };

const char* st_dtype_name(StDtype t);
uint32_t st_dtype_size(StDtype t);

inline constexpr uint64_t kSafetensorsMaxHeader = 100ull << 20;  // as the safetensors crate
inline constexpr size_t kSafetensorsMaxDims = 8;

struct StTensor {
  std::string name;
  StDtype dtype = StDtype::kF32;
  std::vector<uint64_t> shape;  // PyTorch order (outermost first)
  uint64_t n_elements = 0;
  const uint8_t* data = nullptr;
  uint64_t n_bytes = 0;
  std::string file;  // which file it lives in (for messages)
};

class SafetensorsFile {
 public:
  static Result<std::unique_ptr<SafetensorsFile>> open(const std::string& path);
  // Parses an in-memory image (bytes must outlive the object).
  static Result<std::unique_ptr<SafetensorsFile>> parse(const uint8_t* data, uint64_t size,
                                                        const std::string& name);
  const std::map<std::string, StTensor>& tensors() const { return tensors_; }

 private:
  std::unique_ptr<MappedFile> map_;
  std::map<std::string, StTensor> tensors_;
};

// All tensors of a checkpoint directory: model.safetensors, or the shards listed in
// model.safetensors.index.json.
class SafetensorsCheckpoint {
 public:
  static Result<std::unique_ptr<SafetensorsCheckpoint>> open_dir(const std::string& dir);
  const std::map<std::string, StTensor>& tensors() const { return tensors_; }
  const StTensor* find(const std::string& name) const;

 private:
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, StTensor> tensors_;
};

// Decodes n elements of a F32/F16/BF16 tensor to f32 (other dtypes: NIBBLE_CHECK).
void st_to_f32(const StTensor& t, uint64_t first, uint64_t n, float* out);

}  // namespace nibble
