// Shared pieces of the model-running commands (logits, generate, run, perplexity): token-list
// parsing, sampling flags, the bundled default model.
#pragma once

#include <CLI/CLI.hpp>
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "sampling/sampler.h"
#include "util/result.h"

namespace nibble::cli {

// "2,17,9" (commas and/or spaces) -> ids. Errors name the bad item.
inline Result<std::vector<int32_t>> parse_token_list(const std::string& s) {
  std::vector<int32_t> ids;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ',' || s[i] == ' ')) ++i;
    if (i >= s.size()) break;
    size_t j = i;
    while (j < s.size() && s[j] != ',' && s[j] != ' ') ++j;
    const std::string item = s.substr(i, j - i);
    long long v = 0;
    auto [p, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (ec != std::errc() || p != item.data() + item.size() || v < INT32_MIN || v > INT32_MAX) {
      return make_error(ErrorCode::kInvalidArgument, "--tokens: '%s' is not a token id",
                        item.c_str());
    }
    ids.push_back(static_cast<int32_t>(v));
    i = j;
  }
  if (ids.empty()) return make_error(ErrorCode::kInvalidArgument, "--tokens: no token ids given");
  return ids;
}

inline void add_sampling_options(CLI::App* cmd, SamplerParams& p) {
  cmd->add_option("--temp", p.temperature, "Temperature (0 = greedy)")->capture_default_str();
  cmd->add_option("--top-k", p.top_k, "Keep the k most likely tokens (0 = off)")
      ->capture_default_str();
  cmd->add_option("--top-p", p.top_p, "Nucleus sampling threshold (1 = off)")
      ->capture_default_str();
  cmd->add_option("--min-p", p.min_p, "Drop tokens below min-p times the best one (0 = off)")
      ->capture_default_str();
  cmd->add_option("--repeat-penalty", p.repeat_penalty, "Penalty for repeated tokens (1 = off)")
      ->capture_default_str();
  cmd->add_option("--repeat-last-n", p.repeat_last_n, "Tokens of history the penalty covers")
      ->capture_default_str();
  cmd->add_option("--seed", p.seed, "Random seed")->capture_default_str();
}

// The bundled demo model: $NIBBLE_MODEL, else models/nibble-tiny-e.gguf in the source tree.
inline std::string default_model_path() {
  const char* env = std::getenv("NIBBLE_MODEL");
  if (env != nullptr && *env != '\0') return env;
#ifdef NIBBLE_SOURCE_DIR
  return std::string(NIBBLE_SOURCE_DIR) + "/models/nibble-tiny-e.gguf";
#else
  return "models/nibble-tiny-e.gguf";
#endif
}

}  // namespace nibble::cli
