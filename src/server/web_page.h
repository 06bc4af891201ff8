// The built-in web chat page served at / by `nibble serve` (one self-contained HTML file that
// talks to /api/tags and streams /api/chat).
#pragma once

#include <string>

namespace nibble {

const std::string& web_chat_page();

}  // namespace nibble
