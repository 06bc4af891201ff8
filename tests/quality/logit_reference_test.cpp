// quality/logit_reference: records (top-k order and ties, log-sum-exp, NLL), the writer/reader
// round trip, and the top-k + rest KL divergence on synthetic distributions: 0 against itself,
// never above the exact KL, equal to it when k = n_vocab, growing with k.
#include "quality/logit_reference.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <random>

#include "test_util.h"

namespace nibble {
namespace {

std::vector<float> random_logits(int64_t n, uint32_t seed, float scale) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = d(rng);
  return v;
}

double exact_kld(const std::vector<float>& p, const std::vector<float>& q) {
  const int64_t n = static_cast<int64_t>(p.size());
  const double lp = log_sum_exp(p.data(), n), lq = log_sum_exp(q.data(), n);
  double k = 0.0;
  for (int64_t v = 0; v < n; ++v) k += std::exp(p[v] - lp) * ((p[v] - lp) - (q[v] - lq));
  return k;
}

TEST(LogitReference, RecordTopKOrderTiesAndNll) {
  const std::vector<float> l = {1.0f, 3.0f, 2.0f, 3.0f, -1.0f, 2.0f};
  LogitRefRecord r;
  std::vector<int32_t> scratch;
  make_logit_record(l.data(), 6, 4, 5, r, scratch);
  EXPECT_EQ(r.ids, (std::vector<int32_t>{1, 3, 2, 5}));  // ties to the lower id
  EXPECT_EQ(r.logits, (std::vector<float>{3.0f, 3.0f, 2.0f, 2.0f}));
  double s = 0.0;
  for (float x : l) s += std::exp(static_cast<double>(x));
  EXPECT_NEAR(r.lse, std::log(s), 1e-12);
  EXPECT_NEAR(r.nll, std::log(s) - 2.0, 1e-12);
  EXPECT_EQ(r.token, 5);
}

TEST(LogitReference, KldBoundsOnSyntheticDistributions) {
  const int64_t V = 1000;
  KldCalculator calc(V);
  LogitRefRecord r;
  std::vector<int32_t> scratch;
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    const auto p = random_logits(V, seed, 2.0f);
    auto q = p;
    const auto noise = random_logits(V, seed + 1000, 0.3f);
    for (int64_t v = 0; v < V; ++v) q[v] += noise[v];
    const double exact = exact_kld(p, q);
    make_logit_record(p.data(), V, 16, 0, r, scratch);
    const KldPoint self = calc.compare(r, p.data());
    EXPECT_NEAR(self.kld, 0.0, 1e-12) << "seed " << seed;
    EXPECT_TRUE(self.top1_same);
    double prev = -1.0;
    for (uint32_t k : {1u, 4u, 16u, 64u, 256u, 1000u}) {
      make_logit_record(p.data(), V, k, 0, r, scratch);
      const double approx = calc.compare(r, q.data()).kld;
      const double tol = 1e-12 + 1e-10 * exact;  // double rounding of sums over 1000 terms
      EXPECT_LE(approx, exact + tol) << "seed " << seed << " k " << k;
      EXPECT_GE(approx, prev - tol) << "a larger k must not give less; seed " << seed;
      prev = approx;
      if (k == V) {
        EXPECT_NEAR(approx, exact, tol);
      }
    }
  }
}

TEST(LogitReference, WriteReadRoundTripAndCount) {
  const std::string path = test::temp_dir() + "/r.ref";
  LogitRefHeader h;
  h.model_name = "unit";
  h.n_vocab = 50;
  h.top_k = 5;
  h.ctx = 4;
  h.n_chunks = 2;
  h.n_tokens = 6;
  h.token_hash = 0x1234;
  auto w = LogitRefWriter::create(path, h);
  ASSERT_TRUE(w.ok()) << w.error().message;
  std::vector<LogitRefRecord> recs(6);
  std::vector<int32_t> scratch;
  for (int i = 0; i < 6; ++i) {
    const auto l = random_logits(50, 77 + i, 1.5f);
    make_logit_record(l.data(), 50, 5, i * 3, recs[i], scratch);
    ASSERT_TRUE(w->add(recs[i]).ok());
  }
  ASSERT_TRUE(w->commit().ok());
  auto r = LogitRefReader::open(path);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->header().model_name, "unit");
  EXPECT_EQ(r->header().token_hash, 0x1234u);
  EXPECT_EQ(r->header().top_k, 5u);
  LogitRefRecord got;
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(r->next(got).ok());
    EXPECT_EQ(got.token, recs[i].token);
    EXPECT_EQ(got.lse, recs[i].lse);
    EXPECT_EQ(got.nll, recs[i].nll);
    EXPECT_EQ(got.ids, recs[i].ids);
    EXPECT_EQ(got.logits, recs[i].logits);
  }
  EXPECT_FALSE(r->next(got).ok());

  // Fewer records than declared: commit fails and nothing is left behind.
  const std::string short_path = test::temp_dir() + "/short.ref";
  {
    auto w2 = LogitRefWriter::create(short_path, h);
    ASSERT_TRUE(w2.ok());
    ASSERT_TRUE(w2->add(recs[0]).ok());
    EXPECT_FALSE(w2->commit().ok());
  }
  EXPECT_FALSE(test::file_exists(short_path));
  EXPECT_EQ(std::filesystem::directory_iterator(std::filesystem::path(short_path).parent_path()),
            std::filesystem::directory_iterator())
      << "a temporary was left behind";
}

TEST(LogitReference, Quantile) {
  std::vector<double> v = {5, 1, 4, 2, 3};
  EXPECT_DOUBLE_EQ(quantile(v, 0.0), 1.0);
  EXPECT_DOUBLE_EQ(quantile(v, 0.5), 3.0);
  EXPECT_DOUBLE_EQ(quantile(v, 1.0), 5.0);
  EXPECT_DOUBLE_EQ(quantile(v, 0.99), 4.96);
  std::vector<double> empty;
  EXPECT_EQ(quantile(empty, 0.99), 0.0);
}

}  // namespace
}  // namespace nibble
