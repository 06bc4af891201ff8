// The terminal loop of the interactive chat.
#include "cli/run_chat.h"

#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include <editline/readline.h>

#include "chat/engine.h"
#include "chat/repl.h"
#include "cli/command.h"

namespace nibble::cli {

namespace {

std::atomic<bool> g_interrupted{false};

void on_sigint(int) { g_interrupted.store(true); }

// Ctrl-C sets a flag (stopping a reply) instead of ending the process.
void install_sigint() {
  struct sigaction sa {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: a blocked read returns so the prompt can be redrawn
  sigaction(SIGINT, &sa, nullptr);
}

}  // namespace

ModelParams explicit_flag_params(const CLI::App* cmd, const SamplerParams& s, int64_t n_predict,
                                 int64_t ctx, const std::string& kv_type, const std::string& flash) {
  ModelParams p;
  auto given = [&](const char* flag) { return cmd->count(flag) > 0; };
  if (given("--n-predict")) p.num_predict = n_predict;
  if (given("--ctx") && ctx > 0) p.num_ctx = ctx;
  if (given("--temp")) p.temperature = s.temperature;
  if (given("--top-k")) p.top_k = s.top_k;
  if (given("--top-p")) p.top_p = s.top_p;
  if (given("--min-p")) p.min_p = s.min_p;
  if (given("--repeat-penalty")) p.repeat_penalty = s.repeat_penalty;
  if (given("--repeat-last-n")) p.repeat_last_n = s.repeat_last_n;
  if (given("--seed")) p.seed = s.seed;
  if (!kv_type.empty()) p.kv_cache_type = kv_type;
  if (flash == "on" || flash == "off") p.flash_attention = flash == "on";
  return p;
}

int run_chat(const ModelStore& store, const std::string& model, const ModelParams& overrides) {
  auto entry = store.resolve(model);
  if (!entry.ok()) return fail("run: " + entry.error().message);
  {
    ModelParams check;
    if (overrides.kv_cache_type) {
      Status st = check.set("kv_cache_type", *overrides.kv_cache_type);
      if (!st.ok()) return fail("run: " + st.error().message);
    }
  }
  entry->params.overlay(overrides);
  auto engine = Engine::load(entry->model_path);
  if (!engine.ok()) return fail("run: " + engine.error().message);
  const std::string name = entry->name;
  ChatRepl repl(store, std::move(*entry), std::move(*engine), stdout, stderr);
  install_sigint();
  const bool tty = isatty(STDIN_FILENO) != 0;
  std::string history_path;
  if (tty) {
    std::error_code ec;
    std::filesystem::create_directories(store.home(), ec);
    history_path = store.home() + "/history";
    using_history();
    read_history(history_path.c_str());
    std::printf("Chatting with %s. Type /? for help, /bye to leave.\n", name.c_str());
    std::fflush(stdout);
  }
  std::string last_line;
  while (true) {
    std::string line;
    g_interrupted.store(false);
    if (tty) {
      char* raw = readline(repl.prompt().c_str());
      if (raw == nullptr) {
        if (g_interrupted.exchange(false)) {
          std::printf("\nUse Ctrl + d or /bye to exit.\n");
          continue;
        }
        std::printf("\n");
        break;  // Ctrl-D
      }
      line = raw;
      std::free(raw);
      if (!line.empty() && line != last_line) {
        add_history(line.c_str());
        write_history(history_path.c_str());
        last_line = line;
      }
    } else if (!std::getline(std::cin, line)) {
      break;
    }
    if (!repl.handle(line, &g_interrupted)) break;
  }
  return 0;
}

}  // namespace nibble::cli
