// Untrusted text made fit for one-line error messages: names and values read from files are
// escaped (control bytes, backslashes, broken UTF-8) and cut, so a hostile name can neither
// break the line nor reach the terminal as an escape sequence.
#pragma once

#include <string>
#include <string_view>

namespace nibble {

// "\n" -> "\\n", "\t" -> "\\t", other bytes < 0x20, 0x7F and stray bytes >= 0x80 -> "\\xNN";
// valid UTF-8 characters are kept; cut after `max_bytes` (at a character boundary) with "...".
std::string printable(std::string_view s, size_t max_bytes = 64);

}  // namespace nibble
