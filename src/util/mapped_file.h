// MappedFile: a read-only memory map of a whole file (tensor data is used in place from it).
// Not for writing; see util/atomic_file.h for output files.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "util/result.h"

namespace nibble {

class MappedFile {
 public:
  static Result<std::unique_ptr<MappedFile>> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
  std::string path_;
};

// Reads a whole (small) file into a string; `max_bytes` bounds what we are willing to read.
Result<std::string> read_file_to_string(const std::string& path, uint64_t max_bytes);

}  // namespace nibble
