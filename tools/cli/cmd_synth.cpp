// nibble synth --preset e2b|e4b|31b|26b-a4b --type TYPE -o OUT.gguf [--seed N] [--layers N]
// A Gemma 4 GGUF with the real shapes and deterministic random weights, for benchmarks
// (convert/gemma4_synth.h). llama.cpp loads the same file.
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>

#include "cli/command.h"
#include "convert/gemma4_presets.h"
#include "convert/gemma4_synth.h"
#include "util/atomic_file.h"
#include "util/progress.h"

namespace nibble::cli {
namespace {

struct Args {
  std::string preset, type, out;
  uint64_t seed = 0;
  uint32_t layers = 0;
};

std::string preset_list() {
  std::string s;
  for (const auto& n : gemma4_preset_names()) s += (s.empty() ? "" : ", ") + n;
  return s;
}

int run(const Args& a) {
  SynthOptions o;
  o.preset = a.preset;
  o.type = a.type;
  o.out_path = a.out;
  o.seed = a.seed;
  o.n_layers = a.layers;
  o.note = [](const std::string& s) { std::fprintf(stderr, "synth: %s\n", s.c_str()); };
  if (a.type == "sfp8" || a.type == "SFP8") {
    std::fprintf(stderr, "synth: warning: SFP8 is a nibble extension: llama.cpp cannot read the file\n");
  }
  std::unique_ptr<ProgressBar> pb;
  o.progress = [&pb](uint64_t done, uint64_t total) {
    if (!pb) pb = std::make_unique<ProgressBar>("synthesizing", total, true);
    pb->update(done);
  };
  remove_partial_outputs_on_signals();
  const auto t0 = std::chrono::steady_clock::now();
  auto r = write_gemma4_synth(o);
  if (pb) pb->finish();
  if (!r.ok()) return fail(r.error().message);
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const SynthPlan& p = r.value();
  std::map<std::string, int> types;
  for (const auto& t : p.tensors) ++types[ggml_type_name(t.type)];
  std::string type_counts;
  for (const auto& [n, c] : types) type_counts += (type_counts.empty() ? "" : ", ") + n + " " + std::to_string(c);
  std::printf("synth: %s: gemma4 %s, %u layers, %s (general.file_type %u), %zu tensors (%s)\n",
              a.out.c_str(), a.preset.c_str(), p.cfg.n_layer, ftype_info(p.ftype).description,
              static_cast<unsigned>(p.ftype), p.tensors.size(), type_counts.c_str());
  std::printf("synth: %.3f B parameters, tensor data %s (%.3f bits/w), %.1f s\n", p.n_params / 1e9,
              format_bytes(p.n_bytes).c_str(), p.n_params ? 8.0 * p.n_bytes / p.n_params : 0.0,
              secs);
  return 0;
}

void setup(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand(
      "synth",
      "Write a Gemma 4 GGUF with the real shapes and random weights (for benchmarks; llama.cpp "
      "loads it too)");
  auto a = std::make_shared<Args>();
  cmd->add_option("--preset", a->preset, "Variant: " + preset_list())->required();
  cmd->add_option("--type", a->type,
                  "f32, f16, bf16 (as convert writes them) or a quantize recipe: Q4_0, Q8_0, "
                  "Q4_K_M, Q2_K, IQ4_XS, ... (see `nibble quantize --help`)")
      ->required();
  cmd->add_option("-o,--output", a->out, "Output GGUF (written atomically)")->required();
  cmd->add_option("--seed", a->seed, "Random seed (the same seed gives the same file)")
      ->capture_default_str();
  cmd->add_option("--layers", a->layers,
                  "Keep only the first N layers (the last one full-attention), at the real widths")
      ->check(CLI::Range(1u, 1000u));
  cmd->callback([a, &exit_code] { exit_code = run(*a); });
}

}  // namespace
NIBBLE_REGISTER_COMMAND(synth, 17, setup);
}  // namespace nibble::cli
