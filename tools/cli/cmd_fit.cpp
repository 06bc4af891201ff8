// nibble fit (MODEL | --preset P) [--vram SIZE] [--ram SIZE] [--ctx-min N] [--kv-recent N]
//            [--json]: the weights
// type (for an unquantized source), KV types, context and GPU/CPU split that fit, and what was
// given up. Without --ram/--vram it reads the machine (src/plan/fit.h).
#include <cstdio>
#include <memory>

#include "cli/command.h"
#include "plan/fit.h"
#include "plan/plan.h"
#include "runtime/kv_cache.h"

namespace nibble::cli {
namespace {

struct Options {
  std::string model, preset, vram, ram;
  int64_t ctx_min = 4096, batch = 256, kv_recent = 32;
  int threads = 0;
  bool json = false;
};

int run(const Options& o) {
  if (o.threads < 0) return fail("fit: --threads " + std::to_string(o.threads) + " is negative");
  if (o.kv_recent < 0 || o.kv_recent > kKvRecentMax) {
    return fail("fit: --kv-recent " + std::to_string(o.kv_recent) + ": 0 to " +
                std::to_string(kKvRecentMax) + " positions allowed");
  }
  auto base = load_plan_source(o.model, o.preset, "");
  if (!base.ok()) return fail("fit: " + base.error().message);
  const bool from_preset = !o.preset.empty();
  const bool unquantized = from_preset || plan_model_unquantized(*base);
  HardwareInfo hw = probe_hardware();
  FitRequest req;
  if (!o.ram.empty()) {
    auto r = parse_byte_size(o.ram, "--ram");
    if (!r.ok()) return fail("fit: " + r.error().message);
    req.ram_bytes = *r;
  } else {
    req.ram_bytes = hw.ram_available_bytes;
  }
  if (!o.vram.empty()) {
    auto v = parse_byte_size(o.vram, "--vram");
    if (!v.ok()) return fail("fit: " + v.error().message);
    req.vram_bytes = *v;
  } else {
    for (const auto& g : hw.gpus) req.vram_bytes = std::max(req.vram_bytes, g.free_bytes);
  }
  if (req.ram_bytes == 0) return fail("fit: no RAM budget (--ram, or /proc/meminfo unreadable)");
  req.ctx_min = o.ctx_min;
  req.n_batch = o.batch;
  req.kv_recent = o.kv_recent;
  req.n_threads = o.threads > 0 ? o.threads : default_thread_count();
  req.type_fixed = !unquantized;
  const PlanModel& m = *base;
  auto load = [&](const std::string& type) -> Result<PlanModel> {
    if (type.empty()) return m;
    if (from_preset) return plan_model_from_preset(o.preset, type);
    return retype_plan_model(m, type);
  };
  auto r = fit(req, load);
  if (!r.ok()) return fail("fit: " + r.error().message);
  const bool probed = o.ram.empty() || o.vram.empty();
  if (o.json) {
    std::printf("%s\n", fit_json(*r, req, probed ? &hw : nullptr).c_str());
  } else {
    if (probed) std::fputs(format_hardware(hw).c_str(), stdout);
    if (!unquantized) std::printf("weights stay %s (a quantized GGUF; `nibble quantize` makes other types)\n", m.type_name.c_str());
    std::fputs(format_fit(*r, req).c_str(), stdout);
  }
  return 0;
}

void setup(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand(
      "fit", "Choose the weights type, KV types, context and GPU/CPU split that fit the memory");
  auto o = std::make_shared<Options>();
  cmd->add_option("MODEL", o->model, "GGUF file or Hugging Face directory (config.json)");
  cmd->add_option("--preset", o->preset, "A released variant instead of MODEL: e2b, e4b, 31b, 26b-a4b");
  cmd->add_option("--vram", o->vram, "GPU memory budget, e.g. 16GiB (default: the largest free GPU memory; none = 0)");
  cmd->add_option("--ram", o->ram, "RAM budget, e.g. 32GiB (default: MemAvailable)");
  cmd->add_option("--ctx-min", o->ctx_min, "Smallest acceptable context")->capture_default_str();
  cmd->add_option("--batch", o->batch, "Most tokens per forward call")->capture_default_str();
  cmd->add_option("--kv-recent", o->kv_recent,
                  "Positions a q8_0/q4_0 KV cache also keeps at f16 (0 = off; 0 to 4096), as `run`")
      ->capture_default_str();
  cmd->add_option("--threads", o->threads, "Threads (default: nibble's pool)");
  cmd->add_flag("--json", o->json, "JSON for tools");
  cmd->callback([o, &exit_code] { exit_code = run(*o); });
}

}  // namespace
NIBBLE_REGISTER_COMMAND(fit, 61, setup);
}  // namespace nibble::cli
