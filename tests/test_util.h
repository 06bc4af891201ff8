// Helpers shared by the tests: where fixtures live, how to run the nibble binary.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace nibble::test {

// The repository root (tests read fixtures from tests/fixtures and models/).
std::string source_dir();
// ../shared next to the repository, or "" when it is absent (tests that need it skip).
std::string shared_dir();
// The built `nibble` executable.
std::string nibble_binary();
// A fresh temporary directory, removed at exit.
std::string temp_dir();

struct CommandResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};
// Runs `nibble ARGS...` (no shell), capturing stdout and stderr.
CommandResult run_nibble(const std::vector<std::string>& args);

std::vector<uint8_t> read_bytes(const std::string& path);
void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes);
bool file_exists(const std::string& path);

}  // namespace nibble::test

// Skips the current test when ../shared is missing, saying so.
#define NIBBLE_REQUIRE_SHARED()                                                      \
  do {                                                                               \
    if (::nibble::test::shared_dir().empty())                                        \
      GTEST_SKIP() << "../shared is absent (models/data not available); skipping";  \
  } while (0)

namespace nibble::test {
// SHA-256 of a byte buffer, lowercase hex (an independent oracle for the spec's test vectors).
std::string sha256_hex(const void* data, size_t n);

// A tensor for write_safetensors: dtype "BF16"/"F16"/"F32"/..., PyTorch-order shape, raw bytes.
struct StEntry {
  std::string dtype;
  std::vector<uint64_t> shape;
  std::vector<uint8_t> bytes;
};
// Writes a .safetensors file (header JSON sorted by name, data packed in that order).
void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, StEntry>>& tensors);
// Reads all tensors of a .safetensors file (test-side, trusting the input).
std::vector<std::pair<std::string, StEntry>> read_safetensors(const std::string& path);
}  // namespace nibble::test
