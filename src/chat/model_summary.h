// What `show`, `/show info`, /api/show and /api/tags say about a GGUF: architecture, parameter
// count, quantization, context and embedding sizes.
#pragma once

#include <cstdint>
#include <string>

#include "gguf/gguf_file.h"

namespace nibble {

struct ModelSummary {
  std::string arch;
  std::string name;            // general.name
  uint64_t n_params = 0;
  std::string quantization;    // "Q8_0", "F16", ... or "unknown"
  int64_t context_length = 0;  // training context, 0 when unknown
  int64_t embedding_length = 0;
  int64_t block_count = 0;
  uint64_t file_bytes = 0;
};

ModelSummary summarize_gguf(const GgufFile& f);
// "13.1M", "4.0B".
std::string format_param_count(uint64_t n);

}  // namespace nibble
