// Memory planning (src/plan): the KV cache of 31B at 262,144 tokens against a hand calculation
// from the spec's numbers; the plan against the runtime's own cache sizing; predicted against
// actual memory of real runs (the nibble binary as a subprocess: its --memory-report-json and the
// peak resident set the kernel reports for it, as /usr/bin/time -v does) for tiny-e and a
// synthetic E2B; `plan --table`, `fit` and hostile input.
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "plan/fit.h"
#include "plan/plan.h"
#include "model/registry.h"
#include "runtime/kv_cache.h"
#include "test_util.h"

extern char** environ;

namespace nibble {
namespace {

using json = nlohmann::json;

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

bool skip_slow() {
  const char* s = std::getenv("NIBBLE_SKIP_SLOW_TESTS");
  return s != nullptr && std::string(s) == "1";
}

// ---- 31B at Q4_0, 262,144 tokens: KV by hand ---------------------------------------------------

// Spec gemma4-architecture §1.2 and §5.3 for 31B: 60 layers, every 6th full (10 full, 50 sliding),
// no KV sharing; sliding layers 16 KV heads x head dim 256, window 1024; full layers 4 KV heads x
// head dim 512, K=V (V still cached). f16 = 2 bytes per element, K + V:
//   full:    81,920 bytes per token (10 x 4 x 512 x 2 x 2) x 262,144 tokens
//   sliding: 819,200 bytes per cached position (50 x 16 x 256 x 2 x 2); nibble's ring holds the
//            window - 1 positions plus one batch of 256 new tokens: 1024 - 1 + 256 = 1,279 slots.
// q8_0 stores 32 elements in 34 bytes (17/32 of f16's 64), q4_0 in 18 (9/32).
TEST(PlanKv, Gemma31bAt262kMatchesHandCalculation) {
  auto m = plan_model_from_preset("31b", "Q4_0");
  ASSERT_TRUE(m.ok()) << m.error().message;
  const uint64_t full_f16 = 81920ull * 262144ull;   // 21,474,836,480
  const uint64_t swa_f16 = 819200ull * 1279ull;     // 1,047,756,800
  ASSERT_EQ(full_f16, 21474836480ull);
  ASSERT_EQ(swa_f16, 1047756800ull);
  // Quantized layers also keep the last 32 positions at f16: a ring of 32 + 256 - 1 = 287
  // slots, f16 bytes per slot (81,920 over the full layers, 819,200 over the sliding ones).
  const uint64_t full_ring = 81920ull * 287, swa_ring = 819200ull * 287;
  struct Case { GgmlType t; int64_t recent; uint64_t full, swa; };
  const Case cases[] = {
      {GgmlType::F16, 32, full_f16, swa_f16},
      {GgmlType::Q8_0, 0, full_f16 / 32 * 17, swa_f16 / 32 * 17},  // 11,408,506,880 and 556,620,800
      {GgmlType::Q4_0, 0, full_f16 / 32 * 9, swa_f16 / 32 * 9},    // 6,039,797,760 and 294,681,600
      {GgmlType::Q8_0, 32, full_f16 / 32 * 17 + full_ring, swa_f16 / 32 * 17 + swa_ring},
      {GgmlType::Q4_0, 32, full_f16 / 32 * 9 + full_ring, swa_f16 / 32 * 9 + swa_ring},
  };
  for (const Case& c : cases) {
    PlanOptions o;
    o.n_ctx = 262144;
    o.kv_type_full = o.kv_type_swa = c.t;
    o.kv_recent = c.recent;
    auto p = make_plan(*m, o);
    ASSERT_TRUE(p.ok()) << p.error().message;
    EXPECT_EQ(p->kv_full_bytes, c.full) << ggml_type_name(c.t);
    EXPECT_EQ(p->kv_swa_bytes, c.swa) << ggml_type_name(c.t);
    EXPECT_EQ(p->kv_bytes, c.full + c.swa);
    EXPECT_EQ(p->n_kv_full_layers, 10);
    EXPECT_EQ(p->n_kv_swa_layers, 50);
    EXPECT_EQ(p->n_kv_shared_layers, 0);
    int keqv = 0;
    for (const auto& k : p->kv_layers) {
      keqv += k.k_eq_v;
      EXPECT_EQ(k.n_recent_slots, c.t == GgmlType::F16 || c.recent == 0 ? 0 : 287);
      if (k.sliding) {
        EXPECT_EQ(k.n_slots, 1279);
        EXPECT_TRUE(k.ring);
      } else {
        EXPECT_EQ(k.n_slots, 262144);
      }
    }
    EXPECT_EQ(keqv, 10);  // the full layers
  }
  // Mixed types per layer kind.
  PlanOptions o;
  o.n_ctx = 262144;
  o.kv_type_full = GgmlType::Q4_0;
  o.kv_type_swa = GgmlType::F16;
  auto p = make_plan(*m, o);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->kv_full_bytes, 6039797760ull + full_ring);
  EXPECT_EQ(p->kv_swa_bytes, 1047756800ull);
  // --kv-recent out of range.
  o.kv_recent = 4097;
  auto bad = make_plan(*m, o);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("0 to 4096"), std::string::npos) << bad.error().message;
}

