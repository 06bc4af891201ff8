// Golden tests (label: golden): convert the reference checkpoints with `nibble convert`, run
// `nibble logits` (one pass and --incremental) and `nibble generate --greedy` with an f32 KV
// cache, and compare with the float64 reference outputs: top-1 identical at every position,
// max |Δlogit| <= 1e-3 * max|logit| + 1e-4, greedy continuations identical. rand-* come from
// tests/fixtures/models (falling back to ../shared/models); tiny-* need ../shared.
// The rand-* hidden states are also compared layer by layer, in process, through trace().
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "model/registry.h"
#include "model/trace.h"
#include "runtime/session.h"
#include "tokenizer/tokenizer.h"
#include "test_util.h"

namespace nibble {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Folder with golden.json, logits.f32 and hf/ for a model, or "" when absent.
std::string golden_dir(const std::string& name) {
  const std::string repo = test::source_dir() + "/tests/fixtures/models/" + name;
  if (fs::exists(repo + "/golden.json") && fs::exists(repo + "/hf/config.json")) return repo;
  const std::string shared = test::shared_dir();
  if (!shared.empty() && fs::exists(shared + "/models/" + name + "/golden.json")) {
    return shared + "/models/" + name;
  }
  return "";
}

std::vector<float> read_f32(const std::string& path) {
  const auto bytes = test::read_bytes(path);
  std::vector<float> v(bytes.size() / 4);
  std::memcpy(v.data(), bytes.data(), v.size() * 4);
  return v;
}

json read_json(const std::string& path) {
  std::ifstream in(path);
  return json::parse(in);
}

std::string join(const std::vector<int>& ids, const char* sep) {
  std::string s;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) s += sep;
    s += std::to_string(ids[i]);
  }
  return s;
}

// Converts once per (model, type) per test process.
std::string converted(const std::string& dir, const std::string& name, const std::string& type) {
  static std::map<std::string, std::string> cache;
  const std::string key = name + "/" + type;
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  const std::string out = test::temp_dir() + "/" + name + "-" + type + ".gguf";
  auto r = test::run_nibble({"convert", dir + "/hf", "-o", out, "--type", type});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return cache[key] = out;
}

struct Comparison {
  int top1_same = 0, n_pos = 0;
  int near_tie_misses = 0;  // top-1 differs where the reference's margin between the two is < 0.02
  double max_diff = 0.0, max_logit = 0.0;
};

Comparison compare(const std::vector<float>& got, const std::vector<float>& want, int64_t n_vocab) {
  Comparison c;
  c.n_pos = static_cast<int>(want.size() / n_vocab);
  for (int t = 0; t < c.n_pos; ++t) {
    const float* g = got.data() + t * n_vocab;
    const float* w = want.data() + t * n_vocab;
    int64_t ag = 0, aw = 0;
    for (int64_t i = 0; i < n_vocab; ++i) {
      if (g[i] > g[ag]) ag = i;
      if (w[i] > w[aw]) aw = i;
      c.max_diff = std::max(c.max_diff, std::fabs(static_cast<double>(g[i]) - w[i]));
      c.max_logit = std::max(c.max_logit, std::fabs(static_cast<double>(w[i])));
    }
    c.top1_same += ag == aw;
    c.near_tie_misses += ag != aw && w[aw] - w[ag] < 0.02f;
  }
  return c;
}

