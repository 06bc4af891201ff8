// nibble list: the models in the store ($NIBBLE_HOME, default ~/.nibble), the bundled one first.
#include <sys/stat.h>

#include "cli/command.h"
#include "cli/gen_options.h"
#include "store/sha256.h"
#include "store/store.h"
#include "util/progress.h"

namespace nibble::cli {
namespace {

int run(bool json) {
  const ModelStore store = ModelStore::open_default(default_model_path());
  std::vector<std::string> problems;
  const auto entries = store.list(&problems);
  for (const auto& p : problems) std::fprintf(stderr, "nibble: list: skipping %s\n", p.c_str());
  if (json) {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& e : entries) {
      struct stat st {};
      const bool ok = ::stat(e.model_path.c_str(), &st) == 0;
      arr.push_back({{"name", e.name}, {"model", e.model_path}, {"size", ok ? st.st_size : 0},
                     {"modified_at", e.created}, {"bundled", e.bundled}});
    }
    std::printf("%s\n", arr.dump(2).c_str());
    return 0;
  }
  std::printf("%-32s %-12s %-10s %s\n", "NAME", "ID", "SIZE", "MODIFIED");
  for (const auto& e : entries) {
    struct stat st {};
    const bool ok = ::stat(e.model_path.c_str(), &st) == 0;
    const std::string id = sha256_hex(ModelStore::entry_to_json(e).dump()).substr(0, 12);
    std::printf("%-32s %-12s %-10s %s%s\n", e.name.c_str(), id.c_str(),
                ok ? format_bytes(static_cast<uint64_t>(st.st_size)).c_str() : "missing",
                e.created.c_str(), e.bundled ? " (bundled)" : "");
  }
  return 0;
}

void setup(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("list", "List the models in the store");
  cmd->alias("ls");
  auto json = std::make_shared<bool>(false);
  cmd->add_flag("--json", *json, "JSON output");
  cmd->callback([json, &exit_code] { exit_code = run(*json); });
}

}  // namespace
NIBBLE_REGISTER_COMMAND(list, 33, setup);
}  // namespace nibble::cli
