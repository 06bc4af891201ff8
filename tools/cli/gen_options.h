// Shared pieces of the model-running commands (logits, generate, run, perplexity, bench):
// token-list parsing, sampling flags, KV cache / attention flags, the bundled default model.
#pragma once

#include <CLI/CLI.hpp>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "runtime/kv_cache.h"
#include "runtime/session.h"
#include "sampling/sampler.h"
#include "util/result.h"
#include "util/text.h"

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

// KV cache and attention-kernel flags of a command. Empty = not given.
struct KvFlags {
  std::string kv_type, kv_type_full, kv_type_swa, flash_attn, kv_recent;
  // Set by add_kv_options: tells a flag given as "" (an error) from one not given.
  const CLI::Option* given[5] = {nullptr, nullptr, nullptr, nullptr, nullptr};
  // Flag i (0 kv_type, 1 kv_type_full, 2 kv_type_swa, 3 flash_attn, 4 kv_recent) was given.
  bool has(int i) const {
    if (given[i] != nullptr) return given[i]->count() > 0;
    const std::string* v[5] = {&kv_type, &kv_type_full, &kv_type_swa, &flash_attn, &kv_recent};
    return !v[i]->empty();
  }
};

// The help of --kv-recent (run, generate, logits, perplexity, bench, plan).
inline constexpr const char* kKvRecentHelp =
    "Positions kept at f16 in a quantized (q8_0/q4_0) KV cache: the last N of every layer, read "
    "instead of the quantized rows for the nearest keys (0 = off; 0 to 4096, default 32; env "
    "NIBBLE_KV_RECENT). Costs N + batch - 1 f16 rows per layer; on tiny-e it lifts q4_0's "
    "top-1 agreement with f16 from 92% to 98%";

// Registers --kv-type T (every layer), --kv-type-full T, --kv-type-swa T (T: f32, f16, q8_0,
// q4_0) and --flash-attn on|off|auto. Use apply_kv_flags to turn them into SessionOptions.
inline void add_kv_options(CLI::App* cmd, KvFlags& f) {
  f.given[0] = cmd->add_option("--kv-type", f.kv_type,
                               "KV cache type of every layer: f32, f16, q8_0, q4_0 (default f16; "
                               "env NIBBLE_KV_CACHE_TYPE or OLLAMA_KV_CACHE_TYPE)");
  f.given[1] = cmd->add_option("--kv-type-full", f.kv_type_full,
                               "KV cache type of the full-attention layers (overrides --kv-type)");
  f.given[2] = cmd->add_option("--kv-type-swa", f.kv_type_swa,
                               "KV cache type of the sliding-window layers (overrides --kv-type)");
  f.given[3] = cmd->add_option("--flash-attn", f.flash_attn,
                               "Flash attention: on, off or auto (= on; env NIBBLE_FLASH_ATTENTION "
                               "or OLLAMA_FLASH_ATTENTION: 1/0/true/false/on/off)");
  f.given[4] = cmd->add_option("--kv-recent", f.kv_recent, kKvRecentHelp)->type_name("N");
}

namespace kv_detail {
// The first of the two variables that is set and not empty; *name gets its name.
inline const char* env_first(const char* a, const char* b, const char** name) {
  for (const char* n : {a, b}) {
    const char* v = std::getenv(n);
    if (v != nullptr && *v != '\0') {
      *name = n;
      return v;
    }
  }
  return nullptr;
}

inline Result<FlashAttn> parse_flash(const std::string& s, const std::string& what) {
  std::string low = s;
  for (char& c : low) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (low == "on" || low == "1" || low == "true") return FlashAttn::kOn;
  if (low == "off" || low == "0" || low == "false") return FlashAttn::kOff;
  if (low == "auto") return FlashAttn::kAuto;
  return make_error(ErrorCode::kInvalidArgument,
                    "%s: '%s' is not a flash attention setting (choose on, off, auto, 1, 0, true, "
                    "false)",
                    what.c_str(), printable(s).c_str());
}

// "32" -> 32: a whole number in [0, kKvRecentMax].
inline Result<int64_t> parse_recent(const std::string& s, const std::string& what) {
  long long v = -1;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size() || v < 0 || v > kKvRecentMax) {
    return make_error(ErrorCode::kInvalidArgument,
                      "%s: '%s' is not a number of recent positions (choose 0 to %lld; 0 = off)",
                      what.c_str(), printable(s).c_str(), static_cast<long long>(kKvRecentMax));
  }
  return static_cast<int64_t>(v);
}

