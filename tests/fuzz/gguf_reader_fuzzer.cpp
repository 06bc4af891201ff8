// libFuzzer harness for the GGUF reader (src/gguf/gguf_file.cpp).
//
// Every input must either be rejected with a non-empty one-line error, or be accepted as a file
// whose every metadata value can be rendered and whose every tensor's data lies inside the input.
// An accepted file must also survive a round trip: GgufWriter re-serialises it, the reader accepts
// the result, and metadata, tensor names, types, shapes and bytes come back identical.
//
// Run: scripts/fuzz.sh, or build/fuzz/tests/fuzz/gguf_reader_fuzzer tests/fuzz/corpus/gguf_reader
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "gguf/gguf_file.h"
#include "gguf/gguf_writer.h"

namespace {

[[noreturn]] void fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "gguf_reader_fuzzer: %s: %s\n", what, detail.c_str());
  std::abort();
}

// Shape as the writer records it: n_dims = last dim > 1 (at least 1), missing dims are 1.
std::vector<uint64_t> canonical_shape(const nibble::GgufTensorInfo& t) {
  std::vector<uint64_t> s;
  for (size_t d = 0; d < nibble::kGgufMaxDims; ++d) s.push_back(t.ne(d));
  s.resize(nibble::gguf_canonical_n_dims(s));
  return s;
}

void check_round_trip(const nibble::GgufFile& g) {
  // The writer always pads to the alignment (even with no tensors); a huge alignment is legal
  // but would make a multi-GiB image here, so the oracle only covers sane ones.
  if (g.alignment() > 4096) return;
  nibble::GgufWriter w;
  for (const auto& [k, v] : g.metadata().entries()) w.metadata().set(k, v);
  for (const auto& t : g.tensors()) {
    // The writer rejects what a producer must not write (empty names); nothing to compare then.
    if (t.name.empty()) return;
    // Zero-sized tensors with a trailing 0 dimension do not round-trip (gguf_canonical_n_dims
    // drops dims <= 1, so [4, 0] is written as [4]); see tests/gguf/gguf_corrupt_test.cpp
    // GgufWriterEdge.ZeroDimensionRoundTrips. Skipped so the fuzzer can look for other bugs.
    if (t.n_elements == 0) return;
    auto st = w.add_tensor(t.name, t.type, canonical_shape(t), t.data, t.n_bytes);
    if (!st.ok()) fail("writer rejected a tensor the reader accepted", st.error().message);
  }
  auto bytes = w.write_to_memory();
  if (!bytes.ok()) fail("writer failed on an accepted file", bytes.error().message);
  auto r2 = nibble::GgufFile::parse(bytes->data(), bytes->size(), "round-trip");
  if (!r2.ok()) fail("reader rejected the writer's output", r2.error().message);
  const nibble::GgufFile& g2 = *r2.value();
  if (g2.metadata().entries() != g.metadata().entries()) fail("metadata changed", "round trip");
  if (g2.tensors().size() != g.tensors().size()) fail("tensor count changed", "round trip");
  for (size_t i = 0; i < g.tensors().size(); ++i) {
    const auto& a = g.tensors()[i];
    const auto& b = g2.tensors()[i];
    if (a.name != b.name || a.type != b.type || a.n_elements != b.n_elements ||
        a.n_bytes != b.n_bytes || canonical_shape(a) != canonical_shape(b) ||
        std::memcmp(a.data, b.data, a.n_bytes) != 0) {
      fail("tensor changed in the round trip", a.name);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto r = nibble::GgufFile::parse(data, size, "fuzz.gguf");
  if (!r.ok()) {
    if (r.error().message.empty()) fail("empty error message", "");
    return 0;
  }
  const nibble::GgufFile& g = *r.value();
  size_t rendered = 0;
  for (const auto& [k, v] : g.metadata().entries()) {
    if (k.empty()) fail("accepted an empty key", "");
    rendered += v.to_display_string().size();
  }
  volatile uint8_t sink = 0;
  for (const auto& t : g.tensors()) {
    if (g.find_tensor(t.name) != &t) fail("find_tensor disagrees", t.name);
    if (t.n_bytes == 0) continue;
    if (t.data < data || t.data + t.n_bytes > data + size) fail("tensor data outside the input", t.name);
    sink = sink + t.data[0] + t.data[t.n_bytes - 1];  // ASan checks both ends
  }
  (void)rendered;
  check_round_trip(g);
  return 0;
}