// E2B: KV sharing (20 of 35 layers read another layer's cache), 3 full + 12 sliding owners.
TEST(PlanKv, E2bSharedLayersHoldNothing) {
  auto m = plan_model_from_preset("e2b", "Q4_0");
  ASSERT_TRUE(m.ok()) << m.error().message;
  PlanOptions o;
  o.n_ctx = 32768;
  auto p = make_plan(*m, o);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->n_kv_shared_layers, 20);
  EXPECT_EQ(p->n_kv_full_layers, 3);
  EXPECT_EQ(p->n_kv_swa_layers, 12);
  // Spec §5.3: 6,144 bytes per token on full layers; sliding 12,288 per slot x (512 - 1 + 256).
  EXPECT_EQ(p->kv_full_bytes, 6144ull * 32768);
  EXPECT_EQ(p->kv_swa_bytes, 12288ull * 767);
  EXPECT_GT(p->lazy_bytes, 0u);  // the PLE table
  EXPECT_EQ(p->lazy_bytes, p->ple_table_bytes);
}

// The plan against the runtime's own sizing (KvCache::estimate), for the bundled model.
TEST(PlanKv, AgreesWithRuntimeCacheSizing) {
  const std::string path = test::source_dir() + "/models/nibble-tiny-e.gguf";
  auto pm = plan_model_from_gguf(path);
  ASSERT_TRUE(pm.ok()) << pm.error().message;
  auto model = load_model(path);
  ASSERT_TRUE(model.ok()) << model.error().message;
  for (GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::Q8_0, GgmlType::Q4_0}) {
    for (int64_t ctx : {1, 63, 64, 300, 4096, 32768}) {
      for (int64_t batch : {1, 256}) {
        for (int64_t recent : {0, 32, 100}) {  // f16 recent positions of quantized caches
          PlanOptions o;
          o.n_ctx = ctx;
          o.n_batch = batch;
          o.kv_type_full = o.kv_type_swa = t;
          o.kv_recent = recent;
          auto p = make_plan(*pm, o);
          ASSERT_TRUE(p.ok()) << p.error().message;
          KvTypes types{t, t};
          types.recent = recent;
          const KvCacheBytes b = KvCache::estimate((*model)->kv_layout(), ctx, std::min(batch, ctx), types);
          EXPECT_EQ(p->kv_full_bytes, b.full) << ggml_type_name(t) << " ctx " << ctx << " recent " << recent;
          EXPECT_EQ(p->kv_swa_bytes, b.swa) << ggml_type_name(t) << " ctx " << ctx << " recent " << recent;
        }
      }
    }
  }
}

