// The published Gemma 4 memory figures beside nibble's plan (guide_table.h).
#include "plan/guide_table.h"

#include <cstdio>
#include <nlohmann/json.hpp>

#include "plan/plan.h"

namespace nibble {

namespace {

struct Published {
  const char* preset;
  double guide[3];   // BF16, SFP8, Q4_0 (GB) — the Gemma 4 int4 guide
  double google[3];  // BF16, 8-bit, 4-bit (GB) — Google's table
};

constexpr Published kPublished[] = {
    {"e2b", {9.6, 4.6, 3.2}, {11.4, 5.7, 2.9}},
    {"e4b", {15.0, 7.5, 5.0}, {17.9, 8.9, 4.5}},
    {"31b", {58.3, 30.4, 17.4}, {69.9, 34.9, 17.5}},
    {"26b-a4b", {48.0, 25.0, 15.6}, {57.7, 28.8, 14.4}},
};

constexpr const char* kTypes[] = {"BF16", "SFP8", "Q4_0", "Q8_0", "Q4_K_M", "Q2_K"};

double gb(uint64_t b) { return static_cast<double>(b) / 1e9; }

}  // namespace

Result<std::vector<GuideRow>> guide_table() {
  std::vector<GuideRow> rows;
  for (const Published& p : kPublished) {
    for (int t = 0; t < 6; ++t) {
      NIBBLE_ASSIGN_OR_RETURN(PlanModel m, plan_model_from_preset(p.preset, kTypes[t]));
      GuideRow r;
      r.preset = p.preset;
      r.type = kTypes[t];
      for (const auto& x : m.tensors) {
        r.weights_bytes += x.n_bytes;
        if (x.name == "per_layer_token_embd.weight") r.ple_bytes = x.n_bytes;
      }
      r.emb_bf16_bytes = r.weights_bytes;
      for (const auto& x : m.tensors) {
        if (x.name == "token_embd.weight") r.emb_bf16_bytes = r.weights_bytes - x.n_bytes + x.shape[0] * x.shape[1] * 2;
      }
      if (t < 3) {
        r.guide_gb = p.guide[t];
        r.google_gb = p.google[t];
      }
      rows.push_back(r);
    }
  }
  return rows;
}

std::string format_guide_table(const std::vector<GuideRow>& rows) {
  std::string s =
      "Weights of the four Gemma 4 text models as nibble stores them (GGUF tensor data, text decoder\n"
      "only), beside the published memory figures (as published: 'GB'). GB = 10^9 bytes, GiB = 2^30.\n"
      "emb-BF16: the same with the token embedding (= tied output head) kept at BF16.\n\n";
  char line[256];
  std::snprintf(line, sizeof line, "%-8s %-7s %10s %10s %10s %12s %10s %10s\n", "model", "type", "nibble GB",
                "no-PLE GB", "nibble GiB", "emb-BF16 GiB", "guide", "Google");
  s += line;
  for (const auto& r : rows) {
    auto opt = [](const std::optional<double>& v) {
      char b[32];
      if (!v) return std::string("-");
      std::snprintf(b, sizeof b, "%.1f", *v);
      return std::string(b);
    };
    std::snprintf(line, sizeof line, "%-8s %-7s %10.2f %10.2f %10.2f %12.2f %10s %10s\n", r.preset.c_str(),
                  r.type.c_str(), gb(r.weights_bytes), gb(r.weights_bytes - r.ple_bytes),
                  static_cast<double>(r.weights_bytes) / (1u << 30),
                  static_cast<double>(r.emb_bf16_bytes) / (1u << 30), opt(r.guide_gb).c_str(),
                  opt(r.google_gb).c_str());
    s += line;
  }
  s +=
      "\nWhy the columns differ:\n"
      "- Google's figures are for the multimodal checkpoints (vision and, on E2B/E4B, audio encoders\n"
      "  included); nibble plans the text decoder only, so its BF16 numbers sit below Google's.\n"
      "- The guide's SFP8 and Q4_0 columns keep some tensors wider (embedding / output head); nibble's\n"
      "  columns follow llama-quantize's recipes (quant/recipe.h): Q4_0 stores the tied token embedding\n"
      "  (= output head) as Q6_K and 1-D tensors as F32; Q4_0 costs 4.5 bits per weight (18-byte blocks of\n"
      "  32), not 4, and Q8_0 8.5. SFP8 is 8 bits per weight with nothing kept wider in the plan (the\n"
      "  real quantizer keeps tensors with values beyond +-1.875 in BF16, which depends on the weights).\n"
      "- E2B and E4B carry the per-layer-embedding (PLE) table (262,144 x layers x 256): a third to a\n"
      "  half of their bytes. It is read one row per token, so nibble leaves it paged from disk\n"
      "  (lazy_bytes in `nibble plan`): the no-PLE column is what must be resident. Google counts the\n"
      "  'effective' parameters without it in the names E2B/E4B but the memory figures include it.\n"
      "- 4-bit rows: Google's 4-bit figures use a QAT int4 layout with other block sizes, which is why\n"
      "  they can be below Q4_0's 4.5 bits per weight.\n"
      "- None of these columns include the KV cache or buffers: see `nibble plan --preset P --ctx N`.\n"
      "docs/memory.md explains each row.\n";
  return s;
}

std::string guide_table_json(const std::vector<GuideRow>& rows) {
  nlohmann::ordered_json a = nlohmann::ordered_json::array();
  for (const auto& r : rows) {
    nlohmann::ordered_json j = {{"preset", r.preset}, {"type", r.type}, {"weights_bytes", r.weights_bytes},
                                {"ple_table_bytes", r.ple_bytes},
                                {"weights_emb_bf16_bytes", r.emb_bf16_bytes}};
    j["guide_gb"] = r.guide_gb ? nlohmann::ordered_json(*r.guide_gb) : nlohmann::ordered_json(nullptr);
    j["google_gb"] = r.google_gb ? nlohmann::ordered_json(*r.google_gb) : nlohmann::ordered_json(nullptr);
    a.push_back(j);
  }
  return a.dump(2);
}

}  // namespace nibble
