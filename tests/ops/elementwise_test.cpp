// rms_norm, rope, gelu/geglu, softmax, softcap against the scalar oracles.
#include <gtest/gtest.h>

#include <cmath>

#include "ops/activation.h"
#include "ops/norm.h"
#include "ops/reference/reference_ops.h"
#include "ops/rope.h"
#include "ops/softmax.h"
#include "ops_test_util.h"

namespace nibble {
namespace {

TEST(RmsNorm, MatchesReferenceWithAndWithoutWeight) {
  for (int64_t n : {1, 2, 3, 7, 31, 32, 33, 255, 4097}) {
    const auto x = test::random_floats(static_cast<size_t>(n * 3), static_cast<uint32_t>(n), 3.0f);
    const auto w = test::random_floats(static_cast<size_t>(n), 7);
    for (const float* wp : {w.data(), static_cast<const float*>(nullptr)}) {
      std::vector<float> y(x.size()), want(x.size());
      rms_norm_rows(x.data(), wp, y.data(), 3, n, 1e-6f);
      for (int r = 0; r < 3; ++r)
        ref::rms_norm(x.data() + r * n, wp, want.data() + r * n, n, 1e-6f);
      test::expect_near_all(y.data(), want.data(), y.size(), 1e-6f, 1e-5f,
                            "rms_norm n=" + std::to_string(n));
    }
  }
}

TEST(RmsNorm, WeightIsAppliedAsStoredNotOnePlus) {
  const float x[2] = {3.0f, -3.0f}, w[2] = {0.5f, 2.0f};
  float y[2];
  rms_norm(x, w, y, 2, 0.0f + 1e-12f);
  EXPECT_NEAR(y[0], 0.5f, 1e-6f);
  EXPECT_NEAR(y[1], -2.0f, 1e-6f);
}

TEST(Rope, NeoXPairsAndPartialRotation) {
  // Full-layer style: d = 32, theta 1e6, only the first 4 of 16 pairs rotate (factors 1e30).
  for (int64_t d : {8, 32, 128}) {
    std::vector<float> factors(static_cast<size_t>(d / 2), 1e30f);
    for (int64_t j = 0; j < d / 8; ++j) factors[j] = 1.0f;
    for (const float* fac :
         {static_cast<const float*>(nullptr), static_cast<const float*>(factors.data())}) {
      const double base = fac ? 1e6 : 1e4;
      const auto inv = rope_inv_freq(d, base, fac);
      for (int64_t pos : {0, 1, 17, 4095}) {
        auto x = test::random_floats(static_cast<size_t>(3 * d), static_cast<uint32_t>(pos + d));
        auto want = x;
        std::vector<float> c(static_cast<size_t>(d / 2)), s(c.size());
        rope_table(inv, &pos, 1, c.data(), s.data());
        rope_apply(x.data(), 3, d, c.data(), s.data());
        for (int h = 0; h < 3; ++h) ref::rope(want.data() + h * d, d, pos, inv.data());
        test::expect_near_all(x.data(), want.data(), x.size(), 1e-6f, 1e-6f,
                              "rope d=" + std::to_string(d));
        if (fac != nullptr) {
          // Unrotated pairs pass through exactly.
          auto orig =
              test::random_floats(static_cast<size_t>(3 * d), static_cast<uint32_t>(pos + d));
          for (int64_t j = d / 8; j < d / 2; ++j) {
            EXPECT_EQ(x[j], orig[j]);
            EXPECT_EQ(x[j + d / 2], orig[j + d / 2]);
          }
        }
      }
    }
  }
}

TEST(Rope, ExponentUsesTheFullHeadDim) {
  const auto inv = rope_inv_freq(512, 1e6, nullptr);
  EXPECT_NEAR(inv[1], std::pow(1e6, -2.0 / 512.0), 1e-15);
}

TEST(Activation, GeluAndGeglu) {
  const auto x = test::random_floats(1000, 1, 12.0f);
  const auto up = test::random_floats(1000, 2);
  std::vector<float> g = x, want(x.size());
  geglu(g.data(), up.data(), 1000);
  for (size_t i = 0; i < x.size(); ++i) want[i] = ref::gelu(x[i]) * up[i];
  test::expect_near_all(g.data(), want.data(), g.size(), 1e-6f, 1e-5f, "geglu");
  EXPECT_NEAR(gelu(1.0f), 0.8411920f, 1e-6f);  // tanh form, not erf (0.8413447)
}

TEST(Activation, Softcap) {
  float x[3] = {0.0f, 30.0f, -1000.0f};
  softcap(x, 3, 30.0f);
  EXPECT_EQ(x[0], 0.0f);
  EXPECT_NEAR(x[1], 30.0f * std::tanh(1.0f), 1e-5f);
  EXPECT_NEAR(x[2], -30.0f, 1e-5f);
  float y[1] = {1000.0f};
  softcap(y, 1, 0.0f);  // 0 = no cap
  EXPECT_EQ(y[0], 1000.0f);
}

TEST(Softmax, MatchesReference) {
  for (int64_t n : {1, 2, 3, 7, 33, 255, 4097}) {
    auto x = test::random_floats(static_cast<size_t>(n), static_cast<uint32_t>(n), 20.0f);
    auto want = x;
    softmax(x.data(), n);
    ref::softmax(want.data(), n);
    test::expect_near_all(x.data(), want.data(), x.size(), 1e-7f, 1e-5f, "softmax");
  }
}

}  // namespace
}  // namespace nibble