// The plan of an HF directory at a llama-quantize type against the GGUF nibble actually wrote for
// it (convert to BF16, then `quantize Q8_0`: the bundled model).
TEST(PlanWeights, HfDirPlanMatchesTheQuantizedFile) {
  NIBBLE_REQUIRE_SHARED();
  auto hf = test::run_nibble({"plan", test::shared_dir() + "/models/tiny-e/hf", "--type", "Q8_0", "--json"});
  auto gg = test::run_nibble({"plan", test::source_dir() + "/models/nibble-tiny-e.gguf", "--json"});
  ASSERT_EQ(hf.exit_code, 0) << hf.err;
  ASSERT_EQ(gg.exit_code, 0) << gg.err;
  json a = json::parse(hf.out), b = json::parse(gg.out);
  EXPECT_EQ(a["weights_bytes"], b["weights_bytes"]);
  EXPECT_EQ(a["weights"]["groups"], b["weights"]["groups"]);
  EXPECT_EQ(a["kv_bytes"], b["kv_bytes"]);
  // And the file's own tensor data: the sum of its tensors' sizes.
  auto file = plan_model_from_gguf(test::source_dir() + "/models/nibble-tiny-e.gguf");
  ASSERT_TRUE(file.ok());
  uint64_t sum = 0;
  for (const auto& t : file->tensors) sum += t.n_bytes;
  EXPECT_EQ(a["weights_bytes"].get<uint64_t>(), sum);
}

TEST(FitCli, HardwareCheckReadsNvidiaSmi) {
  const std::string fake = test::temp_dir() + "/nvidia-smi";
  {
    std::ofstream f(fake);
    f << "#!/bin/sh\necho 'NVIDIA H100 80GB HBM3, 81559, 80000'\necho 'NVIDIA L4, 23034, 22000'\n";
  }
  chmod(fake.c_str(), 0755);
  HardwareInfo hw = probe_hardware(fake);
  ASSERT_EQ(hw.gpus.size(), 2u);
  EXPECT_EQ(hw.gpus[0].name, "NVIDIA H100 80GB HBM3");
  EXPECT_EQ(hw.gpus[0].total_bytes, 81559ull << 20);
  EXPECT_EQ(hw.gpus[1].free_bytes, 22000ull << 20);
}

// ---- predicted vs actual -----------------------------------------------------------------------

struct Measured {
  json report;
  uint64_t maxrss = 0;  // the child's peak resident set (wait4), bytes
  std::string err;
  int exit_code = -1;
};

// Runs nibble with args, stdout discarded, stderr captured, and its rusage.
Measured run_measured(const std::vector<std::string>& args, const std::string& json_path) {
  Measured m;
  const std::string err_path = test::temp_dir() + "/stderr.txt";
  std::vector<std::string> all = {test::nibble_binary()};
  all.insert(all.end(), args.begin(), args.end());
  all.push_back("--memory-report-json");
  all.push_back(json_path);
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return m;
  int status = 0;
  struct rusage ru {};
  wait4(pid, &status, 0, &ru);
  m.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  m.maxrss = static_cast<uint64_t>(ru.ru_maxrss) * 1024;
  std::ifstream e(err_path);
  std::stringstream ss;
  ss << e.rdbuf();
  m.err = ss.str();
  std::ifstream j(json_path);
  if (j) m.report = json::parse(j, nullptr, false);
  return m;
}

double rel(double a, double b) { return b == 0 ? (a == 0 ? 0 : 1) : std::abs(a - b) / b; }

