// Helpers for the quality tests (imatrix, KL divergence): converted fixture models, sample texts.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "test_util.h"

namespace nibble::test {

// Folder of a model's checkpoint (hf/) and goldens: tests/fixtures/models/NAME, else
// ../shared/models/NAME; "" when neither exists.
inline std::string model_dir(const std::string& name) {
  const std::string repo = source_dir() + "/tests/fixtures/models/" + name;
  if (std::filesystem::exists(repo + "/hf/config.json")) return repo;
  const std::string shared = shared_dir();
  if (!shared.empty() && std::filesystem::exists(shared + "/models/" + name + "/hf/config.json")) {
    return shared + "/models/" + name;
  }
  return "";
}

// `nibble convert` of a model to a type, once per test process.
inline std::string converted_model(const std::string& name, const std::string& type) {
  static std::map<std::string, std::string> cache;
  const std::string key = name + "/" + type;
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  const std::string out = temp_dir() + "/" + name + "-" + type + ".gguf";
  auto r = run_nibble({"convert", model_dir(name) + "/hf", "-o", out, "--type", type});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return cache[key] = out;
}

// A deterministic English-like text of about n_bytes (needs nothing from ../shared).
inline std::string write_sample_text(size_t n_bytes) {
  static const char* kWords[] = {
      "the",      "old",    "prince", "said",    "that",  "war",    "and",   "peace",
      "were",     "not",    "so",     "far",     "apart", "as",     "his",   "son",
      "believed", "in",     "winter", "evening", "light", "fell",   "on",    "snow",
      "while",    "horses", "waited", "by",      "gate",  "of",     "house", "where",
      "nobody",   "spoke",  "about",  "letters", "from",  "Moscow", "yet"};
  const size_t n_words = sizeof(kWords) / sizeof(kWords[0]);
  std::string text;
  uint32_t state = 12345;
  int in_sentence = 0;
  while (text.size() < n_bytes) {
    state = state * 1664525u + 1013904223u;
    std::string w = kWords[(state >> 8) % n_words];
    if (in_sentence == 0) w[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(w[0])));
    text += w;
    if (++in_sentence > 6 + static_cast<int>((state >> 20) % 8)) {
      text += (state >> 28) % 4 == 0 ? ".\n" : ". ";
      in_sentence = 0;
    } else {
      text += (state >> 24) % 9 == 0 ? ", " : " ";
    }
  }
  const std::string path = temp_dir() + "/sample.txt";
  write_bytes(path, std::vector<uint8_t>(text.begin(), text.end()));
  return path;
}

// The first n_bytes of ../shared/data/valid.txt in a temporary file.
inline std::string write_valid_prefix(size_t n_bytes) {
  std::ifstream in(shared_dir() + "/data/valid.txt", std::ios::binary);
  std::string text(n_bytes, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  const std::string path = temp_dir() + "/valid-prefix.txt";
  write_bytes(path, std::vector<uint8_t>(text.begin(), text.end()));
  return path;
}

inline std::vector<float> read_f32_file(const std::string& path) {
  const auto bytes = read_bytes(path);
  std::vector<float> v(bytes.size() / 4);
  std::memcpy(v.data(), bytes.data(), v.size() * 4);
  return v;
}

}  // namespace nibble::test
