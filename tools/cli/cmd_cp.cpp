// nibble cp SOURCE DESTINATION: copies a store entry under a new name (the GGUF is shared).
#include "cli/command.h"
#include "cli/gen_options.h"
#include "store/store.h"

namespace nibble::cli {
namespace {

void setup(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("cp", "Copy a model in the store");
  auto args = std::make_shared<std::pair<std::string, std::string>>();
  cmd->add_option("SOURCE", args->first, "Model to copy")->required();
  cmd->add_option("DESTINATION", args->second, "New name")->required();
  cmd->callback([args, &exit_code] {
    const ModelStore store = ModelStore::open_default(default_model_path());
    Status st = store.copy(args->first, args->second);
    if (!st.ok()) {
      exit_code = fail("cp: " + st.error().message);
      return;
    }
    std::printf("copied '%s' to '%s'\n", normalize_model_name(args->first).value().c_str(),
                normalize_model_name(args->second).value().c_str());
  });
}

}  // namespace
NIBBLE_REGISTER_COMMAND(cp, 35, setup);
}  // namespace nibble::cli
