// ChatRepl: commands and chat turns.
#include "chat/repl.h"

#include <sstream>

#include "chat/model_summary.h"
#include "util/progress.h"
#include "util/text.h"

namespace nibble {

namespace {

std::vector<std::string> split_words(const std::string& s, size_t max_parts) {
  // Splits into at most max_parts words; the last part keeps the rest of the line.
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size() && out.size() + 1 < max_parts) {
    while (i < s.size() && s[i] == ' ') ++i;
    size_t j = i;
    while (j < s.size() && s[j] != ' ') ++j;
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j;
  }
  while (i < s.size() && s[i] == ' ') ++i;
  if (i < s.size()) out.push_back(s.substr(i));
  return out;
}

std::string unquote(std::string v) {
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
  return v;
}

const char* kHelp =
    "Available commands:\n"
    "  /set            Set session variables (/? set for details)\n"
    "  /show           Show model information (/? show for details)\n"
    "  /load <model>   Load a session or model\n"
    "  /save <model>   Save your current session as a model in the store\n"
    "  /clear          Clear session context\n"
    "  /bye            Exit\n"
    "  /?, /help       Help for a command\n"
    "\n"
    "Use \"\"\" to begin a multi-line message; Ctrl-C stops a reply, Ctrl-D or /bye exits.\n";

const char* kHelpSet =
    "Available commands:\n"
    "  /set parameter NAME VALUE  Set a parameter:\n"
    "      num_ctx N, temperature T, top_k K, top_p P, min_p P, repeat_penalty R,\n"
    "      repeat_last_n N, seed S, num_predict N (-1: until the end of the turn),\n"
    "      stop TEXT (repeatable), kv_cache_type f32|f16|q8_0|q4_0, flash_attention true|false\n"
    "  /set system MESSAGE        Set the system message\n"
    "  /set think | nothink       Enable or disable thinking\n"
    "  /set verbose | quiet       Show or hide generation statistics\n";

const char* kHelpShow =
    "Available commands:\n"
    "  /show info        Details of this model\n"
    "  /show parameters  Parameters in force\n"
    "  /show template    The chat template and how nibble uses it\n"
    "  /show system      The system message\n"
    "  /show memory      Weights and KV cache bytes at the current context\n";

}  // namespace

ChatRepl::ChatRepl(const ModelStore& store, StoreEntry entry, std::unique_ptr<Engine> engine,
                   std::FILE* out, std::FILE* err)
    : store_(store), entry_(std::move(entry)), engine_(std::move(engine)), out_(out), err_(err) {
  system_ = entry_.system;
}

ModelParams ChatRepl::effective_params() const {
  ModelParams p = entry_.params;
  p.overlay(overrides_);
  return p;
}

void ChatRepl::error(const std::string& msg) {
  std::fprintf(err_, "Error: %s\n", msg.c_str());
  std::fflush(err_);
}

bool ChatRepl::handle(const std::string& raw, const std::atomic<bool>* cancel) {
  std::string line = raw;
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.pop_back();
  if (in_multiline_) {
    const size_t end = line.rfind("\"\"\"");
    if (end != std::string::npos && end + 3 == line.size()) {
      multiline_ += line.substr(0, end);
      in_multiline_ = false;
      chat(multiline_, cancel);
      multiline_.clear();
    } else {
      multiline_ += line + "\n";
    }
    return true;
  }
  if (line.rfind("\"\"\"", 0) == 0) {
    std::string rest = line.substr(3);
    if (rest.size() >= 3 && rest.compare(rest.size() - 3, 3, "\"\"\"") == 0) {
      chat(rest.substr(0, rest.size() - 3), cancel);
      return true;
    }
    in_multiline_ = true;
    multiline_ = rest.empty() ? "" : rest + "\n";
    return true;
  }
  if (line == "/bye" || line == "/exit") return false;
  if (!line.empty() && line[0] == '/') {
    command(line);
    return true;
  }
  size_t a = 0;
  while (a < line.size() && (line[a] == ' ' || line[a] == '\t')) ++a;
  if (a == line.size()) return true;
  chat(line, cancel);
  return true;
}

