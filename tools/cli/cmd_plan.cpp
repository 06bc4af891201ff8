// nibble plan (MODEL.gguf | HF_DIR | --preset P) [--type T] [--ctx N] [--kv-type T |
// --kv-type-full T --kv-type-swa T] [--kv-recent N] [--batch N] [--gpu-layers N] [--json]; nibble plan --table.
// What a model needs in memory, from headers only (src/plan/plan.h).
#include <cstdio>
#include <filesystem>
#include <memory>

#include "cli/command.h"
#include "plan/guide_table.h"
#include "plan/plan.h"
#include "runtime/kv_cache.h"
#include "util/thread_pool.h"

namespace nibble::cli {
namespace {

struct Options {
  std::string model, preset, type, kv_type, kv_type_full, kv_type_swa;
  int64_t ctx = 0, batch = 256, gpu_layers = 0, kv_recent = 32;
  int threads = 0;
  bool json = false, table = false;
};

int run(const Options& o, CLI::App* cmd) {
  if (o.table) {
    if (!o.model.empty() || !o.preset.empty())
      return fail("plan: --table covers the four presets; give no MODEL or --preset with it");
    auto rows = guide_table();
    if (!rows.ok()) return fail("plan: " + rows.error().message);
    const std::string out = o.json ? guide_table_json(*rows) + "\n" : format_guide_table(*rows);
    std::fwrite(out.data(), 1, out.size(), stdout);
    return 0;
  }
  auto model = load_plan_source(o.model, o.preset, o.type);
  if (!model.ok()) return fail("plan: " + model.error().message);
  auto opts = plan_options_from_flags(o.ctx, cmd->count("--ctx") > 0, o.batch, o.gpu_layers, o.kv_type,
                                      o.kv_type_full, o.kv_type_swa, o.threads);
  if (!opts.ok()) return fail("plan: " + opts.error().message);
  opts->kv_recent = o.kv_recent;  // make_plan checks the range
  auto plan = make_plan(*model, *opts);
  if (!plan.ok()) return fail("plan: " + plan.error().message);
  const std::string out = o.json ? plan_json(*plan) + "\n" : format_plan(*plan);
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

void setup(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand(
      "plan", "Memory a model needs (weights, KV cache, buffers; RAM/VRAM) from headers only");
  auto o = std::make_shared<Options>();
  cmd->add_option("MODEL", o->model, "GGUF file or Hugging Face directory (config.json)");
  cmd->add_option("--preset", o->preset, "A released variant instead of MODEL: e2b, e4b, 31b, 26b-a4b");
  cmd->add_option("--type", o->type,
                  "Storage type for an HF dir or preset: F32, F16, BF16 (default) or a llama-quantize "
                  "type (Q4_0, Q8_0, Q4_K_M, Q2_K, SFP8, ...)");
  cmd->add_option("--ctx", o->ctx, "Context size (default: the model's, at most 4096, as `run`)");
  cmd->add_option("--kv-type", o->kv_type, "KV cache type of every layer: f32, f16 (default), q8_0, q4_0");
  cmd->add_option("--kv-type-full", o->kv_type_full, "KV cache type of full-attention layers");
  cmd->add_option("--kv-type-swa", o->kv_type_swa, "KV cache type of sliding-window layers");
  cmd->add_option("--kv-recent", o->kv_recent,
                  "Positions a q8_0/q4_0 KV cache also keeps at f16 (0 = off; 0 to 4096), as `run`")
      ->capture_default_str();
  cmd->add_option("--batch", o->batch, "Most tokens per forward call")->capture_default_str();
  cmd->add_option("--gpu-layers", o->gpu_layers,
                  "Blocks placed on a GPU, llama.cpp-style (accounting only: nibble runs on the CPU)")
      ->capture_default_str();
  cmd->add_option("--threads", o->threads, "Threads whose kernel scratch is counted (default: nibble's pool)");
  cmd->add_flag("--json", o->json, "JSON for tools");
  cmd->add_flag("--table", o->table, "The four presets at BF16/SFP8/Q4_0/Q8_0/Q4_K_M/Q2_K beside the published figures");
  cmd->callback([o, cmd, &exit_code] { exit_code = run(*o, cmd); });
}

}  // namespace
NIBBLE_REGISTER_COMMAND(plan, 60, setup);
}  // namespace nibble::cli
