// Gemma 4's chat format (spec gemma4-architecture §6.3) and Ollama's classic Go-template subset.
#include "chat/chat_template.h"

#include "util/text.h"

namespace nibble {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::string trim(const std::string& s) {
  size_t a = 0, b = s.size();
  while (a < b && is_space(s[a])) ++a;
  while (b > a && is_space(s[b - 1])) --b;
  return s.substr(a, b - a);
}

bool contains(const std::string& s, const char* needle) { return s.find(needle) != std::string::npos; }

Error bad_role(const std::string& role) {
  return make_error(ErrorCode::kInvalidArgument,
                    "message role '%s' is not supported (use system, user or assistant)",
                    printable(role, 32).c_str());
}

bool is_system(const std::string& r) { return r == "system" || r == "developer"; }
bool is_model(const std::string& r) { return r == "assistant" || r == "model"; }

}  // namespace

struct ChatTemplate::GoNode {
  enum Type { kText, kVar, kIf } type = kText;
  std::string text;  // kText: the text; kVar / kIf: the variable (System, Prompt, Response)
  std::vector<GoNode> then_nodes, else_nodes;
};

std::string join_segments(const std::vector<PromptSegment>& segs) {
  std::string s;
  for (const auto& p : segs) s += p.text;
  return s;
}

ChatTemplate ChatTemplate::from_gguf(const std::string& jinja) {
  ChatTemplate t;
  t.source_ = jinja;
  t.recognised_ = contains(jinja, "<|turn>") && contains(jinja, "<turn|>");
  // The large (26B/31B) template opens an empty thought channel when thinking is off; it spells
  // it as a Jinja string literal ("\n" escaped) or, rarely, with a real newline.
  const bool large = contains(jinja, "<|channel>thought\\n<channel|>") ||
                     contains(jinja, "<|channel>thought\n<channel|>");
  t.kind_ = t.recognised_ && large ? Kind::kGemma4Large : Kind::kGemma4;
  return t;
}

namespace {

// Splits a Go template into text and actions, honouring the {{- and -}} trim markers.
struct GoParser {
  const std::string& src;
  size_t pos = 0;
  bool trim_next = false;

  struct Tok {
    bool action = false;
    std::string text;  // the action's words (trimmed) or the text
  };

  Result<std::vector<Tok>> lex() {
    std::vector<Tok> toks;
    while (pos < src.size()) {
      size_t open = src.find("{{", pos);
      std::string text = src.substr(pos, open == std::string::npos ? std::string::npos : open - pos);
      if (trim_next) {
        size_t a = 0;
        while (a < text.size() && is_space(text[a])) ++a;
        text.erase(0, a);
        trim_next = false;
      }
      if (open == std::string::npos) {
        if (!text.empty()) toks.push_back({false, text});
        break;
      }
      size_t body = open + 2;
      if (body < src.size() && src[body] == '-' && body + 1 < src.size() && is_space(src[body + 1])) {
        while (!text.empty() && is_space(text.back())) text.pop_back();
        ++body;
      }
      if (!text.empty()) toks.push_back({false, text});
      const size_t close = src.find("}}", body);
      if (close == std::string::npos) {
        return make_error(ErrorCode::kFormat, "TEMPLATE: '{{' at byte %zu is never closed with '}}'", open);
      }
      size_t end = close;
      if (end > body && src[end - 1] == '-' && end - 1 > body && is_space(src[end - 2])) {
        --end;
        trim_next = true;
      }
      toks.push_back({true, trim(src.substr(body, end - body))});
      pos = close + 2;
    }
    return toks;
  }
};

Result<std::string> go_var(const std::string& word) {
  if (word == ".System" || word == ".Prompt" || word == ".Response") return word.substr(1);
  return make_error(ErrorCode::kUnsupported,
                    "TEMPLATE: '{{ %s }}' is not supported (nibble supports .System, .Prompt, "
                    ".Response, if/else/end)",
                    printable(word, 40).c_str());
}

// Parses tokens [i, ...) until an {{ else }} or {{ end }} (returned in `stop`) or the end.
Result<std::vector<ChatTemplate::GoNode>> go_parse(const std::vector<GoParser::Tok>& toks, size_t& i,
                                                   std::string& stop, int depth) {
  using Node = ChatTemplate::GoNode;
  std::vector<Node> out;
  if (depth > 32) return make_error(ErrorCode::kFormat, "TEMPLATE: if blocks nested more than 32 deep");
  while (i < toks.size()) {
    const auto& t = toks[i++];
    if (!t.action) {
      out.push_back({Node::kText, t.text, {}, {}});
      continue;
    }
    if (t.text.rfind("/*", 0) == 0) continue;  // a comment
    if (t.text == "end" || t.text == "else") {
      stop = t.text;
      return out;
    }
    if (t.text.rfind("if ", 0) == 0) {
      NIBBLE_ASSIGN_OR_RETURN(std::string var, go_var(trim(t.text.substr(3))));
      Node n{Node::kIf, var, {}, {}};
      std::string s;
      NIBBLE_ASSIGN_OR_RETURN(n.then_nodes, go_parse(toks, i, s, depth + 1));
      if (s == "else") {
        NIBBLE_ASSIGN_OR_RETURN(n.else_nodes, go_parse(toks, i, s, depth + 1));
      }
      if (s != "end") return make_error(ErrorCode::kFormat, "TEMPLATE: '{{ if %s }}' has no '{{ end }}'", ("." + var).c_str());
      out.push_back(std::move(n));
      continue;
    }
    NIBBLE_ASSIGN_OR_RETURN(std::string var, go_var(t.text));
    out.push_back({Node::kVar, var, {}, {}});
  }
  stop.clear();
  return out;
}

struct GoValues {
  std::string system, prompt, response;
  bool cut_at_response = false;  // the last turn: stop where the response would go
  const std::string& get(const std::string& v) const {
    return v == "System" ? system : v == "Prompt" ? prompt : response;
  }
};

// Returns false once rendering was cut at .Response.
bool go_render(const std::vector<ChatTemplate::GoNode>& nodes, const GoValues& v,
               std::vector<PromptSegment>& out) {
  using Node = ChatTemplate::GoNode;
  for (const auto& n : nodes) {
    if (n.type == Node::kText) {
      out.push_back({n.text, true});
    } else if (n.type == Node::kVar) {
      if (n.text == "Response" && v.cut_at_response) return false;
      if (!v.get(n.text).empty()) out.push_back({v.get(n.text), false});
    } else {
      const bool cond = !v.get(n.text).empty();
      if (!go_render(cond ? n.then_nodes : n.else_nodes, v, out)) return false;
    }
  }
  return true;
}

}  // namespace

