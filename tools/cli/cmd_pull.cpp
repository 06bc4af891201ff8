// nibble pull URL | hf.co/ORG/REPO[:QUANT]: downloads a GGUF into the store, resumable and
// sha256-checked, with a progress bar (src/store/pull.h).
#include "cli/command.h"
#include "cli/gen_options.h"
#include "store/pull.h"
#include "store/store.h"
#include "util/progress.h"

namespace nibble::cli {
namespace {

int run(PullOptions o) {
  const ModelStore store = ModelStore::open_default(default_model_path());
  std::unique_ptr<ProgressBar> bar;
  uint64_t bar_total = 0;
  o.progress = [&](uint64_t done, uint64_t total) {
    if (!bar || total != bar_total) {
      bar = std::make_unique<ProgressBar>("pulling", total, /*bytes=*/true);
      bar_total = total;
    }
    bar->update(done);
  };
  auto r = pull_model(store, o);
  if (bar) bar->finish();
  if (!r.ok()) return fail("pull: " + r.error().message);
  if (r->resumed_from > 0) {
    std::fprintf(stderr, "nibble: pull: resumed after %s already downloaded\n", format_bytes(r->resumed_from).c_str());
  }
  std::printf("pulled %s (%s, sha256 %s)\n", r->entry.name.c_str(), format_bytes(r->bytes).c_str(), r->sha256.c_str());
  return 0;
}

void setup(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("pull", "Download a GGUF into the store: a URL or hf.co/ORG/REPO[:QUANT]");
  auto o = std::make_shared<PullOptions>();
  cmd->add_option("SOURCE", o->source, "https://.../model.gguf or hf.co/ORG/REPO[:QUANT]")->required();
  cmd->add_option("--name", o->name, "Store name (default: from the file or repository name)");
  cmd->add_option("--sha256", o->sha256, "Expected sha256 of a URL download (hf.co sources carry their own)");
  cmd->add_option("--base-url", o->hf_base_url,
                  "Hugging Face registry base URL (default $NIBBLE_HF_BASE_URL, else https://hf.co)");
  cmd->callback([o, &exit_code] { exit_code = run(*o); });
}

}  // namespace
NIBBLE_REGISTER_COMMAND(pull, 37, setup);
}  // namespace nibble::cli
