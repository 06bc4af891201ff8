// nibble bench MODEL.gguf [-p 512] [-n 128] [-t THREADS] [-r 5] [-b 512] [--json]
//              [--membw-gbps X] [--kv-type T] [--kv-type-full T] [--kv-type-swa T]
//              [--flash-attn on|off|auto] [--profile]
// nibble bench --membw [--json]
// Prompt processing (pp) and generation (tg) speed with llama-bench's semantics
// (runtime/bench.h), the bytes of weights each token reads, the GB/s that makes, and its share of
// the machine's memory bandwidth (util/membw.h). Unless --membw-gbps gives a value, the bandwidth
// is measured before every timed run (1 GiB streaming read with all hardware threads, best of 3,
// ~0.1 s; the 1 GiB buffer is held while the benchmark runs) and a test's share uses the median
// of the values measured around its own runs: on a shared machine the bandwidth moves by tens of
// percent within minutes, and a share is only meaningful against the bandwidth of its minutes.
// --profile: after the tg test, where a token's time went, per weight matrix (ops/matmul_profile.h)
// over the timed runs, and the part spent outside the matmuls.
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "cli/command.h"
#include "cli/gen_options.h"
#include "model/registry.h"
#include "ops/int8_dot.h"
#include "ops/matmul_profile.h"
#include "quant/recipe.h"
#include "runtime/bench.h"
#include "util/membw.h"
#include "util/progress.h"
#include "util/thread_pool.h"

namespace nibble::cli {
namespace {

struct Args {
  std::string model;
  int64_t n_prompt = 512, n_gen = 128, n_batch = 512;
  int threads = 0, reps = 5;
  bool json = false, membw_only = false, profile = false;
  double membw_gbps = 0.0;
  uint32_t seed = 1;
  KvFlags kv;
};

// "Q4_0", "Q4_K_M", ... from general.file_type; "unknown" otherwise.
std::string file_type_name(const GgufFile& f) {
  auto ft = f.metadata().get_u32("general.file_type");
  if (!ft.ok()) return "unknown";
  for (const auto& info : ftype_table()) {
    if (static_cast<uint32_t>(info.ftype) == ft.value()) return info.cli_name;
  }
  return "ftype " + std::to_string(ft.value());
}

void print_json(const nlohmann::ordered_json& j) {
  std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace).c_str());
  std::fflush(stdout);
}

constexpr uint64_t kProbeBytes = 1ull << 30;

// The --profile report of a tg test: `tokens` decoded in `seconds` of timed runs.
void print_profile(const BenchResult& r, int64_t tokens, double seconds, uint64_t bytes_per_token, bool json) {
  const auto entries = matmul_profile_entries();
  const double token_ms = 1e3 * seconds / static_cast<double>(tokens);
  double matmul_s = 0, matmul_bytes = 0;
  for (const auto& e : entries) {
    matmul_s += e.seconds;
    matmul_bytes += e.bytes;
  }
  const double matmul_ms = 1e3 * matmul_s / static_cast<double>(tokens);
  const double per_tok = 1.0 / static_cast<double>(tokens);
  if (json) {
    nlohmann::ordered_json rows = nlohmann::ordered_json::array();
    for (const auto& e : entries) {
      rows.push_back({{"role", e.role},
                      {"type", ggml_type_name(e.type)},
                      {"n_in", e.n_in},
                      {"n_out", e.n_out},
                      {"calls_per_token", static_cast<double>(e.calls) * per_tok},
                      {"ms_per_token", 1e3 * e.seconds * per_tok},
                      {"pct_token", 100.0 * e.seconds / seconds},
                      {"bytes_per_token", e.bytes * per_tok},
                      {"gb_per_s", e.seconds > 0 ? e.bytes / e.seconds / 1e9 : 0.0}});
    }
    print_json(nlohmann::ordered_json{{"test", "profile"},
                                      {"of", r.test},
                                      {"tokens", tokens},
                                      {"ms_per_token", token_ms},
                                      {"matmul_ms_per_token", matmul_ms},
                                      {"matmul_bytes_per_token", matmul_bytes * per_tok},
                                      {"bytes_per_token", bytes_per_token},
                                      {"matrices", rows}});
    return;
  }
  std::printf("\nprofile of %s (%lld timed tokens): %.2f ms per token, %.2f ms (%.1f%%) in matmuls "
              "reading %.3f GB (the bytes-per-token figure above: %.3f GB)\n",
              r.test.c_str(), static_cast<long long>(tokens), token_ms, matmul_ms,
              100.0 * matmul_ms / token_ms, matmul_bytes * per_tok / 1e9, bytes_per_token / 1e9);
  std::printf("| weights (layers folded)           | type   |   n_in x n_out | calls/tok | ms/tok | %% token |  GB/s |\n");
  std::printf("| --------------------------------- | ------ | -------------: | --------: | -----: | ------: | ----: |\n");
  for (const auto& e : entries) {
    std::printf("| %-33s | %-6s | %6lld x %-6lld | %9.2f | %6.3f | %6.1f%% | %5.1f |\n", e.role.c_str(),
                ggml_type_name(e.type), static_cast<long long>(e.n_in), static_cast<long long>(e.n_out),
                static_cast<double>(e.calls) * per_tok, 1e3 * e.seconds * per_tok, 100.0 * e.seconds / seconds,
                e.seconds > 0 ? e.bytes / e.seconds / 1e9 : 0.0);
  }
  // Attention, norms, embedding rows, activations, the random next token.
  std::printf("| %-33s | %-6s | %14s | %9s | %6.3f | %6.1f%% | %5s |\n", "(outside the matmuls)", "", "", "",
              std::max(0.0, token_ms - matmul_ms), std::max(0.0, 100.0 * (1.0 - matmul_ms / token_ms)), "");
  std::fflush(stdout);
}

