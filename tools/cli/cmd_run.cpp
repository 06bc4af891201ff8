// nibble run [MODEL] [PROMPT]: text in, streamed text out. MODEL is a .gguf path or a store name
// (`nibble list`); without MODEL it uses the bundled models/nibble-tiny-e.gguf. With a PROMPT (or
// a prompt piped on stdin) it completes the raw text; without one, on a terminal (or with
// --interactive), it is an interactive chat (src/chat/repl.h) with line editing and history.
// Sampling flags as llama.cpp; speed (prompt and generation tokens/s) goes to stderr.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <iterator>
#include <memory>

#include "cli/command.h"
#include "cli/gen_options.h"
#include "cli/memory_report.h"
#include "cli/run_chat.h"
#include "model/registry.h"
#include "runtime/session.h"
#include "sampling/sampler.h"
#include "tokenizer/tokenizer.h"

namespace nibble::cli {
namespace {

struct Options {
  std::vector<std::string> positional;  // [MODEL] [PROMPT]
  int64_t n_predict = 128;
  int64_t ctx = 0;
  bool ignore_eos = false;
  bool quiet = false;
  SamplerParams sampling;
  MemoryReportFlags mem;  // --memory-report
  KvFlags kv;
  bool interactive = false;  // -i: chat even when stdin is not a terminal
  ModelParams chat_params;   // flags given explicitly, for the chat
};

bool looks_like_model(const std::string& s) {
  return s.size() >= 5 && s.compare(s.size() - 5, 5, ".gguf") == 0;
}

int run(Options o) {
  MemoryReporter mem_reporter;  // --memory-report: RSS before loading
  Status valid = o.sampling.validate();
  if (!valid.ok()) return fail("run: " + valid.error().message);
  if (o.n_predict < 0) return fail("run: -n must be >= 0");
  const ModelStore store = ModelStore::open_default(default_model_path());
  std::string model_path, prompt;
  bool have_prompt = false;
  if (o.positional.size() > 2) return fail("run: expected [MODEL] [PROMPT], got more arguments");
  if (o.positional.size() == 2) {
    model_path = o.positional[0];
    prompt = o.positional[1];
    have_prompt = true;
  } else if (o.positional.size() == 1 &&
             (looks_like_model(o.positional[0]) || store.exists(o.positional[0]))) {
    model_path = o.positional[0];
  } else {
    model_path = default_model_path();
    if (o.positional.size() == 1) {
      prompt = o.positional[0];
      have_prompt = true;
    }
  }
  if (!have_prompt && (o.interactive || isatty(STDIN_FILENO) != 0)) {
    return run_chat(store, o.positional.empty() ? ModelStore::kBundledName : model_path,
                    o.chat_params);
  }
  if (!looks_like_model(model_path) && store.exists(model_path)) {  // a store name
    auto entry = store.get(model_path);
    if (!entry.ok()) return fail("run: " + entry.error().message);
    model_path = entry->model_path;
  }
  if (!have_prompt) prompt.assign(std::istreambuf_iterator<char>(std::cin), {});
  if (!std::filesystem::exists(model_path))
    return fail("run: model file '" + model_path + "' does not exist");

  auto model = load_model(model_path);
  if (!model.ok()) return fail("run: " + model.error().message);
  auto tok = Tokenizer::from_gguf((*model)->file().metadata());
  if (!tok.ok()) return fail("run: " + tok.error().message);
  const Tokenizer& tokenizer = **tok;
  std::vector<int32_t> ids = tokenizer.encode(prompt, /*add_bos=*/true, /*parse_special=*/true);
  // Exactly one BOS at position 0, also when the prompt spells "<bos>" itself (spec §6.3).
  if (ids.size() >= 2 && ids[0] == tokenizer.bos_id() && ids[1] == tokenizer.bos_id())
    ids.erase(ids.begin());
  SessionOptions so;
  if (Status kv = apply_kv_flags(o.kv, so); !kv.ok()) return fail("run: " + kv.error().message);
  so.n_ctx = o.ctx;
  auto session = Session::create(**model, so);
  if (!session.ok()) return fail("run: " + session.error().message);
  Session& s = **session;
  if (static_cast<int64_t>(ids.size()) >= s.n_ctx()) {
    return fail("run: the prompt is " + std::to_string(ids.size()) +
                " tokens, longer than the context of " + std::to_string(s.n_ctx()) +
                " tokens (use --ctx)");
  }
  std::vector<int32_t> stops;
  if (tokenizer.eos_id() >= 0) stops.push_back(tokenizer.eos_id());
  if (int32_t t = tokenizer.find_token("<turn|>"); t >= 0) stops.push_back(t);

  if (o.mem.enabled()) mem_reporter.before_eval(**model, s.kv_cache());
  Sampler sampler(o.sampling);
  for (int32_t id : ids) sampler.accept(id);
  std::vector<float> logits;
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  Status st = s.eval(ids, false, logits);
  if (!st.ok()) return fail("run: " + st.error().message);
  const auto t1 = clock::now();
  StreamDecoder dec(tokenizer);
  int64_t n_gen = 0;
  for (; n_gen < o.n_predict && s.n_past() < s.n_ctx(); ++n_gen) {
    const int32_t next = sampler.sample(logits);
    sampler.accept(next);
    if (!o.ignore_eos && std::find(stops.begin(), stops.end(), next) != stops.end()) break;
    const std::string text = dec.push(next);
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
    if (n_gen + 1 == o.n_predict || s.n_past() >= s.n_ctx()) {
      ++n_gen;
      break;
    }
    st = s.eval(std::span<const int32_t>(&next, 1), false, logits);
    if (!st.ok()) return fail("run: " + st.error().message);
  }
  const std::string rest = dec.flush();
  std::fwrite(rest.data(), 1, rest.size(), stdout);
  std::printf("\n");
  const auto t2 = clock::now();
  if (!o.quiet) {
    const double pp_s = std::chrono::duration<double>(t1 - t0).count();
    const double tg_s = std::chrono::duration<double>(t2 - t1).count();
    std::fprintf(stderr,
                 "nibble: prompt %zu tokens, %.1f tokens/s; generated %lld tokens, %.1f tokens/s\n",
                 ids.size(), pp_s > 0 ? ids.size() / pp_s : 0.0, static_cast<long long>(n_gen),
                 tg_s > 0 ? n_gen / tg_s : 0.0);
  }
  if (std::string e = emit_memory_report(o.mem, mem_reporter, **model, s.kv_cache(), s.n_past(), true); !e.empty())
    return fail("run: " + e);
  return 0;
}

void setup(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand(
      "run", "Generate text from a prompt, or chat when there is none (default model: the bundled tiny one)");
  auto o = std::make_shared<Options>();
  cmd->add_option("MODEL_AND_PROMPT", o->positional,
                  "[MODEL] [PROMPT]: MODEL is a .gguf file or a store name (nibble list). Without "
                  "PROMPT: an interactive chat on a terminal, else the prompt is read from stdin");
  cmd->add_flag("-i,--interactive", o->interactive,
                "Chat even when stdin is not a terminal (one message or /command per line)");
  cmd->add_option("-n,--n-predict", o->n_predict, "Most tokens to generate")->capture_default_str();
  cmd->add_option("--ctx", o->ctx, "Context size (default: the model's, at most 4096)");
  cmd->add_flag("--ignore-eos", o->ignore_eos, "Do not stop at end-of-sequence / end-of-turn");
  cmd->add_flag("-q,--quiet", o->quiet, "Do not print speed to stderr");
  add_sampling_options(cmd, o->sampling);
  add_memory_report_options(cmd, o->mem);
  add_kv_options(cmd, o->kv);
  cmd->callback([o, cmd, &exit_code] {
    o->chat_params = explicit_flag_params(cmd, o->sampling, o->n_predict, o->ctx, o->kv.kv_type,
                                          o->kv.flash_attn);
    exit_code = run(*o);
  });
}

}  // namespace
NIBBLE_REGISTER_COMMAND(run, 30, setup);
}  // namespace nibble::cli
