// GgufFile: a validated, read-only view of a GGUF v2/v3 file (spec gguf-and-quant-formats §1).
// Every count, length, offset and size is checked against the file before use (§1.11); tensor
// data stays in the memory map. Writing is gguf_writer.h.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "gguf/gguf_value.h"
#include "tensor/ggml_type.h"
#include "util/mapped_file.h"
#include "util/result.h"

namespace nibble {

inline constexpr uint32_t kGgufMaxDims = 4;
inline constexpr uint64_t kGgufMaxNameLength = 63;  // ggml: name must be < GGML_MAX_NAME (64)
inline constexpr uint64_t kGgufDefaultAlignment = 32;

struct GgufTensorInfo {
  std::string name;
  std::vector<uint64_t> shape;  // ne[0..n_dims-1], ne[0] fastest-varying (n_dims as stored)
  GgmlType type = GgmlType::F32;
  uint64_t offset = 0;          // relative to the data section
  uint64_t n_elements = 0;
  uint64_t n_bytes = 0;
  const uint8_t* data = nullptr;  // into the mapping (or the parsed buffer)

  uint64_t ne(size_t i) const { return i < shape.size() ? shape[i] : 1; }
  uint64_t n_rows() const { return ne(0) == 0 ? 0 : n_elements / ne(0); }
};

class GgufFile {
 public:
  // Maps and validates a file. Errors name the file, the field and the numbers.
  static Result<std::unique_ptr<GgufFile>> open(const std::string& path);
  // Validates an in-memory image (the bytes must outlive the object). `name` is used in messages.
  static Result<std::unique_ptr<GgufFile>> parse(const uint8_t* data, uint64_t size,
                                                 const std::string& name);

  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }
  uint64_t file_size() const { return size_; }
  const std::string& path() const { return name_; }

  const GgufMetadata& metadata() const { return metadata_; }
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(const std::string& name) const;

 private:
  GgufFile() = default;
  std::unique_ptr<MappedFile> map_;
  std::string name_;
  uint64_t size_ = 0;
  uint32_t version_ = 0;
  uint64_t alignment_ = kGgufDefaultAlignment;
  uint64_t data_offset_ = 0;
  GgufMetadata metadata_;
  std::vector<GgufTensorInfo> tensors_;
  std::unordered_map<std::string, size_t> tensor_index_;
};

}  // namespace nibble
