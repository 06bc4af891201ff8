// libFuzzer harness for the Hugging Face config.json reader (src/convert/hf_config.cpp).
//
// Every input must either be rejected with a non-empty error, or give a config whose per-layer
// tables have num_hidden_layers entries and whose KV sharing leaves at least one layer that owns
// its KV cache.
//
// Run: scripts/fuzz.sh, or build/fuzz/tests/fuzz/hf_config_fuzzer tests/fuzz/corpus/hf_config
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "convert/hf_config.h"

namespace {

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "hf_config_fuzzer: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto r = nibble::parse_gemma4_hf_config(text, "fuzz/config.json");
  if (!r.ok()) {
    if (r.error().message.empty()) fail("empty error message");
    return 0;
  }
  const nibble::Gemma4HfConfig& c = r.value();
  const uint32_t L = c.n_layer;
  if (L == 0 || c.is_sliding.size() != L || c.layer_head_dim.size() != L ||
      c.layer_n_head_kv.size() != L || c.layer_n_ff.size() != L) {
    fail("per-layer tables do not have num_hidden_layers entries");
  }
  if (c.first_kv_shared == 0 || c.first_kv_shared > L) fail("no layer owns a KV cache");
  for (uint32_t l = 0; l < L; ++l) {
    if (c.layer_head_dim[l] == 0 || c.layer_n_head_kv[l] == 0 || c.n_head % c.layer_n_head_kv[l] != 0) {
      fail("accepted an invalid head layout");
    }
  }
  volatile uint32_t d = c.full_head_dim();
  (void)d;
  return 0;
}