// Checks one run's report: exact KV, weights resident, each category, the sum, and the process
// peak (within 2% plus a few MB: code and allocator slack, and the moment of the peak).
void check_report(const Measured& m, const std::string& what, bool moe = false) {
  ASSERT_EQ(m.exit_code, 0) << what << ": " << m.err;
  ASSERT_TRUE(m.report.is_object()) << what << ": no JSON report; stderr: " << m.err;
  const json& a = m.report["actual"];
  const json& p = m.report["predicted"];
  ASSERT_TRUE(p.is_object()) << what;
  EXPECT_EQ(a["kv_bytes"].get<uint64_t>(), p["kv_bytes"].get<uint64_t>()) << what;
  EXPECT_EQ(a["kv_full_bytes"].get<uint64_t>(), p["kv_full_bytes"].get<uint64_t>()) << what;
  EXPECT_EQ(a["kv_swa_bytes"].get<uint64_t>(), p["kv_swa_bytes"].get<uint64_t>()) << what;
  const double w_act = a["weights_resident_bytes"].get<double>() - a["lazy_resident_bytes"].get<double>();
  const double w_pred = p["weights"]["cpu_bytes"].get<double>() - p["lazy_bytes"].get<double>();
  if (moe) {
    // Experts no token was routed to are never touched: resident may be below the plan's, by at
    // most the experts' bytes. How much below depends on the page cache as well as the routing:
    // with the file cached the kernel's fault-around maps neighbouring pages too (this machine:
    // 21.3 of 21.8 MB), with it cold only what was read (18.0 MB); CI saw 21.0.
    double experts = 0;
    for (const json& g : p["weights"]["groups"]) {
      if (g["group"] == "MoE experts" && g["device"] == "CPU") experts += g["bytes"].get<double>();
    }
    EXPECT_GT(experts, 0) << what << ": the plan lists no MoE experts";
    EXPECT_LE(w_act, w_pred * 1.001) << what << ": weights resident " << w_act << " vs " << w_pred;
    EXPECT_GE(w_act, (w_pred - experts) * 0.999)
        << what << ": weights resident " << w_act << " vs " << w_pred << " less " << experts << " of experts";
  } else {
    EXPECT_LT(rel(w_act, w_pred), 0.001) << what << ": weights resident " << w_act << " vs " << w_pred;
  }
  EXPECT_EQ(a["lazy_tensor_bytes"].get<uint64_t>(), p["lazy_bytes"].get<uint64_t>()) << what;
  const double ram_pred = p["ram_bytes"].get<double>();
  ASSERT_TRUE(a["heap_counted"].get<bool>()) << what;
  // Scratch and other heap: each within 2% of the predicted total.
  const double scratch_err = std::abs(a["buffers_bytes"].get<double>() - p["buffers_bytes"].get<double>());
  EXPECT_LT(scratch_err, 0.02 * ram_pred) << what << ": buffers " << a["buffers_bytes"] << " vs " << p["buffers_bytes"];
  const double other_pred = p["other"]["metadata_heap_bytes"].get<double>() + p["other"]["tokenizer_bytes"].get<double>() +
                            p["weights"]["norms_heap_bytes"].get<double>();
  EXPECT_LT(std::abs(a["other_heap_bytes"].get<double>() - other_pred), 0.02 * ram_pred) << what;
  // The plan's RAM against the categories each at its peak. For MoE the plan counts every expert
  // resident (the steady state of a long run); the expert bytes a short run left unmapped (bounded
  // above) come off the plan's figure.
  const double untouched = moe ? std::max(0.0, w_pred - w_act) : 0.0;
  EXPECT_LT(rel(a["category_sum_bytes"].get<double>(), ram_pred - untouched), 0.02)
      << what << ": categories " << a["category_sum_bytes"] << " vs plan " << ram_pred << " less " << untouched
      << " bytes of experts never paged in";
  if (kSanitized) return;  // ASan's shadow memory and quarantine make the RSS meaningless
  // The process peak, as the kernel reports it (wait4 = /usr/bin/time -v), against the plan plus
  // the code already resident at start and the lazily paged rows the run touched (reported apart).
  const double expect =
      ram_pred - untouched + a["baseline_rss_bytes"].get<double>() + a["lazy_resident_bytes"].get<double>();
  const double slack = 0.02 * expect + 4.0 * (1 << 20);
  EXPECT_LT(std::abs(static_cast<double>(m.maxrss) - expect), slack)
      << what << ": peak RSS " << m.maxrss << " vs plan + code + lazy rows " << expect;
  EXPECT_LT(std::abs(static_cast<double>(m.maxrss) - a["peak_rss_bytes"].get<double>()), 2.0 * (1 << 20)) << what;
}

std::string token_list(int n, int vocab) {
  std::string s = "2";
  for (int i = 1; i < n; ++i) s += "," + std::to_string(3 + (i * 7919) % (vocab - 3));
  return s;
}

