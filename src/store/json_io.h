// JSON from untrusted sources (store manifests, HTTP request bodies): a size cap and a nesting
// cap checked while parsing, so hostile input can neither exhaust memory nor overflow the stack
// (nlohmann's dump() and comparisons recurse once per level).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "util/result.h"

namespace nibble {

inline Result<nlohmann::json> parse_json_limited(std::string_view text, const std::string& what,
                                                 int max_depth = 32) {
  bool too_deep = false;
  auto cb = [&](int depth, nlohmann::json::parse_event_t, nlohmann::json&) {
    if (depth > max_depth) too_deep = true;
    return !too_deep;
  };
  nlohmann::json j = nlohmann::json::parse(text.begin(), text.end(), cb, /*allow_exceptions=*/false);
  if (too_deep) {
    return make_error(ErrorCode::kFormat, "%s: JSON nested deeper than %d levels", what.c_str(), max_depth);
  }
  if (j.is_discarded()) return make_error(ErrorCode::kFormat, "%s: not valid JSON", what.c_str());
  return j;
}

// Reads a small file whole; errors name the path and say why.
Result<std::string> read_small_file(const std::string& path, size_t max_bytes);

}  // namespace nibble
