// UTF-8 helpers for the tokenizer: splitting text into characters (the BPE's base symbols) and
// finding where a byte string stops being complete UTF-8 (streaming decode). Not a general
// Unicode library: no normalisation, no character classes.
#pragma once

#include "util/text.h"  // printable()

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace nibble {

// U+2581 LOWER ONE EIGHTH BLOCK, SentencePiece's stand-in for a space.
inline constexpr std::string_view kSpaceMarker = "\xE2\x96\x81";
// U+FFFD REPLACEMENT CHARACTER, emitted for bytes that are not valid UTF-8.
inline constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";

// Length of the UTF-8 sequence a lead byte announces (2..4), 1 for ASCII, 0 for a byte that
// cannot start a sequence (continuation bytes, 0xC0/0xC1, 0xF5..0xFF).
inline size_t utf8_lead_length(uint8_t b) {
  if (b < 0x80) return 1;
  if (b < 0xC2) return 0;
  if (b < 0xE0) return 2;
  if (b < 0xF0) return 3;
  if (b < 0xF5) return 4;
  return 0;
}

// Whether `b` may follow `lead` as its first continuation byte (rejects overlong forms,
// surrogates and code points above U+10FFFF, as the Unicode standard's table 3-7 does).
inline bool utf8_valid_second(uint8_t lead, uint8_t b) {
  switch (lead) {
    case 0xE0:
      return b >= 0xA0 && b <= 0xBF;
    case 0xED:
      return b >= 0x80 && b <= 0x9F;
    case 0xF0:
      return b >= 0x90 && b <= 0xBF;
    case 0xF4:
      return b >= 0x80 && b <= 0x8F;
    default:
      return b >= 0x80 && b <= 0xBF;
  }
}

// Result of looking at the bytes from position i.
enum class Utf8Status { kComplete, kIncomplete, kInvalid };

// Checks the character starting at s[i]: kComplete with *n its length, kIncomplete when s ends
// inside a sequence that is valid so far (*n = bytes present), kInvalid when s[i] starts no
// valid sequence (*n = 1: skip one byte).
inline Utf8Status utf8_check(std::string_view s, size_t i, size_t* n) {
  const auto lead = static_cast<uint8_t>(s[i]);
  const size_t len = utf8_lead_length(lead);
  if (len == 0) {
    *n = 1;
    return Utf8Status::kInvalid;
  }
  for (size_t k = 1; k < len; ++k) {
    if (i + k >= s.size()) {
      *n = k;
      return Utf8Status::kIncomplete;
    }
    const auto b = static_cast<uint8_t>(s[i + k]);
    const bool ok = k == 1 ? utf8_valid_second(lead, b) : (b >= 0x80 && b <= 0xBF);
    if (!ok) {
      *n = 1;
      return Utf8Status::kInvalid;
    }
  }
  *n = len;
  return Utf8Status::kComplete;
}

// Length of the character at s[i] for splitting text into BPE symbols: a complete sequence, or
// one byte when the bytes there are not valid UTF-8 (each such byte becomes its own symbol and
// ends up as a <0xXX> token).
inline size_t utf8_char_length(std::string_view s, size_t i) {
  const auto lead = static_cast<uint8_t>(s[i]);
  if (lead < 0x80) return 1;
  size_t n = 1;
  return utf8_check(s, i, &n) == Utf8Status::kComplete ? n : 1;
}

// Number of characters as utf8_char_length splits them (Python's len() on valid UTF-8).
inline size_t utf8_count_chars(std::string_view s) {
  size_t count = 0;
  for (size_t i = 0; i < s.size(); i += utf8_char_length(s, i)) ++count;
  return count;
}

// Replaces every U+0020 space with U+2581 (the normaliser of Gemma's tokenizer).
inline std::string escape_spaces(std::string_view s) {
  std::string out;
  out.reserve(s.size() + s.size() / 4);
  for (char c : s) {
    if (c == ' ') {
      out.append(kSpaceMarker);
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// Replaces every U+2581 with a space (the decoder's inverse of escape_spaces).
inline std::string unescape_spaces(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    if (s.compare(i, kSpaceMarker.size(), kSpaceMarker) == 0) {
      out.push_back(' ');
      i += kSpaceMarker.size();
    } else {
      out.push_back(s[i++]);
    }
  }
  return out;
}


}  // namespace nibble
