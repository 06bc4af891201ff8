// Helpers for the kernel-vs-oracle tests: seeded data and a tolerance check that reports the
// worst index, the expected and actual values and how many were outside (STYLE §8).
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace nibble::test {

inline std::vector<float> random_floats(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-scale, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// |actual - expected| <= atol + rtol * |expected| everywhere.
inline void expect_near_all(const float* actual, const float* expected, size_t n, float atol,
                            float rtol, const std::string& what) {
  size_t bad = 0, worst = 0;
  double worst_excess = -1.0;
  for (size_t i = 0; i < n; ++i) {
    const double tol = atol + rtol * std::fabs(expected[i]);
    const double d = std::fabs(static_cast<double>(actual[i]) - expected[i]);
    if (!(d <= tol)) ++bad;
    if (d - tol > worst_excess || std::isnan(actual[i])) worst_excess = d - tol, worst = i;
  }
  EXPECT_EQ(bad, 0u) << what << ": worst index " << worst << " expected " << expected[worst]
                     << " actual " << actual[worst] << "; " << bad << " of " << n
                     << " outside atol " << atol << " rtol " << rtol;
}

}  // namespace nibble::test
