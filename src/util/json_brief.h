// json_brief: a short one-line rendering of a JSON value from an untrusted file, for error
// messages. Not nlohmann's dump(): that recurses once per nesting level, so a deeply nested value
// in a hostile file would overflow the stack.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "util/text.h"

namespace nibble {

inline std::string json_brief(const nlohmann::json& v) {
  if (v.is_array()) return "[array of " + std::to_string(v.size()) + "]";
  if (v.is_object()) return "{object of " + std::to_string(v.size()) + "}";
  return printable(v.dump(), 64);  // a string, number, bool or null: escaped, one line
}

}  // namespace nibble
