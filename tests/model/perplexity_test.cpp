// `nibble perplexity` with the protocol of shared/models/README.md. The full runs (93,840
// tokens of valid.txt on tiny-e and tiny-moe, within 0.1% of trained-results.json) take about a
// minute each; NIBBLE_SKIP_SLOW_TESTS=1 skips them (the sanitizer run does). A short run checks the JSON output and the
// chunking arithmetic.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "test_util.h"

namespace nibble {
namespace {

using nlohmann::json;

std::string convert_f32(const std::string& name) {
  const std::string out = test::temp_dir() + "/" + name + ".gguf";
  auto r = test::run_nibble(
      {"convert", test::shared_dir() + "/models/" + name + "/hf", "-o", out, "--type", "f32"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return out;
}

json run_ppl(const std::string& model, const std::string& text, const std::string& ctx) {
  auto r = test::run_nibble({"perplexity", model, "-f", text, "--ctx", ctx, "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return json::parse(r.out);
}

TEST(Perplexity, ShortRunJsonAndChunking) {
  NIBBLE_REQUIRE_SHARED();
  const std::string model = convert_f32("tiny-e");
  // The first 20 KB of valid.txt.
  std::ifstream in(test::shared_dir() + "/data/valid.txt", std::ios::binary);
  std::string text(20000, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  const std::string path = test::temp_dir() + "/short.txt";
  test::write_bytes(path, std::vector<uint8_t>(text.begin(), text.end()));
  const json j = run_ppl(model, path, "128");
  ASSERT_TRUE(j.contains("ppl") && j.contains("tokens") && j.contains("chunks")) << j.dump();
  EXPECT_EQ(j["tokens"].get<int64_t>(), j["chunks"].get<int64_t>() * 127);
  EXPECT_GT(j["chunks"].get<int64_t>(), 10);
  EXPECT_GT(j["ppl"].get<double>(), 20.0);
  EXPECT_LT(j["ppl"].get<double>(), 300.0);
  // A file shorter than one chunk is an error, not a NaN.
  const std::string tiny = test::temp_dir() + "/tiny.txt";
  test::write_bytes(tiny, {'H', 'i'});
  auto r = test::run_nibble({"perplexity", model, "-f", tiny});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("fewer than one chunk"), std::string::npos) << r.err;
}

void full_run(const std::string& name) {
  NIBBLE_REQUIRE_SHARED();
  const char* skip = std::getenv("NIBBLE_SKIP_SLOW_TESTS");
  if (skip != nullptr && std::string(skip) == "1")
    GTEST_SKIP() << "NIBBLE_SKIP_SLOW_TESTS=1: skipping the full perplexity run (about a minute)";
  std::ifstream in(test::shared_dir() + "/models/trained-results.json");
  const json want = json::parse(in)[name];
  const json got = run_ppl(convert_f32(name), test::shared_dir() + "/data/valid.txt", "256");
  std::printf("[perplexity] %s: %.5f over %lld tokens (reference %.5f)\n", name.c_str(),
              got["ppl"].get<double>(), static_cast<long long>(got["tokens"].get<int64_t>()),
              want["ppl_valid"].get<double>());
  std::fflush(stdout);
  EXPECT_EQ(got["tokens"].get<int64_t>(), want["tokens"].get<int64_t>());
  EXPECT_EQ(got["chunks"].get<int64_t>(), want["chunks"].get<int64_t>());
  EXPECT_NEAR(got["ppl"].get<double>(), want["ppl_valid"].get<double>(),
              1e-3 * want["ppl_valid"].get<double>());
}

TEST(Perplexity, TinyEValidFull) { full_run("tiny-e"); }
TEST(Perplexity, TinyMoeValidFull) { full_run("tiny-moe"); }

}  // namespace
}  // namespace nibble