void ChatRepl::command(const std::string& line) {
  const auto w = split_words(line, 3);
  const std::string& cmd = w[0];
  if (cmd == "/?" || cmd == "/help") {
    help(w.size() > 1 ? w[1] : "");
  } else if (cmd == "/clear") {
    history_.clear();
    std::fprintf(out_, "Cleared session context\n");
  } else if (cmd == "/show") {
    if (w.size() < 2) {
      std::fputs(kHelpShow, out_);
    } else {
      show(w[1]);
    }
  } else if (cmd == "/save") {
    if (w.size() != 2) {
      error("usage: /save <model>");
    } else {
      save(w[1]);
    }
  } else if (cmd == "/load") {
    if (w.size() != 2) {
      error("usage: /load <model>");
    } else {
      load(w[1]);
    }
  } else if (cmd == "/set") {
    if (w.size() < 2) {
      std::fputs(kHelpSet, out_);
    } else if (w[1] == "parameter") {
      const auto pv = w.size() > 2 ? split_words(w[2], 2) : std::vector<std::string>{};
      if (pv.size() != 2) {
        error("usage: /set parameter NAME VALUE");
      } else {
        const std::string value = unquote(pv[1]);
        Status st = overrides_.set(pv[0], value);
        if (!st.ok()) {
          error(st.error().message);
        } else if (pv[0] == "num_ctx" || pv[0] == "kv_cache_type") {
          // Checked now rather than at the next message.
          auto kv = engine_->kv_report(effective_params());
          const int64_t train = engine_->model().info().n_ctx_train;
          if (!kv.ok()) {
            error(kv.error().message);
          } else if (overrides_.num_ctx && train > 0 && *overrides_.num_ctx > train) {
            error("num_ctx " + std::to_string(*overrides_.num_ctx) +
                  " is more than the model's training context of " + std::to_string(train));
            overrides_.num_ctx.reset();
          } else {
            std::fprintf(out_, "Set parameter '%s' to '%s'\n", pv[0].c_str(), printable(value, 80).c_str());
          }
        } else {
          std::fprintf(out_, "Set parameter '%s' to '%s'\n", pv[0].c_str(), printable(value, 80).c_str());
        }
      }
    } else if (w[1] == "system") {
      system_ = w.size() > 2 ? unquote(w[2]) : "";
      std::fprintf(out_, system_.empty() ? "Cleared system message.\n" : "Set system message.\n");
    } else if (w[1] == "think") {
      think_ = true;
      std::fprintf(out_, "Set 'think' mode.\n");
    } else if (w[1] == "nothink") {
      think_ = false;
      std::fprintf(out_, "Set 'nothink' mode.\n");
    } else if (w[1] == "verbose") {
      verbose_ = true;
      std::fprintf(out_, "Set 'verbose' mode.\n");
    } else if (w[1] == "quiet") {
      verbose_ = false;
      std::fprintf(out_, "Set 'quiet' mode.\n");
    } else {
      error("unknown /set option '" + printable(w[1], 40) + "' (/? set for help)");
    }
  } else {
    error("unknown command '" + printable(cmd, 40) + "'. Type /? for help");
  }
  std::fflush(out_);
}

void ChatRepl::help(const std::string& topic) {
  if (topic == "set" || topic == "/set") {
    std::fputs(kHelpSet, out_);
  } else if (topic == "show" || topic == "/show") {
    std::fputs(kHelpShow, out_);
  } else {
    std::fputs(kHelp, out_);
  }
}

