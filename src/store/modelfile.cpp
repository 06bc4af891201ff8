// Modelfile parsing and the entries it builds.
#include "store/modelfile.h"

#include <cctype>
#include <filesystem>

#include "gguf/gguf_file.h"
#include "util/text.h"

namespace nibble {

namespace fs = std::filesystem;

namespace {

Error line_error(int line, const std::string& what) {
  return make_error(ErrorCode::kFormat, "Modelfile line %d: %s", line, what.c_str());
}

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

bool space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

// Reads one argument at text[pos...]: """...""" (may span lines), "..." (with \" and \\), or
// the rest of the line. Advances pos past it and the line end; counts newlines into `line`.
Result<std::string> read_arg(std::string_view text, size_t& pos, int& line, bool rest_of_line) {
  while (pos < text.size() && space(text[pos])) ++pos;
  if (text.substr(pos, 3) == "\"\"\"") {
    const int start_line = line;
    const size_t end = text.find("\"\"\"", pos + 3);
    if (end == std::string_view::npos) return line_error(start_line, "a \"\"\" string is never closed");
    std::string v(text.substr(pos + 3, end - pos - 3));
    for (char c : v) line += c == '\n';
    pos = end + 3;
    return v;
  }
  if (pos < text.size() && text[pos] == '"') {
    std::string v;
    size_t i = pos + 1;
    for (; i < text.size() && text[i] != '"'; ++i) {
      if (text[i] == '\n') return line_error(line, "a \" string is not closed on its line");
      if (text[i] == '\\' && i + 1 < text.size() && (text[i + 1] == '"' || text[i + 1] == '\\')) ++i;
      v += text[i];
    }
    if (i >= text.size()) return line_error(line, "a \" string is never closed");
    pos = i + 1;
    return v;
  }
  size_t end = pos;
  if (rest_of_line) {
    while (end < text.size() && text[end] != '\n') ++end;
  } else {
    while (end < text.size() && text[end] != '\n' && !space(text[end])) ++end;
  }
  std::string v(text.substr(pos, end - pos));
  while (!v.empty() && space(v.back())) v.pop_back();
  pos = end;
  return v;
}

void skip_to_line_end(std::string_view text, size_t& pos) {
  while (pos < text.size() && text[pos] != '\n') ++pos;
}

}  // namespace

Result<Modelfile> parse_modelfile(std::string_view text) {
  Modelfile mf;
  size_t pos = 0;
  int line = 1;
  bool have_from = false;
  while (pos < text.size()) {
    while (pos < text.size() && (space(text[pos]) || text[pos] == '\n')) {
      if (text[pos] == '\n') ++line;
      ++pos;
    }
    if (pos >= text.size()) break;
    if (text[pos] == '#') {
      skip_to_line_end(text, pos);
      continue;
    }
    size_t end = pos;
    while (end < text.size() && !space(text[end]) && text[end] != '\n') ++end;
    const std::string word(text.substr(pos, end - pos));
    const std::string inst = upper(word);
    const int here = line;
    pos = end;
    auto after = [&]() -> Status {
      while (pos < text.size() && space(text[pos])) ++pos;
      if (pos < text.size() && text[pos] != '\n' && text[pos] != '#') {
        return line_error(line, "unexpected text after the " + inst + " argument");
      }
      skip_to_line_end(text, pos);
      return ok_status();
    };
    if (inst == "FROM") {
      NIBBLE_ASSIGN_OR_RETURN(mf.from, read_arg(text, pos, line, true));
      if (mf.from.empty()) return line_error(here, "FROM needs a GGUF path or a model name");
      have_from = true;
    } else if (inst == "PARAMETER") {
      NIBBLE_ASSIGN_OR_RETURN(std::string name, read_arg(text, pos, line, false));
      NIBBLE_ASSIGN_OR_RETURN(std::string value, read_arg(text, pos, line, true));
      if (name.empty() || value.empty()) return line_error(here, "PARAMETER needs a name and a value");
      ModelParams check;
      Status st = check.set(name, value);
      if (!st.ok()) return line_error(here, st.error().message);
      mf.parameters.emplace_back(name, value);
    } else if (inst == "SYSTEM") {
      NIBBLE_ASSIGN_OR_RETURN(mf.system, read_arg(text, pos, line, true));
      mf.has_system = true;
    } else if (inst == "TEMPLATE") {
      NIBBLE_ASSIGN_OR_RETURN(mf.template_text, read_arg(text, pos, line, true));
      auto t = ChatTemplate::from_go_template(mf.template_text);
      if (!t.ok()) return line_error(here, t.error().message);
      mf.has_template = true;
    } else if (inst == "LICENSE") {
      NIBBLE_ASSIGN_OR_RETURN(std::string lic, read_arg(text, pos, line, true));
      if (!mf.license.empty()) mf.license += "\n";
      mf.license += lic;
      mf.has_license = true;
    } else if (inst == "MESSAGE") {
      NIBBLE_ASSIGN_OR_RETURN(std::string role, read_arg(text, pos, line, false));
      NIBBLE_ASSIGN_OR_RETURN(std::string content, read_arg(text, pos, line, true));
      if (role != "system" && role != "user" && role != "assistant") {
        return line_error(here, "MESSAGE role '" + printable(role, 32) +
                                    "' is not one of system, user, assistant");
      }
      mf.messages.push_back({role, content, ""});
    } else if (inst == "ADAPTER") {
      return line_error(here, "ADAPTER (LoRA adapters) is not supported by nibble");
    } else {
      return line_error(here, "unknown instruction '" + printable(word, 32) +
                                  "' (known: FROM, PARAMETER, SYSTEM, TEMPLATE, MESSAGE, LICENSE)");
    }
    NIBBLE_TRY(after());
  }
  if (!have_from) return make_error(ErrorCode::kFormat, "Modelfile has no FROM line (FROM ./model.gguf or FROM name)");
  return mf;
}

Result<StoreEntry> build_store_entry(const Modelfile& mf, const ModelStore& store,
                                     const std::string& base_dir, const std::string& name) {
  StoreEntry e;
  NIBBLE_ASSIGN_OR_RETURN(e.name, normalize_model_name(name));
  std::error_code ec;
  fs::path p(mf.from);
  if (p.is_relative() && (mf.from.rfind("./", 0) == 0 || mf.from.rfind("../", 0) == 0 ||
                          mf.from.find(".gguf") != std::string::npos)) {
    p = fs::path(base_dir) / p;
  }
  const bool is_file = fs::is_regular_file(p, ec);
  if (is_file || mf.from.find(".gguf") != std::string::npos || mf.from.rfind("/", 0) == 0) {
    if (!is_file) {
      return make_error(ErrorCode::kNotFound, "FROM %s: no such file", printable(p.string(), 200).c_str());
    }
    auto f = GgufFile::open(p.string());
    if (!f.ok()) return make_error(ErrorCode::kFormat, "FROM %s: %s", printable(p.string(), 200).c_str(), f.error().message.c_str());
    e.model_path = fs::absolute(p, ec).lexically_normal().string();
  } else {
    auto base = store.get(mf.from);
    if (!base.ok()) return make_error(base.error().code, "FROM %s", base.error().message.c_str());
    e = *base;
    e.name = normalize_model_name(name).value();
    e.bundled = false;
    e.created.clear();
  }
  e.from = mf.from;
  ModelParams own;
  for (const auto& [k, v] : mf.parameters) NIBBLE_TRY(own.set(k, v));
  e.params.overlay(own);
  if (mf.has_system) e.system = mf.system;
  if (mf.has_template) e.template_text = mf.template_text;
  if (mf.has_license) e.license = mf.license;
  if (!mf.messages.empty()) e.messages = mf.messages;
  return e;
}

std::string entry_to_modelfile(const StoreEntry& e) {
  auto quote3 = [](const std::string& s) { return "\"\"\"" + s + "\"\"\""; };
  std::string out = "# Modelfile of " + e.name + "\nFROM " + e.model_path + "\n";
  const std::string lines = e.params.to_lines();
  size_t start = 0;
  while (start < lines.size()) {
    const size_t nl = lines.find('\n', start);
    out += "PARAMETER " + lines.substr(start, nl - start) + "\n";
    start = nl + 1;
  }
  if (!e.system.empty()) out += "SYSTEM " + quote3(e.system) + "\n";
  if (!e.template_text.empty()) out += "TEMPLATE " + quote3(e.template_text) + "\n";
  for (const auto& m : e.messages) out += "MESSAGE " + m.role + " " + quote3(m.content) + "\n";
  if (!e.license.empty()) out += "LICENSE " + quote3(e.license) + "\n";
  return out;
}

}  // namespace nibble