void check_model(const std::string& name, const std::string& type) {
  const std::string dir = golden_dir(name);
  if (dir.empty()) GTEST_SKIP() << name << ": golden files absent (tests/fixtures or ../shared)";
  const json g = read_json(dir + "/golden.json");
  const std::vector<int> prompt = g["prompt_tokens"].get<std::vector<int>>();
  const int64_t n_vocab = g["logits_shape"][1].get<int64_t>();
  const auto want = read_f32(dir + "/" + g["logits_file"].get<std::string>());
  const std::string model = converted(dir, name, type);

  for (bool incremental : {false, true}) {
    const std::string out = test::temp_dir() + "/logits.f32";
    std::vector<std::string> args = {"logits", model, "--tokens", join(prompt, ","), "--out", out,
                                     "--kv-type", "f32"};
    if (incremental) args.push_back("--incremental");
    auto r = test::run_nibble(args);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto got = read_f32(out);
    ASSERT_EQ(got.size(), want.size());
    const Comparison c = compare(got, want, n_vocab);
    const double tol = 1e-3 * c.max_logit + 1e-4;
    std::printf("[golden] %s %s%s: top-1 %d/%d, max|dlogit| %.3g (tolerance %.3g)\n", name.c_str(),
                type.c_str(), incremental ? " --incremental" : "", c.top1_same, c.n_pos, c.max_diff,
                tol);
    std::fflush(stdout);  // before the next fork, or the child flushes it again
    EXPECT_EQ(c.top1_same, c.n_pos) << name << " " << type;
    EXPECT_LE(c.max_diff, tol) << name << " " << type << (incremental ? " incremental" : "");
  }

  const std::vector<int> prefix = g["greedy_prefix"].get<std::vector<int>>();
  const std::vector<int> cont = g["greedy_continuation"].get<std::vector<int>>();
  auto r = test::run_nibble({"generate", model, "--tokens", join(prefix, ","), "-n",
                             std::to_string(cont.size()), "--greedy", "--kv-type", "f32"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  while (!r.out.empty() && (r.out.back() == '\n' || r.out.back() == ' ')) r.out.pop_back();
  EXPECT_EQ(r.out, join(cont, " ")) << name << " " << type << " greedy continuation";
}

TEST(Golden, RandE) {
  check_model("rand-e", "f32");
  check_model("rand-e", "bf16");
}
TEST(Golden, RandMoe) {
  check_model("rand-moe", "f32");
  check_model("rand-moe", "bf16");
}
TEST(Golden, RandDense) {
  check_model("rand-dense", "f32");
  check_model("rand-dense", "bf16");
}
TEST(Golden, TinyE) {
  check_model("tiny-e", "f32");
  check_model("tiny-e", "bf16");
}
TEST(Golden, TinyMoe) {
  check_model("tiny-moe", "f32");
  check_model("tiny-moe", "bf16");
}

// The default f16 KV cache against the same float64 references (the tests above use f32 KV).
// Trained models meet the f32 bar (1e-3 * max|logit| + 1e-4; measured 4.4e-4 (tiny-e) and
// 7.8e-4 (tiny-moe) of max|logit|). The random-weight rand-* models amplify f16's rounding of
// K and V (2^-11 relative per element) through every layer: measured 0.68-0.96% of max|logit|,
// so they get 2% and must keep every top-1.
void check_f16_kv(const std::string& name, double rel_tol) {
  const std::string dir = golden_dir(name);
  if (dir.empty()) GTEST_SKIP() << name << ": golden files absent (tests/fixtures or ../shared)";
  const json g = read_json(dir + "/golden.json");
  const std::vector<int> prompt = g["prompt_tokens"].get<std::vector<int>>();
  const int64_t n_vocab = g["logits_shape"][1].get<int64_t>();
  const auto want = read_f32(dir + "/" + g["logits_file"].get<std::string>());
  const std::string model = converted(dir, name, "f32");
  for (const char* flash : {"on", "off"}) {
    const std::string out = test::temp_dir() + "/logits-f16kv.f32";
    auto r = test::run_nibble({"logits", model, "--tokens", join(prompt, ","), "--out", out,
                               "--flash-attn", flash});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const Comparison c = compare(read_f32(out), want, n_vocab);
    const double tol = rel_tol * c.max_logit + 1e-4;
    std::printf("[golden] %s f16 KV, flash %s: top-1 %d/%d, max|dlogit| %.3g (tolerance %.3g)\n",
                name.c_str(), flash, c.top1_same, c.n_pos, c.max_diff, tol);
    std::fflush(stdout);
    EXPECT_EQ(c.top1_same, c.n_pos) << name;
    EXPECT_LE(c.max_diff, tol) << name << " flash " << flash;
  }
}

TEST(Golden, F16KvCacheTrained) {
  NIBBLE_REQUIRE_SHARED();
  check_f16_kv("tiny-e", 1e-3);
  check_f16_kv("tiny-moe", 1e-3);
}

TEST(Golden, F16KvCacheRandom) {
  check_f16_kv("rand-e", 2e-2);
  check_f16_kv("rand-moe", 2e-2);
  check_f16_kv("rand-dense", 2e-2);
}

TEST(Golden, TinyEQ8_0TopOneAgreement) {
  const std::string dir = golden_dir("tiny-e");
  if (dir.empty()) GTEST_SKIP() << "tiny-e golden files absent";
  const json g = read_json(dir + "/golden.json");
  const std::vector<int> prompt = g["prompt_tokens"].get<std::vector<int>>();
  const int64_t n_vocab = g["logits_shape"][1].get<int64_t>();
  const std::string out = test::temp_dir() + "/q8.f32";
  auto r = test::run_nibble(
      {"logits", converted(dir, "tiny-e", "q8_0"), "--tokens", join(prompt, ","), "--out", out,
       "--kv-type", "f32"});  // the weights' error alone
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Comparison c = compare(read_f32(out), read_f32(dir + "/logits.f32"), n_vocab);
  std::printf("[golden] tiny-e q8_0: top-1 %d/%d (%.1f%%), %d of the others near-ties in the "
              "reference, max|dlogit| %.3g\n",
              c.top1_same, c.n_pos, 100.0 * c.top1_same / c.n_pos, c.near_tie_misses, c.max_diff);
  std::fflush(stdout);
  // Issue bar: >= 98%, held strictly on 3060 positions of text (next test). On these 96 one
  // position is 1%, and the positions where q8_0 differs are near-ties in the reference (margins
  // 0.002-0.013) that the kernels' float rounding decides: AVX-512 gets 95/96 here, AVX2 and
  // the generic kernels 94/96. So here: >= 98% counting near-ties (margin < 0.02) as agreeing,
  // and >= 95% without; convert keeps the tied embedding / output head at 16 bits.
  EXPECT_GE(100.0 * (c.top1_same + c.near_tie_misses), 98.0 * c.n_pos);
  EXPECT_GE(100.0 * c.top1_same, 95.0 * c.n_pos);
  EXPECT_LE(c.max_diff, 0.25);
}

// q8_0 against f32 on held-out text (12 chunks of 255 tokens of valid.txt): top-1 >= 98%.
TEST(Golden, TinyEQ8_0TopOneAgreementOnText) {
  NIBBLE_REQUIRE_SHARED();
  const std::string dir = golden_dir("tiny-e");
  auto f32 = load_model(converted(dir, "tiny-e", "f32"));
  auto q8 = load_model(converted(dir, "tiny-e", "q8_0"));
  ASSERT_TRUE(f32.ok() && q8.ok());
  auto tok = Tokenizer::from_gguf((*f32)->file().metadata());
  ASSERT_TRUE(tok.ok()) << tok.error().message;
  std::ifstream in(test::shared_dir() + "/data/valid.txt", std::ios::binary);
  std::string text(60000, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  const std::vector<int32_t> ids = (*tok)->encode(text);
  const int64_t n_vocab = (*f32)->info().n_vocab;
  int agree = 0, total = 0;
  for (int c = 0; c < 12 && (c + 1) * 255 <= static_cast<int>(ids.size()); ++c) {
    std::vector<int32_t> chunk = {2};
    chunk.insert(chunk.end(), ids.begin() + c * 255, ids.begin() + c * 255 + 254);
    std::vector<float> la, lb;
    for (auto* m : {&f32, &q8}) {
      SessionOptions o;
      o.n_ctx = 256;
      o.n_batch = 256;
      o.kv_type_full = o.kv_type_swa = GgmlType::F32;  // weights only
      auto s = Session::create(***m, o);
      ASSERT_TRUE(s.ok());
      ASSERT_TRUE((*s)->eval(chunk, true, m == &f32 ? la : lb).ok());
    }
    for (size_t t = 0; t < chunk.size(); ++t) {
      const float* a = la.data() + t * n_vocab;
      const float* b = lb.data() + t * n_vocab;
      agree += std::max_element(a, a + n_vocab) - a == std::max_element(b, b + n_vocab) - b;
      ++total;
    }
  }
  std::printf("[golden] tiny-e q8_0 vs f32 on valid.txt: top-1 %d/%d (%.2f%%)\n", agree, total,
              100.0 * agree / total);
  std::fflush(stdout);
  ASSERT_GT(total, 1000);
  EXPECT_GE(agree, total * 98 / 100);
}

// `nibble run`: text in, text out; a seed reproduces the sampled text; greedy matches generate.
TEST(Golden, TinyERunSeededAndGreedy) {
  NIBBLE_REQUIRE_SHARED();
  const std::string model = converted(golden_dir("tiny-e"), "tiny-e", "f32");
  const std::vector<std::string> args = {"run", model, "The old prince said", "-n", "12", "--seed", "7"};
  auto a = test::run_nibble(args), b = test::run_nibble(args);
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_GT(a.out.size(), 12u);
  EXPECT_NE(a.err.find("tokens/s"), std::string::npos) << a.err;
  auto c = test::run_nibble({"run", model, "The old prince said", "-n", "12", "--seed", "8"});
  EXPECT_NE(a.out, c.out);
  auto g = test::run_nibble({"run", model, "The old prince said", "-n", "12", "--temp", "0"});
  ASSERT_EQ(g.exit_code, 0) << g.err;
  auto too_long = test::run_nibble({"run", model, "The old prince said", "--ctx", "3"});
  EXPECT_NE(too_long.exit_code, 0);
  EXPECT_NE(too_long.err.find("longer than the context"), std::string::npos) << too_long.err;
}

// Layer-by-layer hidden states of the rand-* models, in process (trace "l_out").
void check_hidden_states(const std::string& name) {
  const std::string dir = golden_dir(name);
  if (dir.empty()) GTEST_SKIP() << name << ": golden files absent";
  const json g = read_json(dir + "/golden.json");
  if (!g.contains("hidden_states_file")) GTEST_SKIP() << "no hidden states";
  const auto hs = read_f32(dir + "/" + g["hidden_states_file"].get<std::string>());
  const int64_t n_layer1 = g["hidden_states_shape"][0], T = g["hidden_states_shape"][1],
                H = g["hidden_states_shape"][2];
  const std::vector<int> prompt = g["prompt_tokens"].get<std::vector<int>>();
  auto model = load_model(converted(dir, name, "f32"));
  ASSERT_TRUE(model.ok()) << model.error().message;
  std::map<std::string, std::vector<float>> seen;
  set_trace([&](const char* what, int layer, const float* data, int64_t rows, int64_t cols) {
    std::string key = what;
    if (layer >= 0) key += '.' + std::to_string(layer);
    seen[key].assign(data, data + rows * cols);
  });
  SessionOptions o;
  o.n_ctx = T;
  o.n_batch = T;
  o.kv_type_full = o.kv_type_swa = GgmlType::F32;  // exact cache: float64 reference, 1e-4 bar
  auto s = Session::create(**model, o);
  ASSERT_TRUE(s.ok());
  std::vector<int32_t> ids(prompt.begin(), prompt.end());
  std::vector<float> logits;
  ASSERT_TRUE((*s)->eval(ids, true, logits).ok());
  set_trace(nullptr);
  for (int64_t i = 0; i < n_layer1; ++i) {
    std::string key = "l_out.";
    key += std::to_string(i - 1);
    if (i == 0) key = "inp_scaled";
    if (i == n_layer1 - 1) key = "result_norm";
    ASSERT_TRUE(seen.count(key)) << key;
    const auto& got = seen[key];
    ASSERT_EQ(got.size(), static_cast<size_t>(T * H)) << key;
    double md = 0.0, mx = 0.0;
    for (int64_t j = 0; j < T * H; ++j) {
      md = std::max(md, std::fabs(static_cast<double>(got[j]) - hs[i * T * H + j]));
      mx = std::max(mx, std::fabs(static_cast<double>(hs[i * T * H + j])));
    }
    EXPECT_LE(md, 1e-4 * mx + 1e-5) << name << " hidden state " << key << " (max |h| " << mx << ")";
  }
}

TEST(GoldenHidden, RandE) { check_hidden_states("rand-e"); }
TEST(GoldenHidden, RandMoe) { check_hidden_states("rand-moe"); }
TEST(GoldenHidden, RandDense) { check_hidden_states("rand-dense"); }

}  // namespace
}  // namespace nibble
