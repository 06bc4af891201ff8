// nibble serve [--host 127.0.0.1] [--port 11434]: the Ollama and OpenAI HTTP APIs over the model
// store (src/server/server.h). Ctrl-C or SIGTERM stops it.
#include <csignal>
#include <cstdlib>
#include <semaphore.h>
#include <thread>

#include "cli/command.h"
#include "cli/gen_options.h"
#include "server/server.h"
#include "store/store.h"

namespace nibble::cli {
namespace {

sem_t g_stop_sem;

void on_stop_signal(int) { sem_post(&g_stop_sem); }  // async-signal-safe

struct Options {
  ServerOptions server;
  std::string keep_alive = "5m";
  size_t max_body_mib = 8;
  bool quiet = false;
};

Result<double> parse_duration(const std::string& s) {
  char* end = nullptr;
  const double n = std::strtod(s.c_str(), &end);
  const std::string unit(end == nullptr ? "" : end);
  double mult = 0;
  if (unit.empty() || unit == "s") mult = 1;
  if (unit == "m") mult = 60;
  if (unit == "h") mult = 3600;
  if (s.empty() || end == s.c_str() || mult == 0 || !std::isfinite(n)) {
    return make_error(ErrorCode::kInvalidArgument, "--keep-alive '%s' is not a duration (e.g. 5m, 30s, 0, -1)",
                      s.c_str());
  }
  return n * mult;
}

int run(Options o) {
  if (const char* host = std::getenv("NIBBLE_HOST"); host != nullptr && *host != '\0' && o.server.host.empty()) {
    o.server.host = host;
  }
  if (o.server.host.empty()) o.server.host = "127.0.0.1";
  auto ka = parse_duration(o.keep_alive);
  if (!ka.ok()) return fail("serve: " + ka.error().message);
  if (o.max_body_mib < 1 || o.max_body_mib > 1024) return fail("serve: --max-body-mib must be in [1, 1024]");
  o.server.default_keep_alive_s = *ka;
  o.server.max_body_bytes = o.max_body_mib << 20;
  o.server.log_requests = !o.quiet;
  ModelStore store = ModelStore::open_default(default_model_path());
  Server server(store, o.server);
  Status st = server.bind();
  if (!st.ok()) return fail("serve: " + st.error().message);
  std::fprintf(stderr, "nibble serve: listening on http://%s:%d (store %s; Ctrl-C stops)\n",
               o.server.host.c_str(), server.port(), store.home().c_str());
  std::fflush(stderr);
  sem_init(&g_stop_sem, 0, 0);
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
  std::thread watcher([&server] {
    while (sem_wait(&g_stop_sem) != 0) {
    }
    server.stop();
  });
  st = server.run();
  sem_post(&g_stop_sem);  // release the watcher when run() ended by itself
  watcher.join();
  if (!st.ok()) return fail("serve: " + st.error().message);
  std::fprintf(stderr, "nibble serve: stopped\n");
  return 0;
}

void setup(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("serve", "Serve the Ollama and OpenAI APIs (and a web chat at /)");
  auto o = std::make_shared<Options>();
  o->server.host.clear();
  cmd->add_option("--host", o->server.host, "Address to listen on (default 127.0.0.1; env NIBBLE_HOST)");
  cmd->add_option("--port", o->server.port, "Port (0: any free port)")->capture_default_str();
  cmd->add_option("--keep-alive", o->keep_alive,
                  "How long a model stays loaded after a request (5m, 30s, 0 = unload, -1 = forever)")
      ->capture_default_str();
  cmd->add_option("--max-body-mib", o->max_body_mib, "Largest request body, MiB")->capture_default_str();
  cmd->add_option("--max-queue", o->server.max_queue, "Requests that may wait for the model")->capture_default_str();
  cmd->add_flag("-q,--quiet", o->quiet, "Do not log each request");
  cmd->callback([o, &exit_code] { exit_code = run(*o); });
}

}  // namespace
NIBBLE_REGISTER_COMMAND(serve, 31, setup);
}  // namespace nibble::cli