inline Result<GgmlType> parse_type(const std::string& s, const std::string& what) {
  auto t = parse_kv_type(s);
  if (!t.ok()) {
    return make_error(ErrorCode::kInvalidArgument, "%s: %s", what.c_str(),
                      t.error().message.c_str());
  }
  return t.value();
}
}  // namespace kv_detail

// Sets so.kv_type_full, so.kv_type_swa, so.kv_recent and so.flash_attn: the environment first
// (NIBBLE_KV_CACHE_TYPE, else OLLAMA_KV_CACHE_TYPE; NIBBLE_KV_RECENT; NIBBLE_FLASH_ATTENTION,
// else OLLAMA_FLASH_ATTENTION), then the flags (--kv-type, then the more specific --kv-type-full
// and --kv-type-swa; --kv-recent; --flash-attn). A variable a flag fully overrides is not read.
// Errors name the flag or variable and list the allowed values.
inline Status apply_kv_flags(const KvFlags& f, SessionOptions& so) {
  // A variable is read only when a flag leaves something for it to set.
  const char* name = nullptr;
  const bool env_type = !f.has(0) && (!f.has(1) || !f.has(2));
  if (const char* v = env_type ? kv_detail::env_first("NIBBLE_KV_CACHE_TYPE",
                                                      "OLLAMA_KV_CACHE_TYPE", &name)
                               : nullptr) {
    auto t = kv_detail::parse_type(v, std::string("environment variable ") + name);
    if (!t.ok()) return t.take_error();
    so.kv_type_full = so.kv_type_swa = t.value();
  }
  if (const char* v = !f.has(4) ? std::getenv("NIBBLE_KV_RECENT") : nullptr; v != nullptr && *v) {
    auto r = kv_detail::parse_recent(v, "environment variable NIBBLE_KV_RECENT");
    if (!r.ok()) return r.take_error();
    so.kv_recent = r.value();
  }
  if (const char* v = !f.has(3) ? kv_detail::env_first("NIBBLE_FLASH_ATTENTION",
                                                                  "OLLAMA_FLASH_ATTENTION", &name)
                                           : nullptr) {
    auto fa = kv_detail::parse_flash(v, std::string("environment variable ") + name);
    if (!fa.ok()) return fa.take_error();
    so.flash_attn = fa.value();
  }
  if (f.has(0)) {
    auto t = kv_detail::parse_type(f.kv_type, "--kv-type");
    if (!t.ok()) return t.take_error();
    so.kv_type_full = so.kv_type_swa = t.value();
  }
  if (f.has(1)) {
    auto t = kv_detail::parse_type(f.kv_type_full, "--kv-type-full");
    if (!t.ok()) return t.take_error();
    so.kv_type_full = t.value();
  }
  if (f.has(2)) {
    auto t = kv_detail::parse_type(f.kv_type_swa, "--kv-type-swa");
    if (!t.ok()) return t.take_error();
    so.kv_type_swa = t.value();
  }
  if (f.has(4)) {
    auto r = kv_detail::parse_recent(f.kv_recent, "--kv-recent");
    if (!r.ok()) return r.take_error();
    so.kv_recent = r.value();
  }
  if (f.has(3)) {
    auto fa = kv_detail::parse_flash(f.flash_attn, "--flash-attn");
    if (!fa.ok()) return fa.take_error();
    so.flash_attn = fa.value();
  }
  return ok_status();
}

// "kv f16/q8_0 (full/sliding), flash on" ("kv q4_0 + 32 recent at f16, ..." when a type is
// quantized and kv_recent > 0): the settings in a line for reports.
inline std::string describe_kv(const SessionOptions& so) {
  std::string s = "kv ";
  s += ggml_type_name(so.kv_type_full);
  if (so.kv_type_swa != so.kv_type_full) {
    s += "/";
    s += ggml_type_name(so.kv_type_swa);
    s += " (full/sliding)";
  }
  const auto quantized = [](GgmlType t) { return t == GgmlType::Q8_0 || t == GgmlType::Q4_0; };
  if (so.kv_recent > 0 && (quantized(so.kv_type_full) || quantized(so.kv_type_swa))) {
    s += " + " + std::to_string(so.kv_recent) + " recent at f16";
  }
  s += so.flash_attn == FlashAttn::kOff ? ", flash off" : ", flash on";
  return s;
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
