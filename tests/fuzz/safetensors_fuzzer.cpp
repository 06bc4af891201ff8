// libFuzzer harness for the safetensors parser (src/convert/safetensors.cpp): 8-byte header
// length, JSON header, data offsets, dtypes and shapes.
//
// Every input must either be rejected with a non-empty error, or be accepted with each tensor's
// bytes inside the input, matching its shape and dtype, and not overlapping another tensor's.
//
// Run: scripts/fuzz.sh, or build/fuzz/tests/fuzz/safetensors_fuzzer tests/fuzz/corpus/safetensors
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <utility>
#include <vector>

#include "convert/safetensors.h"

namespace {

[[noreturn]] void fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "safetensors_fuzzer: %s: %s\n", what, detail.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto r = nibble::SafetensorsFile::parse(data, size, "fuzz.safetensors");
  if (!r.ok()) {
    if (r.error().message.empty()) fail("empty error message", "");
    return 0;
  }
  std::vector<std::pair<const uint8_t*, const uint8_t*>> ranges;
  volatile float sink = 0;
  for (const auto& [name, t] : r.value()->tensors()) {
    if (name != t.name) fail("map key and tensor name differ", name);
    uint64_t n = 1;
    for (uint64_t d : t.shape) n *= d;  // cannot overflow: the parser checked
    if (n != t.n_elements) fail("element count wrong", name);
    if (t.n_bytes != n * nibble::st_dtype_size(t.dtype)) fail("byte count wrong", name);
    if (t.n_bytes == 0) continue;
    if (t.data < data || t.data + t.n_bytes > data + size) fail("tensor data outside the input", name);
    ranges.emplace_back(t.data, t.data + t.n_bytes);
    if (t.dtype == nibble::StDtype::kF32 || t.dtype == nibble::StDtype::kF16 ||
        t.dtype == nibble::StDtype::kBF16) {
      // Decode the first and the last element (what the converter does, row by row).
      float v[2];
      nibble::st_to_f32(t, 0, 1, &v[0]);
      nibble::st_to_f32(t, t.n_elements - 1, 1, &v[1]);
      sink = sink + v[0] + v[1];
    } else {
      volatile uint8_t b = t.data[0] ^ t.data[t.n_bytes - 1];
      (void)b;
    }
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i].first < ranges[i - 1].second) fail("overlapping tensors accepted", "");
  }
  return 0;
}
