// Sampler: parameter validation, greedy, seeded reproducibility, and the empirical
// distribution of seeded draws against the expected filtered probabilities.
#include "sampling/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "sampling/rng.h"

namespace nibble {
namespace {

const std::vector<float> kLogits = {1.0f, 3.0f, 2.5f, -1.0f, 0.0f, 2.9f, 0.5f, -4.0f};

std::vector<double> softmax_d(const std::vector<float>& l, double temp,
                              const std::vector<int>& keep) {
  std::vector<double> p(l.size(), 0.0);
  double sum = 0.0;
  for (int i : keep) sum += p[i] = std::exp(l[i] / temp);
  for (auto& x : p) x /= sum;
  return p;
}

// Draws n samples (fixed seed) and checks each id's frequency against `want` within 5 sigma.
void check_frequencies(const SamplerParams& p, const std::vector<double>& want, int n = 40000) {
  Sampler s(p);
  std::vector<int> count(kLogits.size(), 0);
  for (int i = 0; i < n; ++i) ++count[s.sample(kLogits)];
  for (size_t id = 0; id < want.size(); ++id) {
    const double f = static_cast<double>(count[id]) / n;
    const double sigma = std::sqrt(want[id] * (1 - want[id]) / n) + 1e-9;
    EXPECT_LE(std::fabs(f - want[id]), 5 * sigma + 1e-4)
        << "id " << id << " frequency " << f << " expected " << want[id] << " (seed " << p.seed
        << ")";
  }
}

TEST(SamplerParams, RejectsOutOfRangeValues) {
  auto bad = [](auto mutate, const char* flag) {
    SamplerParams p;
    mutate(p);
    Status st = p.validate();
    ASSERT_FALSE(st.ok()) << flag;
    EXPECT_EQ(st.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(st.error().message.find(flag), std::string::npos) << st.error().message;
  };
  bad([](SamplerParams& p) { p.temperature = -0.1f; }, "--temp");
  bad([](SamplerParams& p) { p.temperature = NAN; }, "--temp");
  bad([](SamplerParams& p) { p.top_k = -1; }, "--top-k");
  bad([](SamplerParams& p) { p.top_p = 0.0f; }, "--top-p");
  bad([](SamplerParams& p) { p.top_p = 1.5f; }, "--top-p");
  bad([](SamplerParams& p) { p.min_p = -0.5f; }, "--min-p");
  bad([](SamplerParams& p) { p.min_p = 2.0f; }, "--min-p");
  bad([](SamplerParams& p) { p.repeat_penalty = 0.0f; }, "--repeat-penalty");
  bad([](SamplerParams& p) { p.repeat_last_n = -3; }, "--repeat-last-n");
  EXPECT_TRUE(SamplerParams{}.validate().ok());
}

TEST(Sampler, GreedyTakesArgmaxLowestIdOnTies) {
  SamplerParams p;
  p.temperature = 0.0f;
  Sampler s(p);
  EXPECT_EQ(s.sample(kLogits), 1);
  const std::vector<float> tie = {0.0f, 5.0f, 5.0f};
  EXPECT_EQ(s.sample(tie), 1);
  EXPECT_EQ(argmax(tie), 1);
}

TEST(Sampler, SameSeedSameSequence) {
  SamplerParams p;
  p.temperature = 1.0f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.seed = 1234;
  Sampler a(p), b(p);
  std::vector<int32_t> sa, sb;
  for (int i = 0; i < 200; ++i) sa.push_back(a.sample(kLogits)), sb.push_back(b.sample(kLogits));
  EXPECT_EQ(sa, sb);
  p.seed = 1235;
  Sampler c(p);
  std::vector<int32_t> sc;
  for (int i = 0; i < 200; ++i) sc.push_back(c.sample(kLogits));
  EXPECT_NE(sa, sc);
}

TEST(Rng, KnownFirstValuesAndUniformRange) {
  Rng r(42);
  Rng r2(42);
  EXPECT_EQ(r.next(), r2.next());
  for (int i = 0; i < 1000; ++i) {
    const double u = r.uniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
  }
}

TEST(SamplerDistribution, TemperatureOnly) {
  for (double temp : {0.5, 1.0, 2.0}) {
    SamplerParams p;
    p.temperature = static_cast<float>(temp);
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.seed = 7;
    check_frequencies(p, softmax_d(kLogits, temp, {0, 1, 2, 3, 4, 5, 6, 7}));
  }
}

TEST(SamplerDistribution, TopK) {
  SamplerParams p;
  p.temperature = 1.0f;
  p.top_k = 3;  // ids 1 (3.0), 5 (2.9), 2 (2.5)
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.seed = 11;
  check_frequencies(p, softmax_d(kLogits, 1.0, {1, 5, 2}));
}

TEST(SamplerDistribution, TopP) {
  // Probabilities at T=1 sorted: id1 .299, id5 .271, id2 .181, id0 .0673, ... ; top-p 0.7
  // keeps the smallest prefix reaching 0.7: ids 1, 5, 2.
  SamplerParams p;
  p.temperature = 1.0f;
  p.top_k = 0;
  p.top_p = 0.7f;
  p.min_p = 0.0f;
  p.seed = 13;
  const auto full = softmax_d(kLogits, 1.0, {0, 1, 2, 3, 4, 5, 6, 7});
  ASSERT_LT(full[1] + full[5], 0.7);
  ASSERT_GE(full[1] + full[5] + full[2], 0.7);
  check_frequencies(p, softmax_d(kLogits, 1.0, {1, 5, 2}));
}

TEST(SamplerDistribution, MinPThenTemperature) {
  // min-p 0.2 keeps ids with p >= 0.2 * p_max at T=1: exp(l - 3) >= 0.2 <=> l >= 3 + ln 0.2 = 1.39.
  SamplerParams p;
  p.temperature = 0.7f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.2f;
  p.seed = 17;
  check_frequencies(p, softmax_d(kLogits, 0.7, {1, 2, 5}));
}

TEST(SamplerDistribution, RepeatPenalty) {
  SamplerParams p;
  p.temperature = 1.0f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.repeat_penalty = 2.0f;
  p.seed = 19;
  Sampler s(p);
  s.accept(1);  // 3.0 -> 1.5
  s.accept(3);  // -1.0 -> -2.0
  auto l = kLogits;
  l[1] = 1.5f;
  l[3] = -2.0f;
  const auto d = s.distribution(kLogits);
  const auto want = softmax_d(l, 1.0, {0, 1, 2, 3, 4, 5, 6, 7});
  ASSERT_EQ(d.size(), 8u);
  for (const auto& [id, prob] : d) EXPECT_NEAR(prob, want[id], 1e-6) << id;
}

}  // namespace
}  // namespace nibble
