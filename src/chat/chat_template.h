// Chat templates: turning a conversation into the prompt a model was trained on.
//
// nibble does not run Jinja. It recognises Gemma 4's template (the GGUF's tokenizer.chat_template:
// the E-series form, or the large 26B/31B form that opens an empty thought channel when thinking
// is off) and renders spec gemma4-architecture §6.3 natively. A GGUF with no template, or one
// nibble does not recognise, is rendered with the Gemma 4 E-series format (nibble only runs
// Gemma 4) and `recognised()` is false so callers can say so. A Modelfile TEMPLATE is an Ollama
// Go template; nibble supports its classic subset: {{ .System }}, {{ .Prompt }}, {{ .Response }},
// {{ if .X }} / {{ else }} / {{ end }}, and the {{- -}} trim markers.
//
// Rendering yields segments: template text (whose special-token spellings such as "<|turn>"
// become control tokens) and message text (never parsed for special tokens, so a user typing
// "<turn|>" cannot forge a turn).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "util/result.h"

namespace nibble {

struct ChatMessage {
  std::string role;      // system, developer, user, assistant (or model)
  std::string content;
  std::string thinking;  // an assistant's thoughts (never fed back to the model)
};

struct PromptSegment {
  std::string text;
  bool special = false;  // template text: special-token spellings are parsed
};

struct RenderOptions {
  bool think = false;                  // enable the thought channel (<|think|> in the system turn)
  bool add_generation_prompt = true;   // end with the opening of a model turn
};

class ChatTemplate {
 public:
  enum class Kind { kGemma4, kGemma4Large, kGoTemplate };

  // From a GGUF's tokenizer.chat_template ("" when the file has none).
  static ChatTemplate from_gguf(const std::string& jinja);
  // From a Modelfile TEMPLATE (Ollama Go-template subset); errors name the unsupported action.
  static Result<ChatTemplate> from_go_template(const std::string& text);

  // Errors: an unknown role, or a conversation with no user message where one is needed.
  Result<std::vector<PromptSegment>> render(const std::vector<ChatMessage>& messages,
                                            const RenderOptions& opts) const;

  Kind kind() const { return kind_; }
  bool recognised() const { return recognised_; }
  // The template text as given (Jinja or Go template).
  const std::string& source() const { return source_; }
  // One line for /show template and `nibble show`: what nibble does with this template.
  std::string describe() const;

  struct GoNode;  // parsed Go template (internal)

 private:
  Kind kind_ = Kind::kGemma4;
  bool recognised_ = false;
  std::string source_;
  std::shared_ptr<const std::vector<GoNode>> go_;
};

// The segments joined (for display and tests).
std::string join_segments(const std::vector<PromptSegment>& segs);

}  // namespace nibble