double median_of(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int run_membw(const Args& a) {
  auto m = measure_memory_bandwidth(kProbeBytes, 5, 0);
  if (!m.ok()) return fail("bench: " + m.error().message);
  if (a.json) {
    print_json(nlohmann::ordered_json{{"test", "membw"},
                {"gb_per_s", m->gb_per_s},
                {"median_gb_per_s", m->median_gb_per_s},
                {"threads", m->threads},
                {"buffer_bytes", m->buffer_bytes},
                {"runs", m->runs},
                {"loads", m->loads}});
  } else {
    std::printf("memory bandwidth: %.2f GB/s (streaming read of %s with %s loads, %d threads, "
                "best of %d reads; median %.2f GB/s)\n",
                m->gb_per_s, format_bytes(m->buffer_bytes).c_str(), m->loads, m->threads, m->runs,
                m->median_gb_per_s);
  }
  return 0;
}

int run(const Args& a) {
  if (a.membw_only) {
    if (!a.model.empty()) return fail("bench: --membw measures the machine, not a model; drop MODEL");
    return run_membw(a);
  }
  if (a.model.empty()) return fail("bench: no model given (nibble bench MODEL.gguf, or --membw)");
  BenchParams p;
  p.n_prompt = a.n_prompt;
  p.n_gen = a.n_gen;
  p.n_batch = a.n_batch;
  p.reps = a.reps;
  p.seed = a.seed;
  if (Status st = check_bench_params(p); !st.ok()) return fail(st.error().message);
  if (Status st = apply_kv_flags(a.kv, p.session); !st.ok()) {
    return fail("bench: " + st.error().message);
  }
  const std::string kv = describe_kv(p.session);
  if (a.threads < 0 || a.threads > 1024) {
    return fail("bench: -t " + std::to_string(a.threads) + ": 1..1024 threads allowed");
  }
  if (a.membw_gbps < 0) return fail("bench: --membw-gbps must be positive");
  if (a.profile && p.n_gen == 0) return fail("bench: --profile reports the tg test; it needs -n > 0");
  if (a.threads > 0) {
    set_pool_threads(a.threads);
    omp_set_num_threads(a.threads);
  }
  const int threads = pool_threads();

  auto model = load_model(a.model);
  if (!model.ok()) return fail("bench: " + model.error().message);
  const GgufFile& file = (*model)->file();
  auto bpt = weight_bytes_per_token(file);
  if (!bpt.ok()) return fail("bench: " + bpt.error().message);
  uint64_t weight_bytes = 0;
  for (const auto& t : file.tensors()) weight_bytes += t.n_bytes;
  const std::string type = file_type_name(file);
  const std::string name = std::filesystem::path(a.model).filename().string();

  // The bandwidth: given, or measured before every timed run (samples of the current test).
  // --profile starts recording at the tg test's first timed run (after its warm-up).
  std::unique_ptr<MemBandwidthProbe> probe;
  std::vector<double> samples;
  bool profile_tg = false;
  p.before_run = [&] {
    if (probe) {
      auto m = probe->measure(3);
      if (m.ok()) samples.push_back(m->gb_per_s);
    }
    if (profile_tg && !matmul_profile_enabled()) matmul_profile_enable(true);
  };
  if (a.membw_gbps == 0.0) {
    auto pr = MemBandwidthProbe::create(kProbeBytes, 0);
    if (pr.ok()) {
      probe = std::move(pr.value());
    } else {  // the speeds still count; only the share is missing
      std::fprintf(stderr,
                   "nibble: bench: memory bandwidth not measured (%s); --membw-gbps X gives it\n",
                   pr.error().message.c_str());
    }
  }

  if (!a.json) {
    std::printf("model: %s (%s, weights %s, %.3f GB read per token), %d threads, %s kernels, %s; "
                "memory bandwidth %s\n",
                name.c_str(), type.c_str(), format_bytes(weight_bytes).c_str(), bpt.value() / 1e9,
                threads, int8_dot_isa(), kv.c_str(),
                a.membw_gbps > 0 ? "given" : "measured before each run (median of a test's)");
    std::printf("| test   |          t/s (median ± sd) |   GB/s | membw GB/s | %% membw |\n");
    std::printf("| ------ | -------------------------: | -----: | ---------: | ------: |\n");
    std::fflush(stdout);
  }
  auto report = [&](const BenchResult& r) {
    const double gbs = bpt.value() * r.median / 1e9;
    const double bw = a.membw_gbps > 0 ? a.membw_gbps : median_of(samples);
    if (a.json) {
      print_json(nlohmann::ordered_json{{"engine", "nibble"},
                  {"test", r.test},
                  {"tokens_per_s", r.median},
                  {"stddev", r.stddev},
                  {"mean", r.mean},
                  {"samples", r.tokens_per_s},
                  {"gb_per_s", gbs},
                  {"pct_membw", bw > 0 ? nlohmann::ordered_json(100.0 * gbs / bw) : nullptr},
                  {"membw_gb_per_s", bw > 0 ? nlohmann::ordered_json(bw) : nullptr},
                  {"membw_samples", a.membw_gbps > 0 ? std::vector<double>{} : samples},
                  {"bytes_per_token", bpt.value()},
                  {"threads", threads},
                  {"kernels", int8_dot_isa()},
                  {"n_batch", a.n_batch},
                  {"kv_type_full", ggml_type_name(p.session.kv_type_full)},
                  {"kv_type_swa", ggml_type_name(p.session.kv_type_swa)},
                  {"kv_recent", p.session.kv_recent},
                  {"flash_attn", p.session.flash_attn != FlashAttn::kOff},
                  {"reps", a.reps},
                  {"type", type},
                  {"model", name}});
    } else {
      std::printf("| %-6s | %14.2f ± %-10.2f | %6.2f | %10.2f | %6.1f%% |\n", r.test.c_str(),
                  r.median, r.stddev, gbs, bw, bw > 0 ? 100.0 * gbs / bw : 0.0);
      std::fflush(stdout);
    }
  };
  if (p.n_prompt > 0) {
    samples.clear();
    auto r = bench_prompt(**model, p);
    if (!r.ok()) return fail(r.error().message);
    report(r.value());
  }
  if (p.n_gen > 0) {
    samples.clear();
    profile_tg = a.profile;
    auto r = bench_generate(**model, p);
    matmul_profile_enable(false);
    if (!r.ok()) return fail(r.error().message);
    report(r.value());
    if (a.profile) {
      double seconds = 0;
      for (double tps : r->tokens_per_s) seconds += static_cast<double>(p.n_gen) / tps;
      print_profile(r.value(), p.n_gen * static_cast<int64_t>(r->tokens_per_s.size()), seconds,
                    bpt.value(), a.json);
    }
  }
  return 0;
}

void setup(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand(
      "bench",
      "Measure prompt (pp) and generation (tg) speed like llama-bench, with GB/s and the share "
      "of memory bandwidth");
  auto a = std::make_shared<Args>();
  cmd->add_option("MODEL", a->model, "GGUF model (e.g. from `nibble synth`)");
  cmd->add_option("-p,--n-prompt", a->n_prompt, "Prompt tokens of the pp test (0 = skip)")
      ->capture_default_str();
  cmd->add_option("-n,--n-gen", a->n_gen, "Tokens generated in the tg test (0 = skip)")
      ->capture_default_str();
  cmd->add_option("-b,--batch-size", a->n_batch, "Prompt batch size")->capture_default_str();
  cmd->add_option("-t,--threads", a->threads, "Threads (default: $NIBBLE_THREADS or all cores)");
  cmd->add_option("-r,--repetitions", a->reps, "Timed runs per test (after one warm-up run)")
      ->capture_default_str();
  cmd->add_option("--seed", a->seed, "Seed of the random token ids")->capture_default_str();
  cmd->add_flag("--json", a->json, "One JSON object per line instead of a table");
  cmd->add_flag("--membw", a->membw_only,
                "Only measure the memory bandwidth (1 GiB streaming read with the widest vector "
                "loads, all threads, best of 5)");
  cmd->add_option("--membw-gbps", a->membw_gbps,
                  "Memory bandwidth in GB/s for the %% column (default: measured before every "
                  "timed run)");
  cmd->add_flag("--profile", a->profile,
                "After the tg test, where a token's time goes: per weight matrix (layers folded), "
                "calls, ms, share and GB/s, and the time outside the matmuls");
  add_kv_options(cmd, a->kv);
  cmd->callback([a, &exit_code] { exit_code = run(*a); });
}

}  // namespace
NIBBLE_REGISTER_COMMAND(bench, 50, setup);
}  // namespace nibble::cli