void ChatRepl::show(const std::string& what) {
  const ModelParams p = effective_params();
  if (what == "info") {
    const ModelSummary s = summarize_gguf(engine_->model().file());
    std::fprintf(out_, "  Model\n");
    std::fprintf(out_, "    name                %s\n", printable(entry_.name, 80).c_str());
    std::fprintf(out_, "    file                %s\n", printable(entry_.model_path, 200).c_str());
    std::fprintf(out_, "    architecture        %s\n", printable(s.arch, 40).c_str());
    std::fprintf(out_, "    parameters          %s\n", format_param_count(s.n_params).c_str());
    std::fprintf(out_, "    quantization        %s\n", s.quantization.c_str());
    std::fprintf(out_, "    context length      %lld\n", static_cast<long long>(s.context_length));
    std::fprintf(out_, "    embedding length    %lld\n", static_cast<long long>(s.embedding_length));
    std::fprintf(out_, "    context in use      %lld\n", static_cast<long long>(engine_->context_for(p)));
    std::fprintf(out_, "    template            %s\n", engine_->gguf_template().describe().c_str());
    if (!p.empty()) {
      std::fprintf(out_, "\n  Parameters\n");
      std::istringstream lines(p.to_lines());
      for (std::string l; std::getline(lines, l);) std::fprintf(out_, "    %s\n", l.c_str());
    }
    if (!system_.empty()) std::fprintf(out_, "\n  System\n    %s\n", printable(system_, 200).c_str());
  } else if (what == "parameters") {
    if (p.empty()) {
      std::fprintf(out_, "No parameters set; defaults: temperature 0.8, top_k 40, top_p 0.95, min_p 0.05, num_ctx %lld.\n",
                   static_cast<long long>(engine_->context_for(p)));
    } else {
      std::fprintf(out_, "Model defined parameters and /set parameters:\n");
      std::istringstream lines(p.to_lines());
      for (std::string l; std::getline(lines, l);) std::fprintf(out_, "%-20s %s\n", l.substr(0, l.find(' ')).c_str(), l.substr(l.find(' ') + 1).c_str());
    }
  } else if (what == "template") {
    auto t = entry_.chat_template(engine_->gguf_template());
    std::fprintf(out_, "# %s\n", t.ok() ? t->describe().c_str() : t.error().message.c_str());
    const std::string& src = entry_.template_text.empty() ? engine_->gguf_template().source() : entry_.template_text;
    std::fprintf(out_, "%s\n", src.c_str());
  } else if (what == "system") {
    std::fprintf(out_, "%s\n", system_.empty() ? "No system message was specified for this model." : system_.c_str());
  } else if (what == "memory") {
    auto kv = engine_->kv_report(p);
    if (!kv.ok()) {
      error(kv.error().message);
      return;
    }
    std::fprintf(out_, "  weights             %s (%s, memory-mapped)\n", format_bytes(engine_->file_bytes()).c_str(),
                 printable(entry_.model_path, 200).c_str());
    std::fprintf(out_, "  context             %lld tokens\n", static_cast<long long>(kv->n_ctx));
    std::fprintf(out_, "  KV cache            %s (%s full-attention, %s sliding-window)\n",
                 format_bytes(kv->bytes.total()).c_str(), ggml_type_name(kv->types.full),
                 ggml_type_name(kv->types.swa));
    std::fprintf(out_, "    full attention    %s in %d layers\n", format_bytes(kv->bytes.full).c_str(), kv->n_full);
    std::fprintf(out_, "    sliding window    %s in %d layers\n", format_bytes(kv->bytes.swa).c_str(), kv->n_sliding);
    std::fprintf(out_, "    KV-shared layers  %d (no storage)\n", kv->n_shared);
    std::fprintf(out_, "  attention           %s\n", kv->flash ? "flash" : "materialized softmax");
    std::fprintf(out_, "  total               %s\n", format_bytes(engine_->file_bytes() + kv->bytes.total()).c_str());
  } else {
    error("unknown /show option '" + printable(what, 40) + "' (info, parameters, template, system, memory)");
  }
}

