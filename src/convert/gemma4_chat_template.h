// Gemma 4's chat template (Jinja), written into GGUFs whose checkpoint has none. Mirrors the
// rules of spec gemma4-architecture §6.3: <bos> from the template, a system turn when there is a
// system message or thinking is enabled, "model" for the assistant role, thoughts stripped from
// earlier model turns. `large` adds the empty thought channel the 26B/31B templates emit when
// thinking is off.
#pragma once

#include <string>

namespace nibble {

std::string gemma4_default_chat_template(bool large);

}  // namespace nibble
