#include "convert/gemma4_chat_template.h"

namespace nibble {

namespace {
constexpr const char* kHead = R"JINJA({{ bos_token }}
{%- set enable_thinking = enable_thinking | default(false) -%}
{%- set first = messages[0] if messages else none -%}
{%- if (first and first['role'] in ['system', 'developer']) or enable_thinking -%}
{{ '<|turn>system\n' }}
{%- if enable_thinking -%}{{ '<|think|>\n' }}{%- endif -%}
{%- if first and first['role'] in ['system', 'developer'] -%}{{ first['content'] | trim }}{%- endif -%}
{{ '<turn|>\n' }}
{%- endif -%}
{%- for message in messages -%}
{%- if message['role'] not in ['system', 'developer'] -%}
{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}
{%- set content = message['content'] -%}
{%- if role == 'model' and '<channel|>' in content -%}{%- set content = content.split('<channel|>')[-1] -%}{%- endif -%}
{{ '<|turn>' + role + '\n' + (content | trim) + '<turn|>\n' }}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
{{ '<|turn>model\n' }})JINJA";
constexpr const char* kLargeTail = R"JINJA(
{%- if not enable_thinking -%}{{ '<|channel>thought\n<channel|>' }}{%- endif -%})JINJA";
constexpr const char* kEnd = R"JINJA(
{%- endif -%}
)JINJA";
}  // namespace

std::string gemma4_default_chat_template(bool large) {
  std::string t = kHead;
  if (large) t += kLargeTail;
  t += kEnd;
  return t;
}

}  // namespace nibble
