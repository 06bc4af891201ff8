#include "util/text.h"

#include <cstdint>

namespace nibble {

namespace {
// Length of the UTF-8 character starting at s[i] if it is well formed, else 1.
size_t char_length(std::string_view s, size_t i) {
  const auto lead = static_cast<uint8_t>(s[i]);
  size_t n = lead < 0x80 ? 1 : (lead >> 5) == 0x6 ? 2 : (lead >> 4) == 0xE ? 3 : (lead >> 3) == 0x1E ? 4 : 0;
  if (n <= 1) return 1;
  if (i + n > s.size()) return 1;
  for (size_t k = 1; k < n; ++k) {
    if ((static_cast<uint8_t>(s[i + k]) & 0xC0) != 0x80) return 1;
  }
  return n;
}
}  // namespace

std::string printable(std::string_view s, size_t max_bytes) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    if (i >= max_bytes) {
      out += "...";
      break;
    }
    const size_t n = char_length(s, i);
    const auto c = static_cast<uint8_t>(s[i]);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\\') {
      out += "\\\\";
    } else if (c < 0x20 || c == 0x7F || (n == 1 && c >= 0x80)) {
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    } else {
      out.append(s.substr(i, n));
    }
    i += n;
  }
  return out;
}

}  // namespace nibble
