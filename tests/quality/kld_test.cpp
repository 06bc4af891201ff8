// `nibble perplexity --save-reference / --reference`: the physics (a model against its own
// reference: KLD 0, top-1 100%; against a quantization: KLD > 0, and q4_0 worse than q8_0 on the
// trained tiny-e), the top-k + rest approximation against the exact full-vocabulary KL
// divergence computed here from `nibble logits` (a lower bound; exact when k = n_vocab),
// and the reference file's validation (mismatched text / ctx / vocabulary, damaged files).
// The approximation's bound is stated at TinyETopKApproximationVersusExact.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "hostile_input.h"
#include "model/registry.h"
#include "quality/logit_reference.h"
#include "quality_test_util.h"
#include "tokenizer/tokenizer.h"

namespace nibble {
namespace {

using nlohmann::json;

json run_json(const std::vector<std::string>& args) {
  auto r = test::run_nibble(args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  if (r.exit_code != 0) return json::object();
  return json::parse(r.out);
}

json save_reference(const std::string& model, const std::string& text, const std::string& ctx,
                    const std::string& ref, const std::string& top_k = "32") {
  return run_json({"perplexity", model, "-f", text, "--ctx", ctx, "--save-reference", ref,
                   "--ref-top-k", top_k, "--json"});
}

json against(const std::string& model, const std::string& text, const std::string& ref) {
  return run_json({"perplexity", model, "-f", text, "--reference", ref, "--json"});
}

TEST(Kld, RandEAgainstItselfAndAQuantization) {
  if (test::model_dir("rand-e").empty()) GTEST_SKIP() << "rand-e absent";
  const std::string f32 = test::converted_model("rand-e", "f32");
  const std::string text = test::write_sample_text(8000);
  const std::string ref = test::temp_dir() + "/rand-e.ref";
  const json base = save_reference(f32, text, "64", ref);
  ASSERT_TRUE(base.contains("ppl")) << base.dump();

  const json self = against(f32, text, ref);  // --ctx comes from the reference
  ASSERT_TRUE(self.contains("kld_mean")) << self.dump();
  EXPECT_EQ(self["tokens"], base["tokens"]);
  EXPECT_EQ(self["chunks"], base["chunks"]);
  EXPECT_NEAR(self["kld_mean"].get<double>(), 0.0, 1e-6);
  EXPECT_NEAR(self["kld_p99"].get<double>(), 0.0, 1e-6);
  EXPECT_NEAR(self["kld_max"].get<double>(), 0.0, 1e-6);
  EXPECT_EQ(self["top1"].get<double>(), 1.0);
  EXPECT_NEAR(self["ppl_ref"].get<double>(), base["ppl"].get<double>(),
              1e-9 * base["ppl"].get<double>());
  EXPECT_NEAR(self["ppl"].get<double>(), self["ppl_ref"].get<double>(),
              1e-9 * base["ppl"].get<double>());
  EXPECT_EQ(self["ref_top_k"], 32);

  const json q4 = against(test::converted_model("rand-e", "q4_0"), text, ref);
  ASSERT_TRUE(q4.contains("kld_mean")) << q4.dump();
  std::printf("[kld] rand-e q4_0 vs f32: kld mean %.6f p99 %.6f top-1 %.4f ppl %.4f -> %.4f\n",
              q4["kld_mean"].get<double>(), q4["kld_p99"].get<double>(), q4["top1"].get<double>(),
              q4["ppl_ref"].get<double>(), q4["ppl"].get<double>());
  std::fflush(stdout);  // before the next fork, or the child flushes it again
  EXPECT_GT(q4["kld_mean"].get<double>(), 1e-4);
  EXPECT_GE(q4["kld_p99"].get<double>(), q4["kld_median"].get<double>());
  EXPECT_GE(q4["kld_max"].get<double>(), q4["kld_p99"].get<double>());
  EXPECT_LT(q4["top1"].get<double>(), 1.0);
  EXPECT_NE(q4["ppl"].get<double>(), q4["ppl_ref"].get<double>());
}

// The trained model: q4_0 loses more than q8_0 (the bar of STYLE §3.5).
TEST(Kld, TinyEQ4WorseThanQ8) {
  NIBBLE_REQUIRE_SHARED();
  const std::string text = test::write_valid_prefix(10000);
  const std::string ref = test::temp_dir() + "/tiny-e.ref";
  const json base = save_reference(test::converted_model("tiny-e", "f32"), text, "128", ref);
  ASSERT_TRUE(base.contains("ppl")) << base.dump();
  const json q8 = against(test::converted_model("tiny-e", "q8_0"), text, ref);
  const json q4 = against(test::converted_model("tiny-e", "q4_0"), text, ref);
  ASSERT_TRUE(q8.contains("kld_mean") && q4.contains("kld_mean"));
  for (const auto* j : {&q8, &q4}) {
    std::printf(
        "[kld] tiny-e %s vs f32 (%lld tokens): kld mean %.6f p99 %.6f top-1 %.4f ppl %.4f -> "
        "%.4f\n",
        j == &q8 ? "q8_0" : "q4_0", static_cast<long long>((*j)["tokens"].get<int64_t>()),
        (*j)["kld_mean"].get<double>(), (*j)["kld_p99"].get<double>(), (*j)["top1"].get<double>(),
        (*j)["ppl_ref"].get<double>(), (*j)["ppl"].get<double>());
    std::fflush(stdout);  // before the next fork, or the child flushes it again
  }
  EXPECT_GT(q8["kld_mean"].get<double>(), 0.0);
  EXPECT_GT(q4["kld_mean"].get<double>(), 3.0 * q8["kld_mean"].get<double>());
  EXPECT_GT(q4["kld_p99"].get<double>(), q8["kld_p99"].get<double>());
  EXPECT_GE(q8["top1"].get<double>(), 0.98);
  EXPECT_GT(q8["top1"].get<double>(), q4["top1"].get<double>());
  EXPECT_GE(q4["top1"].get<double>(), 0.8);
  const double d8 = std::fabs(q8["ppl"].get<double>() - q8["ppl_ref"].get<double>());
  const double d4 = std::fabs(q4["ppl"].get<double>() - q4["ppl_ref"].get<double>());
  EXPECT_GT(d4, d8);
}

// Exact KL(P || Q) over the whole vocabulary at each position, from `nibble logits` of both
// models on the chunks perplexity evaluates, beside the top-k + rest approximation for each k.
struct ExactComparison {
  double exact_mean = 0.0;
  std::vector<double> approx_mean;      // per k
  std::vector<double> worst_violation;  // per k: max over positions of approx - exact
  int64_t n = 0;
};

ExactComparison exact_vs_approx(const std::string& ref_model, const std::string& q_model,
                                const std::string& text_path, int64_t ctx,
                                const std::vector<uint32_t>& top_ks) {
  ExactComparison out;
  out.approx_mean.assign(top_ks.size(), 0.0);
  out.worst_violation.assign(top_ks.size(), -1e300);
  auto m = load_model(ref_model);
  EXPECT_TRUE(m.ok());
  if (!m.ok()) return out;
  auto tok = Tokenizer::from_gguf((*m)->file().metadata());
  EXPECT_TRUE(tok.ok());
  const int64_t n_vocab = (*m)->info().n_vocab;
  std::ifstream in(text_path, std::ios::binary);
  const std::string s((std::istreambuf_iterator<char>(in)), {});
  const std::vector<int32_t> ids = (*tok)->encode(s);
  const int64_t chunk = ctx - 1, n_chunks = static_cast<int64_t>(ids.size()) / chunk;
  KldCalculator calc(n_vocab);
  LogitRefRecord rec;
  std::vector<int32_t> scratch;
  for (int64_t c = 0; c < n_chunks; ++c) {
    std::string list = std::to_string((*tok)->bos_id());
    for (int64_t i = 0; i + 1 < chunk; ++i) {
      list += ',';
      list += std::to_string(ids[c * chunk + i]);
    }
    std::vector<std::vector<float>> logits;
    for (const std::string& model : {ref_model, q_model}) {
      const std::string out_path = test::temp_dir() + "/logits.f32";
      auto r = test::run_nibble({"logits", model, "--tokens", list, "--out", out_path});
      EXPECT_EQ(r.exit_code, 0) << r.err;
      logits.push_back(test::read_f32_file(out_path));
      EXPECT_EQ(logits.back().size(), static_cast<size_t>(chunk * n_vocab));
      if (logits.back().size() != static_cast<size_t>(chunk * n_vocab)) return out;
    }
    for (int64_t i = 0; i < chunk; ++i) {
      const float* p = logits[0].data() + i * n_vocab;
      const float* q = logits[1].data() + i * n_vocab;
      const double lp = log_sum_exp(p, n_vocab), lq = log_sum_exp(q, n_vocab);
      double exact = 0.0;
      for (int64_t v = 0; v < n_vocab; ++v) {
        const double a = p[v] - lp, b = q[v] - lq;
        exact += std::exp(a) * (a - b);
      }
      out.exact_mean += exact;
      for (size_t k = 0; k < top_ks.size(); ++k) {
        make_logit_record(p, n_vocab, top_ks[k], ids[c * chunk + i], rec, scratch);
        const double approx = calc.compare(rec, q).kld;
        out.approx_mean[k] += approx;
        out.worst_violation[k] = std::max(out.worst_violation[k], approx - exact);
      }
      ++out.n;
    }
  }
  out.exact_mean /= static_cast<double>(out.n);
  for (double& a : out.approx_mean) a /= static_cast<double>(out.n);
  return out;
}

// tiny-e (vocabulary 8192, high entropy) is the hard case for the approximation. Stated bound,
// from these measurements (381 positions of valid.txt, q4_0 vs f32): at every position
// approx <= exact; approx >= 60% of the exact mean at k = 32 (measured 67%) and >= 80% at
// k = 256 (measured 87%); a larger k never gives less. The CLI computes the same number.
TEST(Kld, TinyETopKApproximationVersusExact) {
  NIBBLE_REQUIRE_SHARED();
  const std::string text = test::write_valid_prefix(2200);  // 3 chunks of 127 tokens
  const std::string f32 = test::converted_model("tiny-e", "f32");
  const std::string q4 = test::converted_model("tiny-e", "q4_0");
  const ExactComparison c = exact_vs_approx(f32, q4, text, 128, {32, 256});
  ASSERT_GE(c.n, 127);
  for (size_t k = 0; k < 2; ++k) {
    std::printf(
        "[kld] tiny-e q4_0, %lld positions: exact %.7f, top-%d + rest %.7f (%.1f%% of it)\n",
        static_cast<long long>(c.n), c.exact_mean, k == 0 ? 32 : 256, c.approx_mean[k],
        100.0 * c.approx_mean[k] / c.exact_mean);
    std::fflush(stdout);  // before the next fork, or the child flushes it again
    EXPECT_LE(c.worst_violation[k], 1e-9) << "the approximation must not exceed the exact KLD";
  }
  EXPECT_GE(c.approx_mean[0], 0.60 * c.exact_mean);
  EXPECT_GE(c.approx_mean[1], 0.80 * c.exact_mean);
  EXPECT_GE(c.approx_mean[1], c.approx_mean[0]);

  const std::string ref = test::temp_dir() + "/tiny-e-short.ref";
  save_reference(f32, text, "128", ref);
  const json j = against(q4, text, ref);
  ASSERT_TRUE(j.contains("kld_mean")) << j.dump();
  EXPECT_EQ(j["tokens"].get<int64_t>(), c.n);
  EXPECT_NEAR(j["kld_mean"].get<double>(), c.approx_mean[0], 1e-9 + 1e-9 * c.approx_mean[0]);
  EXPECT_GT(j["ref_top_k_mass"].get<double>(), 0.3);
  EXPECT_LT(j["ref_top_k_mass"].get<double>(), 1.0);
}

// k = n_vocab (rand-e: 512): nothing is left in the rest bucket and the approximation is exact.
TEST(Kld, RandEFullTopKIsExact) {
  if (test::model_dir("rand-e").empty()) GTEST_SKIP() << "rand-e absent";
  const std::string text = test::write_sample_text(1500);
  const std::string f32 = test::converted_model("rand-e", "f32");
  const std::string q4 = test::converted_model("rand-e", "q4_0");
  const ExactComparison c = exact_vs_approx(f32, q4, text, 64, {512});
  ASSERT_GT(c.n, 60);
  EXPECT_GT(c.exact_mean, 1e-4);
  EXPECT_LE(std::fabs(c.exact_mean - c.approx_mean[0]), 1e-9 + 1e-9 * c.exact_mean)
      << c.exact_mean << " vs " << c.approx_mean[0];
  const std::string ref = test::temp_dir() + "/rand-e-full.ref";
  save_reference(f32, text, "64", ref, "512");
  const json j = against(q4, text, ref);
  ASSERT_TRUE(j.contains("kld_mean")) << j.dump();
  EXPECT_NEAR(j["kld_mean"].get<double>(), c.exact_mean, 1e-9 + 1e-9 * c.exact_mean);
}

// ---- the reference file's validation ---------------------------------------------------------

struct RefFixture {
  std::string model, text, ref;
  std::vector<uint8_t> bytes;
  uint32_t top_k = 8;
  size_t header = 0;  // bytes before the first record
};

const RefFixture& ref_fixture() {
  static RefFixture f = [] {
    RefFixture r;
    r.model = test::converted_model("rand-e", "f32");
    r.text = test::write_sample_text(3000);
    r.ref = test::temp_dir() + "/small.ref";
    save_reference(r.model, r.text, "32", r.ref, std::to_string(r.top_k));
    r.bytes = test::read_bytes(r.ref);
    uint32_t name_len = 0;
    std::memcpy(&name_len, r.bytes.data() + 56, 4);
    r.header = 60 + name_len;
    return r;
  }();
  return f;
}

test::RunResult run_against(const std::string& ref, const std::vector<std::string>& extra = {}) {
  const RefFixture& f = ref_fixture();
  std::vector<std::string> args = {"perplexity",  f.model, "-f",    f.text,
                                   "--reference", ref,     "--json"};
  args.insert(args.end(), extra.begin(), extra.end());
  return test::run_nibble_ex(args, test::RunOptions{});
}

std::string write_variant(const std::vector<uint8_t>& bytes) {
  const std::string path = test::temp_dir() + "/variant.ref";
  test::write_bytes(path, bytes);
  return path;
}

template <typename T>
std::vector<uint8_t> patched(size_t offset, T value) {
  std::vector<uint8_t> b = ref_fixture().bytes;
  std::memcpy(b.data() + offset, &value, sizeof(T));
  return b;
}

TEST(KldReference, MismatchedTextCtxAndVocabulary) {
  if (test::model_dir("rand-e").empty()) GTEST_SKIP() << "rand-e absent";
  const RefFixture& f = ref_fixture();
  ASSERT_GT(f.bytes.size(), f.header);
  auto ok = run_against(f.ref);
  ASSERT_EQ(ok.exit_code, 0) << ok.err;

  const std::string other = test::temp_dir() + "/other.txt";
  std::string t = "A different text entirely, about ships and the sea and nothing else. ";
  while (t.size() < 3000) t += t;
  test::write_bytes(other, std::vector<uint8_t>(t.begin(), t.end()));
  EXPECT_TRUE(test::is_cli_error(
      test::run_nibble_ex({"perplexity", f.model, "-f", other, "--reference", f.ref, "--json"},
                          test::RunOptions{}),
      {"reference", "other text"}));
  EXPECT_TRUE(test::is_cli_error(run_against(f.ref, {"--ctx", "48"}), {"--ctx 32", "--ctx 48"}));
  // A reference from a model with another vocabulary.
  EXPECT_TRUE(test::is_cli_error(run_against(write_variant(patched<int64_t>(16, 8192))),
                                 {"vocabulary of 8192", "512"}));
  // Both flags at once, and a top-k out of range.
  EXPECT_TRUE(test::is_cli_error(run_against(f.ref, {"--save-reference", f.ref + ".2"}),
                                 {"cannot be used together"}));
  EXPECT_TRUE(
      test::is_cli_error(test::run_nibble_ex({"perplexity", f.model, "-f", f.text,
                                              "--save-reference", f.ref + ".3", "--ref-top-k", "0"},
                                             test::RunOptions{}),
                         {"--ref-top-k 0"}));
  EXPECT_FALSE(test::file_exists(f.ref + ".3"));
}

TEST(KldReference, DamagedFilesAreOneLineErrors) {
  if (test::model_dir("rand-e").empty()) GTEST_SKIP() << "rand-e absent";
  const RefFixture& f = ref_fixture();
  const size_t rec0 = f.header;               // first record
  const size_t ids0 = rec0 + 20;              // its top-k ids
  const size_t logits0 = ids0 + 4 * f.top_k;  // its top-k logits
  const size_t rec_bytes = 20 + 8 * f.top_k;
  const size_t last = f.bytes.size() - rec_bytes;  // last record
  struct Case {
    std::string what;
    std::vector<uint8_t> bytes;
    std::vector<std::string> expect;
  };
  std::vector<Case> cases;
  cases.push_back({"empty", {}, {"too short"}});
  cases.push_back(
      {"header cut", std::vector<uint8_t>(f.bytes.begin(), f.bytes.begin() + 30), {"too short"}});
  {
    auto b = f.bytes;
    b[0] = 'X';
    cases.push_back({"bad magic", b, {"not a nibble reference file"}});
  }
  cases.push_back({"future version", patched<uint32_t>(8, 2), {"version 2"}});
  cases.push_back({"top-k 0", patched<uint32_t>(12, 0), {"top_k 0"}});
  cases.push_back({"top-k huge", patched<uint32_t>(12, 0xFFFFFFFFu), {"top_k 4294967295"}});
  cases.push_back({"vocab 0", patched<int64_t>(16, 0), {"n_vocab 0"}});
  cases.push_back({"vocab huge", patched<int64_t>(16, int64_t{1} << 62), {"n_vocab"}});
  cases.push_back({"ctx 1", patched<int64_t>(24, 1), {"ctx 1"}});
  cases.push_back({"chunks mismatch", patched<int64_t>(32, 999), {"chunks"}});
  cases.push_back({"tokens huge", patched<int64_t>(40, int64_t{1} << 62), {"tokens"}});
  cases.push_back({"name length huge", patched<uint32_t>(56, 0xFFFFFF00u), {"model name"}});
  {
    auto b = f.bytes;
    b.pop_back();
    cases.push_back({"truncated", b, {"bytes", "needs"}});
    b = f.bytes;
    b.push_back(0);
    cases.push_back({"trailing byte", b, {"bytes", "needs"}});
  }
  cases.push_back({"token out of range", patched<int32_t>(rec0, 512), {"record 0", "token 512"}});
  cases.push_back({"token negative", patched<int32_t>(last, -1), {"token -1"}});
  {
    int32_t token = 0;
    std::memcpy(&token, f.bytes.data() + rec0, 4);
    const int32_t other = (token + 1) % 512;
    cases.push_back({"wrong token",
                     patched<int32_t>(rec0, other),
                     {"position 0", "scores token " + std::to_string(other)}});
  }
  cases.push_back({"lse NaN", patched<double>(rec0 + 4, std::nan("")), {"record 0", "finite"}});
  cases.push_back({"lse too small", patched<double>(rec0 + 4, -100.0), {"record 0", "sum to"}});
  cases.push_back({"nll negative", patched<double>(rec0 + 12, -1.0), {"record 0", "NLL"}});
  cases.push_back({"id out of range", patched<int32_t>(ids0 + 4, 100000), {"id 100000"}});
  cases.push_back({"id negative", patched<int32_t>(ids0, -5), {"id -5"}});
  {
    int32_t first = 0;
    std::memcpy(&first, f.bytes.data() + ids0, 4);
    cases.push_back({"duplicate id", patched<int32_t>(ids0 + 4, first), {"duplicate"}});
  }
  cases.push_back({"logits not sorted", patched<float>(logits0 + 4, 1e9f), {"descending"}});
  cases.push_back({"logit inf", patched<float>(logits0, INFINITY), {"not finite"}});
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    const auto r = run_against(write_variant(c.bytes));
    EXPECT_TRUE(test::is_cli_error(r, c.expect)) << c.what;
  }
  auto missing = run_against(f.ref + ".does-not-exist");
  EXPECT_TRUE(test::is_cli_error(missing, {"cannot open"}));
}

}  // namespace
}  // namespace nibble
