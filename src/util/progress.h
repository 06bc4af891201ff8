// ProgressBar: a one-line progress bar on stderr for long operations (convert, quantize,
// perplexity). Draws only when stderr is a terminal; otherwise stays silent so logs and tests
// see just the final summary.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace nibble {

class ProgressBar {
 public:
  ProgressBar(std::string label, uint64_t total, bool bytes = false);
  ~ProgressBar();
  void update(uint64_t done);
  void finish();

 private:
  std::string label_;
  uint64_t total_;
  bool bytes_;
  bool tty_;
  bool finished_ = false;
  int last_permille_ = -1;
  std::chrono::steady_clock::time_point start_;
};

// "1.23 GiB", "456.0 MiB", "789 B".
std::string format_bytes(uint64_t n);

}  // namespace nibble