// 300 prompt tokens: one full batch of 256 and a partial one, then decoding.
TEST(PlanActual, TinyEWithinTwoPercent) {
  const std::string model = test::source_dir() + "/models/nibble-tiny-e.gguf";
  const std::string dir = test::temp_dir();
  for (const char* ctx : {"4096", "32768"}) {
    // q8_0 with the default f16 recent ring (32 positions), q4_0 with a larger one.
    for (const char* kv : {"f16", "q8_0", "q4_0"}) {
      const std::string what = std::string("tiny-e ctx ") + ctx + " kv " + kv;
      std::vector<std::string> args = {"generate", model, "--tokens", token_list(300, 8192), "-n", "4", "--greedy",
                                       "--ctx", ctx, "--kv-type", kv};
      if (std::string(kv) == "q4_0") {
        args.push_back("--kv-recent");
        args.push_back("100");
      }
      Measured m = run_measured(args, dir + "/tiny-" + ctx + kv + ".json");
      check_report(m, what);
    }
  }
  // `run` builds a Tokenizer: its tables are in the plan too.
  std::string prompt;
  for (int i = 0; i < 60; ++i) prompt += "The quick brown fox jumps over the lazy dog near the river bank. ";
  Measured m = run_measured({"run", model, prompt, "-n", "4", "--temp", "0", "--ctx", "4096"}, dir + "/tiny-run.json");
  check_report(m, "tiny-e run");
}

// MoE and K=V full layers, BF16 weights (the float matmul path): tiny-moe converted here.
// Writes the file's dirty pages back and drops them from the page cache, so that the next run
// starts cold (nothing for fault-around to map beyond what it reads).
void drop_from_page_cache(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0) << path;
  EXPECT_EQ(fsync(fd), 0) << path;
  EXPECT_EQ(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0) << path;
  close(fd);
}

TEST(PlanActual, TinyMoeBf16WithinTwoPercent) {
  NIBBLE_REQUIRE_SHARED();
  const std::string dir = test::temp_dir();
  const std::string model = dir + "/tiny-moe-bf16.gguf";
  auto c = test::run_nibble({"convert", test::shared_dir() + "/models/tiny-moe/hf", "-o", model});
  ASSERT_EQ(c.exit_code, 0) << c.err;
  for (const char* ctx : {"4096", "32768"}) {
    for (const char* kv : {"f16", "q8_0"}) {
      // The long-context runs start with the model file out of the page cache, the others with it cached.
      const bool cold = std::string(ctx) == "32768";
      if (cold) drop_from_page_cache(model);
      std::string what = std::string("tiny-moe ctx ") + ctx + " kv " + kv;
      if (cold) what += ", cold page cache";
      Measured m = run_measured({"generate", model, "--tokens", token_list(300, 8192), "-n", "3", "--greedy",
                                 "--ctx", ctx, "--kv-type", kv},
                                dir + "/moe-" + ctx + kv + ".json");
      check_report(m, what, /*moe=*/true);
    }
  }
}

// Synthetic E2B (real widths, random Q4_0 weights). The full 35-layer file is 3 GB and takes
// minutes to write on a small machine, so the test keeps the first 5 layers (`synth --layers 5`:
// 3 sliding + ... at the real widths, the real 262,144-token embedding and PLE table).
TEST(PlanActual, SyntheticE2bWithinTwoPercent) {
  if (skip_slow()) GTEST_SKIP() << "NIBBLE_SKIP_SLOW_TESTS=1: skipping the synthetic E2B runs (~1 minute)";
  if (kSanitized) GTEST_SKIP() << "sanitizer build: the 680 MB synthetic model is too slow under ASan";
  const std::string dir = test::temp_dir();
  const std::string model = dir + "/e2b-l5-q4_0.gguf";
  auto s = test::run_nibble({"synth", "--preset", "e2b", "--type", "Q4_0", "--layers", "5", "-o", model});
  ASSERT_EQ(s.exit_code, 0) << s.err;
  for (const char* ctx : {"4096", "32768"}) {
    for (const char* kv : {"f16", "q8_0"}) {
      const std::string what = std::string("synthetic e2b ctx ") + ctx + " kv " + kv;
      Measured m = run_measured({"generate", model, "--tokens", token_list(300, 262144), "-n", "3", "--greedy",
                                 "--ctx", ctx, "--kv-type", kv},
                                dir + "/e2b-" + ctx + kv + ".json");
      check_report(m, what);
    }
  }
}

