// AtomicFile: writes an output file under a temporary name next to it and renames it into place
// on commit(); if the object is destroyed without commit (error, exception, Ctrl-C handler),
// the temporary is removed, so no partial output is ever left behind.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "util/result.h"

namespace nibble {

class AtomicFile {
 public:
  static Result<AtomicFile> create(const std::string& path);
  AtomicFile(AtomicFile&& o) noexcept;
  AtomicFile& operator=(AtomicFile&&) = delete;
  ~AtomicFile();

  Status write(const uint8_t* data, size_t n);
  // fsyncs, closes and renames the temporary onto the final path.
  Status commit();

  const std::string& temp_path() const { return tmp_path_; }

 private:
  AtomicFile() = default;
  std::string path_, tmp_path_;
  int fd_ = -1;
  bool committed_ = false;
};

// Removes every temporary of AtomicFile still open in this process (for signal handlers).
void atomic_file_cleanup_all();
// Installs SIGINT/SIGTERM handlers that remove open temporaries, then die of the signal as usual:
// commands that write output files call this first, so Ctrl-C never leaves a partial file.
void remove_partial_outputs_on_signals();

}  // namespace nibble
