// nibble rm NAME...: removes store entries (and downloaded GGUFs no other entry uses).
#include "cli/command.h"
#include "cli/gen_options.h"
#include "store/store.h"

namespace nibble::cli {
namespace {

void setup(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("rm", "Remove models from the store");
  auto names = std::make_shared<std::vector<std::string>>();
  cmd->add_option("NAME", *names, "Models to remove")->required();
  cmd->callback([names, &exit_code] {
    const ModelStore store = ModelStore::open_default(default_model_path());
    for (const auto& n : *names) {
      Status st = store.remove(n);
      if (!st.ok()) {
        exit_code = fail("rm: " + st.error().message);
        return;
      }
      std::printf("deleted '%s'\n", normalize_model_name(n).value().c_str());
    }
  });
}

}  // namespace
NIBBLE_REGISTER_COMMAND(rm, 36, setup);
}  // namespace nibble::cli