// ---- commands ----------------------------------------------------------------------------------

TEST(PlanCli, JsonHasTheTopLevelFields) {
  auto r = test::run_nibble({"plan", "--preset", "e4b", "--type", "Q4_K_M", "--ctx", "65536", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  for (const char* k : {"weights_bytes", "kv_bytes", "kv_full_bytes", "kv_swa_bytes", "buffers_bytes", "ram_bytes",
                        "vram_bytes", "lazy_bytes"}) {
    EXPECT_TRUE(j.contains(k)) << k;
  }
  EXPECT_EQ(j["kv_bytes"].get<uint64_t>(), j["kv_full_bytes"].get<uint64_t>() + j["kv_swa_bytes"].get<uint64_t>());
  EXPECT_EQ(j["vram_bytes"].get<uint64_t>(), 0u);
  // E4B §5.3: 16,384 bytes per token on full layers.
  EXPECT_EQ(j["kv_full_bytes"].get<uint64_t>(), 16384ull * 65536);
}

TEST(PlanCli, GpuLayersMoveBytesToVram) {
  auto cpu = test::run_nibble({"plan", "--preset", "31b", "--type", "Q4_0", "--ctx", "8192", "--json"});
  auto gpu = test::run_nibble({"plan", "--preset", "31b", "--type", "Q4_0", "--ctx", "8192", "--gpu-layers", "61", "--json"});
  ASSERT_EQ(cpu.exit_code, 0) << cpu.err;
  ASSERT_EQ(gpu.exit_code, 0) << gpu.err;
  json c = json::parse(cpu.out), g = json::parse(gpu.out);
  EXPECT_EQ(g["kv"]["gpu_bytes"].get<uint64_t>(), c["kv_bytes"].get<uint64_t>());
  // Everything but the input embedding is on the GPU, plus a second copy of the tied head.
  EXPECT_EQ(g["weights"]["gpu_bytes"].get<uint64_t>(), c["weights_bytes"].get<uint64_t>());
  auto text = test::run_nibble({"plan", "--preset", "31b", "--gpu-layers", "20"});
  EXPECT_NE(text.out.find("nibble runs on the CPU today"), std::string::npos) << text.out;
}

TEST(PlanCli, TableShowsPublishedFigures) {
  auto r = test::run_nibble({"plan", "--table"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* s : {"58.3", "30.4", "17.4", "69.9", "9.6", "Q4_K_M", "Q2_K", "SFP8", "Why the columns differ"}) {
    EXPECT_NE(r.out.find(s), std::string::npos) << s;
  }
  auto j = test::run_nibble({"plan", "--table", "--json"});
  ASSERT_EQ(j.exit_code, 0);
  json rows = json::parse(j.out);
  EXPECT_EQ(rows.size(), 24u);
}

TEST(FitCli, ExplainsWhatItGaveUp) {
  auto r = test::run_nibble({"fit", "--preset", "31b", "--ram", "32GiB", "--vram", "16GiB"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("gave up"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("layers on the GPU"), std::string::npos) << r.out;
  auto j = test::run_nibble({"fit", "--preset", "e2b", "--ram", "64GiB", "--vram", "0", "--json"});
  ASSERT_EQ(j.exit_code, 0) << j.err;
  json f = json::parse(j.out);
  EXPECT_EQ(f["type"], "BF16");  // everything fits: nothing given up
  EXPECT_EQ(f["n_ctx"], 131072);
  EXPECT_TRUE(f["gave_up"].empty());
  // A budget that forces a shorter context says so.
  auto c = test::run_nibble({"fit", "--preset", "26b-a4b", "--ram", "15GiB", "--vram", "0"});
  ASSERT_EQ(c.exit_code, 0) << c.err;
  EXPECT_NE(c.out.find("context cut to"), std::string::npos) << c.out;
  // The plan of the chosen settings fits the budget.
  auto cj = test::run_nibble({"fit", "--preset", "26b-a4b", "--ram", "15GiB", "--vram", "0", "--json"});
  json cf = json::parse(cj.out);
  EXPECT_LE(cf["plan"]["ram_bytes"].get<uint64_t>(), 15ull << 30);
}

TEST(FitCli, HardwareCheckWithoutNvidia) {
  HardwareInfo hw = probe_hardware("/nonexistent/nvidia-smi");
  EXPECT_GT(hw.ram_total_bytes, 0u);
  EXPECT_TRUE(hw.gpus.empty());
  EXPECT_NE(hw.gpu_note.find("no NVIDIA GPU"), std::string::npos);
  EXPECT_NE(format_hardware(hw).find("CPU"), std::string::npos);
}

// ---- hostile input -----------------------------------------------------------------------------

void expect_clean_error(const test::CommandResult& r, const std::string& needle) {
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(r.out.empty()) << r.out;
  EXPECT_EQ(r.err.rfind("nibble: ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << "expected '" << needle << "' in: " << r.err;
}

TEST(PlanHostile, BadFlagsAndFiles) {
  expect_clean_error(test::run_nibble({"plan", "--preset", "e2b", "--ctx", "0"}), "--ctx 0");
  expect_clean_error(test::run_nibble({"plan", "--preset", "e2b", "--ctx", "-5"}), "--ctx -5");
  expect_clean_error(test::run_nibble({"plan", "--preset", "e2b", "--ctx", "99999999999"}), "out of range");
  expect_clean_error(test::run_nibble({"plan", "--preset", "e5b"}), "unknown preset");
  expect_clean_error(test::run_nibble({"plan", "--preset", "e2b", "--type", "Q9_9"}), "Q9_9");
  expect_clean_error(test::run_nibble({"plan", "--preset", "e2b", "--kv-type", "q5_1"}), "q5_1");
  expect_clean_error(test::run_nibble({"plan", "--preset", "e2b", "--kv-type", "f16", "--kv-type-full", "q8_0"}),
                     "--kv-type");
  expect_clean_error(test::run_nibble({"plan", "--preset", "e2b", "--batch", "0"}), "--batch");
  expect_clean_error(test::run_nibble({"plan", "--preset", "e2b", "--gpu-layers", "-1"}), "--gpu-layers");
  expect_clean_error(test::run_nibble({"plan"}), "--preset");
  expect_clean_error(test::run_nibble({"plan", "/nonexistent/model.gguf"}), "does not exist");
  const std::string dir = test::temp_dir();
  // Corrupt GGUFs: garbage, and the bundled model cut inside its header.
  test::write_bytes(dir + "/garbage.gguf", std::vector<uint8_t>(4096, 0x5a));
  expect_clean_error(test::run_nibble({"plan", dir + "/garbage.gguf"}), "garbage.gguf");
  auto bytes = test::read_bytes(test::source_dir() + "/models/nibble-tiny-e.gguf");
  bytes.resize(100000);
  test::write_bytes(dir + "/cut.gguf", bytes);
  expect_clean_error(test::run_nibble({"plan", dir + "/cut.gguf"}), "cut.gguf");
  expect_clean_error(test::run_nibble({"plan", test::source_dir() + "/models/nibble-tiny-e.gguf", "--type", "Q4_0"}),
                     "--type");
  // A head size the block types cannot hold is refused like the runtime refuses it.
  auto ok = test::run_nibble({"plan", test::source_dir() + "/models/nibble-tiny-e.gguf", "--kv-type", "q4_0"});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;  // tiny-e's head sizes (64, 128) are multiples of 32
}

TEST(FitHostile, BadBudgets) {
  expect_clean_error(test::run_nibble({"fit", "--preset", "e2b", "--ram", "lots"}), "--ram");
  expect_clean_error(test::run_nibble({"fit", "--preset", "e2b", "--ram", "16XB"}), "unknown unit");
  expect_clean_error(test::run_nibble({"fit", "--preset", "e2b", "--ram", "0"}), "--ram");
  expect_clean_error(test::run_nibble({"fit", "--preset", "31b", "--ram", "1GiB", "--vram", "0"}), "nothing fits");
  expect_clean_error(test::run_nibble({"fit", "--preset", "e2b", "--ram", "16GiB", "--ctx-min", "0"}), "--ctx-min");
  expect_clean_error(test::run_nibble({"fit", "--preset", "e2b", "--ram", "16GiB", "--ctx-min", "1000000"}),
                     "training context");
  expect_clean_error(test::run_nibble({"fit", "--preset", "nope", "--ram", "16GiB"}), "unknown preset");
  expect_clean_error(test::run_nibble({"fit", "--preset", "e2b", "--ram", "16GiB", "--threads", "-3"}), "--threads");
  expect_clean_error(test::run_nibble({"plan", "--preset", "e2b", "--threads", "-1"}), "--threads");
  expect_clean_error(test::run_nibble({"plan", "--table", "--preset", "e2b"}), "--table");
}

// --kv-recent reaches the plans fit makes: the f16 recent ring of every quantized KV layer
// holds N + batch - 1 rows (none with 0), as in the plan fit prints.
TEST(FitCli, KvRecentReachesThePlan) {
  auto run_fit = [](const char* recent) {
    auto r = test::run_nibble({"fit", "--preset", "26b-a4b", "--ram", "15GiB", "--vram", "0",
                               "--kv-recent", recent, "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return json::parse(r.out);
  };
  for (int64_t recent : {0, 1024}) {
    const json f = run_fit(std::to_string(recent).c_str());
    EXPECT_EQ(f["plan"]["options"]["kv_recent"], recent);
    int quantized = 0;
    for (const auto& k : f["plan"]["kv"]["layers"]) {
      if (k["type"] != "q8_0" && k["type"] != "q4_0") continue;
      ++quantized;
      EXPECT_EQ(k["recent_slots"], recent == 0 ? 0 : recent + 256 - 1) << k.dump();
    }
    EXPECT_GT(quantized, 0) << "15 GiB should need a quantized KV cache for 26b-a4b";
  }
  expect_clean_error(test::run_nibble({"fit", "--preset", "e2b", "--ram", "16GiB", "--kv-recent", "5000"}),
                     "5000");
}

TEST(PlanUnits, ByteSizes) {
  EXPECT_EQ(parse_byte_size("16GiB", "x").value(), 16ull << 30);
  EXPECT_EQ(parse_byte_size("16G", "x").value(), 16ull << 30);
  EXPECT_EQ(parse_byte_size("24GB", "x").value(), 24000000000ull);
  EXPECT_EQ(parse_byte_size("512MiB", "x").value(), 512ull << 20);
  EXPECT_EQ(parse_byte_size("1.5GiB", "x").value(), 3ull << 29);
  EXPECT_EQ(parse_byte_size("1000", "x").value(), 1000u);
  EXPECT_FALSE(parse_byte_size("", "x").ok());
  EXPECT_FALSE(parse_byte_size("GiB", "x").ok());
  EXPECT_FALSE(parse_byte_size("1e400", "x").ok());
  EXPECT_FALSE(parse_byte_size("-5GiB", "x").ok());
  EXPECT_FALSE(parse_byte_size("99999999999TiB", "x").ok());
}

TEST(Plan, FormatCountGroupsThousands) {
  EXPECT_EQ(format_count(0), "0");
  EXPECT_EQ(format_count(999), "999");
  EXPECT_EQ(format_count(1000), "1,000");
  EXPECT_EQ(format_count(262144), "262,144");
  EXPECT_EQ(format_count(1234567), "1,234,567");
  EXPECT_EQ(format_count(18446744073709551615ull), "18,446,744,073,709,551,615");
}

}  // namespace
}  // namespace nibble
