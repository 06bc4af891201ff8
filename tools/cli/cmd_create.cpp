// nibble create NAME -f Modelfile: a store entry from a Modelfile (FROM, PARAMETER, SYSTEM,
// TEMPLATE, MESSAGE, LICENSE; see src/store/modelfile.h).
#include <filesystem>

#include "cli/command.h"
#include "cli/gen_options.h"
#include "store/json_io.h"
#include "store/modelfile.h"
#include "store/store.h"

namespace nibble::cli {
namespace {

struct Options {
  std::string name;
  std::string modelfile = "Modelfile";
};

int run(const Options& o) {
  const ModelStore store = ModelStore::open_default(default_model_path());
  auto text = read_small_file(o.modelfile, 1u << 20);
  if (!text.ok()) return fail("create: " + text.error().message);
  auto mf = parse_modelfile(*text);
  if (!mf.ok()) return fail("create: " + o.modelfile + ": " + mf.error().message);
  const std::string dir = std::filesystem::path(o.modelfile).parent_path().string();
  auto entry = build_store_entry(*mf, store, dir.empty() ? "." : dir, o.name);
  if (!entry.ok()) return fail("create: " + entry.error().message);
  const bool existed = store.exists(entry->name);
  Status st = store.put(*entry);
  if (!st.ok()) return fail("create: " + st.error().message);
  std::printf("%s model '%s' (%s)\n", existed ? "Replaced" : "Created", entry->name.c_str(),
              entry->model_path.c_str());
  return 0;
}

void setup(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("create", "Create a model in the store from a Modelfile");
  auto o = std::make_shared<Options>();
  cmd->add_option("NAME", o->name, "Name of the new model (model[:tag])")->required();
  cmd->add_option("-f,--file", o->modelfile, "The Modelfile")->capture_default_str();
  cmd->callback([o, &exit_code] { exit_code = run(*o); });
}

}  // namespace
NIBBLE_REGISTER_COMMAND(create, 32, setup);
}  // namespace nibble::cli
