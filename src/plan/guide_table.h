// The Gemma 4 memory table as published (the int4 guide and Google's model card), beside what
// nibble's plan computes for the same variant and type: `nibble plan --table`, docs/memory.md.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "util/result.h"

namespace nibble {

struct GuideRow {
  std::string preset;  // e2b, e4b, 31b, 26b-a4b
  std::string type;    // BF16, SFP8, Q4_0, Q8_0, Q4_K_M, Q2_K
  uint64_t weights_bytes = 0;  // nibble's plan: all weights (GGUF tensor data)
  uint64_t ple_bytes = 0;      // of which the PLE table
  uint64_t emb_bf16_bytes = 0; // weights_bytes with the token embedding (= tied head) kept BF16
  std::optional<double> guide_gb;   // the int4 guide's figure (BF16, SFP8, Q4_0 only)
  std::optional<double> google_gb;  // Google's table (BF16, SFP8 ~ 8-bit, Q4_0 ~ 4-bit)
};

// Every preset x {BF16, SFP8, Q4_0, Q8_0, Q4_K_M, Q2_K}.
Result<std::vector<GuideRow>> guide_table();
// Text for people, with the explanations of the differences.
std::string format_guide_table(const std::vector<GuideRow>& rows);
std::string guide_table_json(const std::vector<GuideRow>& rows);

}  // namespace nibble