void ChatRepl::save(const std::string& name) {
  StoreEntry e = entry_;
  e.name = name;
  e.bundled = false;
  e.created.clear();
  e.params = effective_params();
  e.system = system_;
  // The conversation so far becomes the new model's preset messages (Ollama's /save).
  std::vector<ChatMessage> msgs = entry_.messages;
  msgs.insert(msgs.end(), history_.begin(), history_.end());
  e.messages = msgs;
  if (e.from.empty() || e.from == entry_.model_path) e.from = entry_.name;
  Status st = store_.put(e);
  if (!st.ok()) {
    error(st.error().message);
    return;
  }
  std::fprintf(out_, "Created new model '%s'\n", normalize_model_name(name).value().c_str());
}

void ChatRepl::load(const std::string& name) {
  auto e = store_.resolve(name);
  if (!e.ok()) {
    error(e.error().message);
    return;
  }
  std::fprintf(out_, "Loading model '%s'\n", printable(e->name, 80).c_str());
  std::fflush(out_);
  if (e->model_path != engine_->path()) {
    auto eng = Engine::load(e->model_path);
    if (!eng.ok()) {
      error(eng.error().message);
      return;
    }
    engine_ = std::move(*eng);
  } else {
    engine_->drop_session();
  }
  entry_ = std::move(*e);
  overrides_ = ModelParams();
  system_ = entry_.system;
  history_.clear();
}

void ChatRepl::chat(const std::string& text, const std::atomic<bool>* cancel) {
  const ModelParams p = effective_params();
  auto tmpl = entry_.chat_template(engine_->gguf_template());
  if (!tmpl.ok()) {
    error(tmpl.error().message);
    return;
  }
  std::vector<ChatMessage> msgs;
  if (!system_.empty()) msgs.push_back({"system", system_, ""});
  msgs.insert(msgs.end(), entry_.messages.begin(), entry_.messages.end());
  msgs.insert(msgs.end(), history_.begin(), history_.end());
  msgs.push_back({"user", text, ""});
  const int64_t n_ctx = engine_->context_for(p);
  const int64_t reserve = p.predict_limit() > 0 ? std::min(p.predict_limit(), n_ctx / 2) : n_ctx / 4;
  auto prompt = engine_->chat_tokens(*tmpl, msgs, RenderOptions{think_, true}, n_ctx - std::max<int64_t>(reserve, 1));
  if (!prompt.ok()) {
    error(prompt.error().message);
    return;
  }
  bool in_thinking = false, any = false;
  auto r = engine_->generate(*prompt, p, cancel, [&](const std::string& c, const std::string& th) {
    if (!th.empty() && think_) {
      if (!in_thinking) std::fputs("Thinking...\n", out_);
      in_thinking = true;
      std::fputs(th.c_str(), out_);
    }
    if (!c.empty()) {
      if (in_thinking) std::fputs("\n...done thinking.\n\n", out_);
      in_thinking = false;
      std::fputs(c.c_str(), out_);
      any = true;
    }
    std::fflush(out_);
    return true;
  });
  if (!r.ok()) {
    error(r.error().message);
    return;
  }
  if (in_thinking) std::fputs("\n...done thinking.\n", out_);
  std::fputs(any ? "\n\n" : "\n", out_);
  if (verbose_) {
    std::fprintf(out_, "prompt eval count:    %lld token(s) (%lld evaluated)\n",
                 static_cast<long long>(r->prompt_tokens), static_cast<long long>(r->prompt_evaluated));
    std::fprintf(out_, "prompt eval rate:     %.2f tokens/s\n",
                 r->prompt_seconds > 0 ? r->prompt_evaluated / r->prompt_seconds : 0.0);
    std::fprintf(out_, "eval count:           %lld token(s)\n", static_cast<long long>(r->eval_tokens));
    std::fprintf(out_, "eval rate:            %.2f tokens/s\n\n", r->eval_seconds > 0 ? r->eval_tokens / r->eval_seconds : 0.0);
  }
  std::fflush(out_);
  if (r->done_reason == "cancel") return;  // a stopped reply is not kept
  history_.push_back({"user", text, ""});
  history_.push_back({"assistant", r->content, r->thinking});
}

}  // namespace nibble