Result<ChatTemplate> ChatTemplate::from_go_template(const std::string& text) {
  GoParser p{text};
  NIBBLE_ASSIGN_OR_RETURN(auto toks, p.lex());
  size_t i = 0;
  std::string stop;
  NIBBLE_ASSIGN_OR_RETURN(auto nodes, go_parse(toks, i, stop, 0));
  if (!stop.empty()) {
    return make_error(ErrorCode::kFormat, "TEMPLATE: '{{ %s }}' without a matching '{{ if }}'", stop.c_str());
  }
  ChatTemplate t;
  t.kind_ = Kind::kGoTemplate;
  t.recognised_ = true;
  t.source_ = text;
  t.go_ = std::make_shared<const std::vector<GoNode>>(std::move(nodes));
  return t;
}

std::string ChatTemplate::describe() const {
  switch (kind_) {
    case Kind::kGoTemplate:
      return "Modelfile TEMPLATE (Go template: .System, .Prompt, .Response, if/else/end)";
    case Kind::kGemma4Large:
      return "Gemma 4 (26B/31B form: an empty thought channel when thinking is off), rendered natively";
    case Kind::kGemma4:
      break;
  }
  if (recognised_) return "Gemma 4 (E2B/E4B form), rendered natively";
  if (source_.empty()) return "none in the model file; using the Gemma 4 format";
  return "not recognised (nibble renders Gemma 4's format, not general Jinja); using the Gemma 4 format";
}

Result<std::vector<PromptSegment>> ChatTemplate::render(const std::vector<ChatMessage>& messages,
                                                        const RenderOptions& opts) const {
  for (const auto& m : messages) {
    if (!is_system(m.role) && !is_model(m.role) && m.role != "user") return bad_role(m.role);
  }
  std::vector<PromptSegment> out;
  if (kind_ == Kind::kGoTemplate) {
    GoValues v;
    for (const auto& m : messages) {
      if (is_system(m.role)) v.system = m.content;
    }
    bool first = true, have_prompt = false;
    auto emit = [&](bool last) {
      GoValues cur = v;
      if (!first) cur.system.clear();
      cur.cut_at_response = last;
      go_render(*go_, cur, out);
      first = false;
      v.prompt.clear();
      v.response.clear();
      have_prompt = false;
    };
    for (const auto& m : messages) {
      if (is_system(m.role)) continue;
      if (m.role == "user") {
        if (have_prompt) v.prompt += "\n\n";
        v.prompt += m.content;
        have_prompt = true;
      } else {
        v.response = m.content;
        emit(false);
      }
    }
    if (opts.add_generation_prompt) {
      emit(true);
    } else if (have_prompt) {
      emit(false);
    }
    return out;
  }
  // Gemma 4 (spec §6.3).
  out.push_back({"<bos>", true});
  const bool has_system = !messages.empty() && is_system(messages[0].role);
  if (has_system || opts.think) {
    out.push_back({"<|turn>system\n", true});
    if (opts.think) out.push_back({"<|think|>\n", true});
    if (has_system) out.push_back({trim(messages[0].content), false});
    out.push_back({"<turn|>\n", true});
  }
  for (const auto& m : messages) {
    if (is_system(m.role)) continue;
    std::string content = m.content;
    if (is_model(m.role)) {
      const size_t close = content.rfind("<channel|>");
      if (close != std::string::npos) content = content.substr(close + 10);
    }
    out.push_back({std::string("<|turn>") + (is_model(m.role) ? "model" : "user") + "\n", true});
    out.push_back({trim(content), false});
    out.push_back({"<turn|>\n", true});
  }
  if (opts.add_generation_prompt) {
    out.push_back({"<|turn>model\n", true});
    if (kind_ == Kind::kGemma4Large && !opts.think) out.push_back({"<|channel>thought\n<channel|>", true});
  }
  return out;
}

}  // namespace nibble
