// nibble ps: what a running `nibble serve` has loaded: name, size, effective context, KV cache
// bytes by layer kind, where it runs, and until when (its /api/ps).
#include <httplib.h>

#include <cstdlib>

#include "cli/command.h"
#include "store/json_io.h"
#include "util/progress.h"
#include "util/text.h"

namespace nibble::cli {
namespace {

int run(std::string host) {
  if (host.empty()) {
    const char* env = std::getenv("NIBBLE_HOST");
    host = env != nullptr && *env != '\0' ? env : "127.0.0.1:11434";
  }
  if (host.find("://") == std::string::npos) host = "http://" + host;
  httplib::Client cli(host);
  cli.set_connection_timeout(5, 0);
  cli.set_read_timeout(10, 0);
  auto r = cli.Get("/api/ps");
  if (!r) {
    return fail("ps: no nibble server answers at " + printable(host, 120) + " (" + httplib::to_string(r.error()) +
                "); start one with `nibble serve`");
  }
  if (r->status != 200) return fail("ps: HTTP " + std::to_string(r->status) + " from " + printable(host, 120) + "/api/ps");
  auto j = parse_json_limited(r->body, "/api/ps reply");
  if (!j.ok() || !j->is_object() || !(*j)["models"].is_array()) return fail("ps: the server's /api/ps reply is not a model list");
  std::printf("%-28s %-12s %-10s %-10s %-8s %-24s %s\n", "NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT",
              "KV (FULL / SLIDING)", "UNTIL");
  for (const auto& m : (*j)["models"]) {
    if (!m.is_object()) continue;
    const std::string kv = format_bytes(m.value("/kv_cache_bytes/full_attention"_json_pointer, uint64_t{0})) + " / " +
                           format_bytes(m.value("/kv_cache_bytes/sliding_window"_json_pointer, uint64_t{0}));
    std::printf("%-28s %-12s %-10s %-10s %-8lld %-24s %s\n", printable(m.value("name", "?"), 28).c_str(),
                printable(m.value("digest", "?"), 12).substr(0, 12).c_str(),
                format_bytes(m.value("size", uint64_t{0})).c_str(), printable(m.value("processor", "CPU"), 10).c_str(),
                static_cast<long long>(m.value("context_length", int64_t{0})), kv.c_str(),
                printable(m.value("expires_at", ""), 30).c_str());
  }
  return 0;
}

void setup(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("ps", "List the models a running `nibble serve` has loaded");
  auto host = std::make_shared<std::string>();
  cmd->add_option("--host", *host, "Server address (default $NIBBLE_HOST, else 127.0.0.1:11434)");
  cmd->callback([host, &exit_code] { exit_code = run(*host); });
}

}  // namespace
NIBBLE_REGISTER_COMMAND(ps, 38, setup);
}  // namespace nibble::cli
