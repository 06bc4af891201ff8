// `nibble synth` and `nibble bench` from the command line: --json output parses and carries its
// fields (GB/s = bytes per token x tokens/s), and bad arguments give one clear line and exit 1
// without leaving an output file.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <tuple>

#include "gguf/gguf_file.h"
#include "ops/matmul_profile.h"
#include "test_util.h"

namespace nibble {
namespace {

std::string bundled_model() { return test::source_dir() + "/models/nibble-tiny-e.gguf"; }

std::vector<nlohmann::json> json_lines(const std::string& out) {
  std::vector<nlohmann::json> v;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) v.push_back(nlohmann::json::parse(line));  // throws: the test fails
  }
  return v;
}

void expect_one_line_error(const test::CommandResult& r, const std::string& mentions) {
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(r.err.rfind("nibble: ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(mentions), std::string::npos) << r.err;
}

TEST(BenchCli, JsonLinesHaveTheFields) {
  auto r = test::run_nibble({"bench", bundled_model(), "-p", "16", "-n", "4", "-r", "2", "-t", "1",
                             "--membw-gbps", "10", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto lines = json_lines(r.out);
  ASSERT_EQ(lines.size(), 2u) << r.out;
  EXPECT_EQ(lines[0]["test"], "pp16");
  EXPECT_EQ(lines[1]["test"], "tg4");
  for (const auto& j : lines) {
    EXPECT_EQ(j["engine"], "nibble");
    EXPECT_EQ(j["threads"], 1);
    EXPECT_TRUE(j["kernels"] == "avx512-vnni" || j["kernels"] == "avx2" || j["kernels"] == "generic")
        << j.dump();
    EXPECT_EQ(j["type"], "Q8_0");  // the bundled model's general.file_type
    EXPECT_EQ(j["model"], "nibble-tiny-e.gguf");
    EXPECT_EQ(j["reps"], 2);
    ASSERT_EQ(j["samples"].size(), 2u);
    const double ts = j["tokens_per_s"], sd = j["stddev"], gbs = j["gb_per_s"];
    const double bpt = j["bytes_per_token"];
    EXPECT_GT(ts, 0.0);
    EXPECT_GE(sd, 0.0);
    EXPECT_GT(bpt, 0.0);
    EXPECT_NEAR(gbs, bpt * ts / 1e9, 1e-9 * gbs + 1e-12);
    EXPECT_NEAR(j["pct_membw"].get<double>(), 100.0 * gbs / 10.0, 1e-9);
    // Median of two samples is their mean.
    const double a = j["samples"][0], b = j["samples"][1];
    EXPECT_NEAR(ts, 0.5 * (a + b), 1e-9 * ts);
    EXPECT_NEAR(sd, std::fabs(a - b) / std::sqrt(2.0), 1e-9 * (sd + 1));
  }
}

TEST(BenchCli, TableByDefault) {
  auto r = test::run_nibble({"bench", bundled_model(), "-p", "8", "-n", "0", "-r", "1",
                             "--membw-gbps", "10"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("| pp8"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("tg"), std::string::npos) << r.out;  // -n 0: no tg test
  EXPECT_NE(r.out.find("GB read per token"), std::string::npos) << r.out;
}

TEST(BenchCli, MembwJson) {
  auto r = test::run_nibble({"bench", "--membw", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto lines = json_lines(r.out);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["test"], "membw");
  EXPECT_GT(lines[0]["gb_per_s"].get<double>(), 0.1);
  EXPECT_EQ(lines[0]["buffer_bytes"], 1u << 30);
  EXPECT_EQ(lines[0]["runs"], 10);  // 5 runs, each without and with software prefetches
  EXPECT_FALSE(lines[0]["loads"].get<std::string>().empty());
}

// Without --membw-gbps the bandwidth is measured before every timed run, and a test's share
// is against the median of its own runs' measurements.
TEST(BenchCli, BandwidthMeasuredBeforeEveryRun) {
  auto r = test::run_nibble({"bench", bundled_model(), "-p", "0", "-n", "2", "-r", "3", "-t", "1",
                             "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto lines = json_lines(r.out);
  ASSERT_EQ(lines.size(), 1u) << r.out;
  const auto& j = lines[0];
  ASSERT_EQ(j["membw_samples"].size(), 3u);
  std::vector<double> s;
  for (const auto& v : j["membw_samples"]) s.push_back(v.get<double>());
  std::sort(s.begin(), s.end());
  EXPECT_GT(s[0], 0.0);
  EXPECT_DOUBLE_EQ(j["membw_gb_per_s"].get<double>(), s[1]);
  EXPECT_NEAR(j["pct_membw"].get<double>(), 100.0 * j["gb_per_s"].get<double>() / s[1], 1e-9);
}

TEST(MatmulProfile, RoleFoldsTheLayerNumber) {
  EXPECT_EQ(matmul_profile_role("blk.12.ffn_down.weight"), "blk.*.ffn_down.weight");
  EXPECT_EQ(matmul_profile_role("blk.0.attn_q.weight"), "blk.*.attn_q.weight");
  EXPECT_EQ(matmul_profile_role("output.weight"), "output.weight");
  EXPECT_EQ(matmul_profile_role("blk.x.attn_q.weight"), "blk.x.attn_q.weight");
  EXPECT_EQ(matmul_profile_role("blk.7"), "blk.7");
  EXPECT_EQ(matmul_profile_role(nullptr), "(unnamed)");
}

// --profile: over the timed tg runs, the matmuls of one decoded token read each 2-D weight of the
// file exactly once (the tied token embedding as the output head; the PLE table is a lookup):
// the oracle is the GGUF tensor list, independent of the forward pass.
TEST(BenchCli, ProfileReadsEveryMatrixOncePerToken) {
  auto r = test::run_nibble({"bench", bundled_model(), "-p", "0", "-n", "3", "-r", "2", "-t", "1",
                             "--membw-gbps", "10", "--profile", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto lines = json_lines(r.out);
  ASSERT_EQ(lines.size(), 2u) << r.out;
  EXPECT_EQ(lines[0]["test"], "tg3");
  const auto& p = lines[1];
  EXPECT_EQ(p["test"], "profile");
  EXPECT_EQ(p["of"], "tg3");
  EXPECT_EQ(p["tokens"], 6);  // 2 runs x 3 tokens; the warm-up is not recorded

  using Key = std::tuple<std::string, std::string, int64_t, int64_t>;
  std::map<Key, std::pair<double, double>> expect;  // calls and bytes per token
  auto file = GgufFile::open(bundled_model());
  ASSERT_TRUE(file.ok()) << file.error().message;
  for (const auto& t : (*file)->tensors()) {
    if (t.shape.size() != 2 || t.name == "per_layer_token_embd.weight") continue;
    auto& e = expect[{matmul_profile_role(t.name.c_str()), ggml_type_name(t.type),
                      static_cast<int64_t>(t.ne(0)), static_cast<int64_t>(t.ne(1))}];
    e.first += 1;
    e.second += static_cast<double>(t.n_bytes);
  }
  std::map<Key, std::pair<double, double>> got;
  double ms = 0, bytes = 0;
  for (const auto& m : p["matrices"]) {
    got[{m["role"].get<std::string>(), m["type"].get<std::string>(), m["n_in"].get<int64_t>(),
         m["n_out"].get<int64_t>()}] = {m["calls_per_token"].get<double>(), m["bytes_per_token"].get<double>()};
    ms += m["ms_per_token"].get<double>();
    bytes += m["bytes_per_token"].get<double>();
    EXPECT_GE(m["ms_per_token"].get<double>(), 0.0);
    EXPECT_NEAR(m["gb_per_s"].get<double>(),
                m["bytes_per_token"].get<double>() / (m["ms_per_token"].get<double>() * 1e-3) / 1e9,
                1e-6 * m["gb_per_s"].get<double>());
  }
  EXPECT_EQ(got, expect);
  EXPECT_NEAR(ms, p["matmul_ms_per_token"].get<double>(), 1e-9 * ms);
  EXPECT_LE(ms, p["ms_per_token"].get<double>());
  EXPECT_DOUBLE_EQ(bytes, p["matmul_bytes_per_token"].get<double>());
  // bench's bytes per token also counts the norms and one row of each embedding table.
  EXPECT_LE(bytes, p["bytes_per_token"].get<double>());
  EXPECT_GT(bytes, 0.99 * p["bytes_per_token"].get<double>());
}

TEST(BenchCli, ProfileTable) {
  auto r = test::run_nibble({"bench", bundled_model(), "-p", "0", "-n", "2", "-r", "1", "-t", "1",
                             "--membw-gbps", "10", "--profile"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("profile of tg2 (2 timed tokens)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| blk.*.ffn_down.weight"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(outside the matmuls)"), std::string::npos) << r.out;
}

TEST(BenchCli, BadArgumentsAreOneLineErrors) {
  expect_one_line_error(test::run_nibble({"bench"}), "no model");
  expect_one_line_error(test::run_nibble({"bench", bundled_model(), "-r", "0"}), "-r 0");
  expect_one_line_error(test::run_nibble({"bench", bundled_model(), "-p", "0", "-n", "0"}),
                        "nothing to measure");
  expect_one_line_error(test::run_nibble({"bench", bundled_model(), "-b", "0"}), "-b 0");
  expect_one_line_error(test::run_nibble({"bench", "/nonexistent/m.gguf", "--membw-gbps", "1"}),
                        "/nonexistent/m.gguf");
  expect_one_line_error(
      test::run_nibble({"bench", bundled_model(), "--kv-type", "q9", "--membw-gbps", "1"}), "q9");
  expect_one_line_error(test::run_nibble({"bench", bundled_model(), "--membw"}), "--membw");
  expect_one_line_error(
      test::run_nibble({"bench", bundled_model(), "-n", "0", "--profile", "--membw-gbps", "1"}),
      "--profile");
}

TEST(SynthCli, BadArgumentsAreOneLineErrorsAndNoFile) {
  const std::string out = test::temp_dir() + "/bad.gguf";
  expect_one_line_error(
      test::run_nibble({"synth", "--preset", "e3b", "--type", "Q4_0", "-o", out}), "e3b");
  expect_one_line_error(
      test::run_nibble({"synth", "--preset", "e2b", "--type", "Q9_9", "-o", out}), "Q9_9");
  expect_one_line_error(
      test::run_nibble({"synth", "--preset", "e2b", "--type", "Q4_0", "--layers", "99", "-o", out}),
      "35 layers");
  expect_one_line_error(
      test::run_nibble({"synth", "--preset", "e2b", "--type", "Q2_K_S", "-o", out}),
      "importance matrix");
  EXPECT_FALSE(test::file_exists(out));
  // Missing required options: CLI11's usage error, non-zero exit.
  auto r = test::run_nibble({"synth", "--preset", "e2b", "--type", "Q4_0"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--output"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace nibble
