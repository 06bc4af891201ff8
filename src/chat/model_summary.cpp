// ModelSummary from GGUF metadata and the tensor table.
#include "chat/model_summary.h"

#include <cstdio>

#include "quant/recipe.h"

namespace nibble {

namespace {
int64_t md_int(const GgufMetadata& md, const std::string& key) {
  const GgufValue* v = md.find(key);
  if (v == nullptr || v->is_array() || v->type() == GgufType::kString) return 0;
  return v->as<int64_t>();
}
}  // namespace

ModelSummary summarize_gguf(const GgufFile& f) {
  ModelSummary s;
  const GgufMetadata& md = f.metadata();
  if (const GgufValue* v = md.find("general.architecture"); v != nullptr && v->type() == GgufType::kString) {
    s.arch = v->string();
  }
  if (const GgufValue* v = md.find("general.name"); v != nullptr && v->type() == GgufType::kString) {
    s.name = v->string();
  }
  for (const auto& t : f.tensors()) s.n_params += t.n_elements;
  s.quantization = "unknown";
  if (const GgufValue* v = md.find("general.file_type"); v != nullptr && !v->is_array() && v->type() != GgufType::kString) {
    const int64_t ft = v->as<int64_t>();
    for (const auto& info : ftype_table()) {
      if (static_cast<int64_t>(info.ftype) == ft) s.quantization = info.cli_name;
    }
  }
  s.context_length = md_int(md, s.arch + ".context_length");
  s.embedding_length = md_int(md, s.arch + ".embedding_length");
  s.block_count = md_int(md, s.arch + ".block_count");
  s.file_bytes = f.file_size();
  return s;
}

std::string format_param_count(uint64_t n) {
  char buf[32];
  if (n >= 1000000000ull) {
    std::snprintf(buf, sizeof buf, "%.1fB", n / 1e9);
  } else if (n >= 1000000ull) {
    std::snprintf(buf, sizeof buf, "%.1fM", n / 1e6);
  } else {
    std::snprintf(buf, sizeof buf, "%.1fK", n / 1e3);
  }
  return buf;
}

}  // namespace nibble
