// The vectorised tanh behind GELU and the soft-cap: accuracy against std::tanh, and the vector,
// scalar and threaded paths agreeing bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "ops/activation.h"
#include "ops_test_util.h"

namespace nibble {
namespace {

int64_t ulp_distance(float a, float b) {
  int32_t ia, ib;
  std::memcpy(&ia, &a, 4);
  std::memcpy(&ib, &b, 4);
  if (ia < 0) ia = INT32_MIN - ia;
  if (ib < 0) ib = INT32_MIN - ib;
  return std::llabs(static_cast<int64_t>(ia) - ib);
}

TEST(TanhFast, WithinFewUlpOfStdTanh) {
  int64_t worst = 0;
  float worst_x = 0.0f;
  for (float x = -12.0f; x <= 12.0f; x += 0.000731f) {
    const int64_t d = ulp_distance(tanh_fast(x), std::tanh(x));
    // Near zero tanh(x) ~ x: compare absolutely there (ulps of tiny numbers are tiny).
    if (std::fabs(x) > 1e-3f && d > worst) worst = d, worst_x = x;
    ASSERT_LE(std::fabs(tanh_fast(x) - std::tanh(x)), 2e-7f) << "x " << x;
  }
  EXPECT_LE(worst, 8) << "at x = " << worst_x;
  EXPECT_EQ(tanh_fast(0.0f), 0.0f);
  EXPECT_EQ(tanh_fast(INFINITY), 1.0f);
  EXPECT_EQ(tanh_fast(-INFINITY), -1.0f);
  EXPECT_EQ(tanh_fast(50.0f), 1.0f);
}

TEST(TanhFast, VectorScalarAndThreadedPathsAgree) {
  // 70001 values: vector body, scalar tail, and more than one thread chunk.
  const size_t n = 70001;
  auto gate = test::random_floats(n, 3, 6.0f);
  const auto up = test::random_floats(n, 4, 2.0f);
  std::vector<float> want(n);
  for (size_t i = 0; i < n; ++i) want[i] = gelu(gate[i]) * up[i];
  geglu(gate.data(), up.data(), static_cast<int64_t>(n));
  ASSERT_EQ(0, std::memcmp(want.data(), gate.data(), n * sizeof(float)));

  auto x = test::random_floats(n, 5, 80.0f);
  std::vector<float> sc(n);
  for (size_t i = 0; i < n; ++i) sc[i] = 30.0f * tanh_fast(x[i] / 30.0f);
  softcap(x.data(), static_cast<int64_t>(n), 30.0f);
  ASSERT_EQ(0, std::memcmp(sc.data(), x.data(), n * sizeof(float)));
}

}  // namespace
}  // namespace nibble
