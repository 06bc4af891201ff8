// Known-value tests of the scale-search helpers and rounding rules behind the K-quants
// (spec §0.2, §3.2, §3.5): on data that lies exactly on a quantization grid every helper must
// recover that grid and its scale exactly.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "quant/blocks.h"
#include "quant/quant.h"
#include "quant/reference/float_ops.h"
#include "quant/reference/search.h"

namespace nibble {
namespace {

using qref::nearest_int;

TEST(QuantRounding, NearestIntTiesToEven) {
  EXPECT_EQ(nearest_int(0.5f), 0);
  EXPECT_EQ(nearest_int(1.5f), 2);
  EXPECT_EQ(nearest_int(2.5f), 2);
  EXPECT_EQ(nearest_int(-0.5f), 0);
  EXPECT_EQ(nearest_int(-1.5f), -2);
  EXPECT_EQ(nearest_int(-2.5f), -2);
  EXPECT_EQ(nearest_int(3.4999998f), 3);
  EXPECT_EQ(nearest_int(-0.0f), 0);
  EXPECT_EQ(nearest_int(4194303.0f), 4194303);
  EXPECT_EQ(nearest_int(-4194303.0f), -4194303);
  for (int i = -1000; i <= 1000; ++i) {
    const float v = static_cast<float>(i) * 0.37f;
    ASSERT_EQ(nearest_int(v), static_cast<int>(std::nearbyint(v))) << v;
  }
}

TEST(QuantRounding, AbsMaxFirstOccurrenceWins) {
  const float x[] = {0.5f, -2.0f, 2.0f, 1.0f};
  const auto m = qref::abs_max(x, 4);
  EXPECT_EQ(m.amax, 2.0f);
  EXPECT_EQ(m.max, -2.0f);
  const float z[] = {0.0f, -0.0f};
  EXPECT_EQ(qref::abs_max(z, 2).max, 0.0f);
}

TEST(QuantSearch, BestIndexIq4) {
  const int8_t* K = kIq4nlValues;
  for (int i = 0; i < 16; ++i) EXPECT_EQ(qref::best_index_iq4(K, K[i]), i);
  EXPECT_EQ(qref::best_index_iq4(K, -1000.0f), 0);
  EXPECT_EQ(qref::best_index_iq4(K, 1000.0f), 15);
  EXPECT_EQ(qref::best_index_iq4(K, 0.0f), 8);   // |0-1| < |0+10|
  EXPECT_EQ(qref::best_index_iq4(K, -4.5f), 8);  // midpoint of -10 and 1: ties go up
  EXPECT_EQ(qref::best_index_iq4(K, -4.51f), 7);
  EXPECT_EQ(qref::best_index_iq4(K, 101.0f), 15);  // midpoint of 89 and 113
  EXPECT_EQ(qref::best_index_iq4(K, 100.99f), 14);
}

TEST(QuantSearch, MakeQxQuantsRecoversExactGrid) {
  // x = 0.25 * l with l in -8..7 (the max |x| at l = -8): scale 0.25, L = l + 8.
  const int l[16] = {-8, 3, -1, 7, 0, 5, -3, 2, -7, 1, 6, -5, 4, -2, -6, -4};
  float x[16];
  for (int i = 0; i < 16; ++i) x[i] = 0.25f * static_cast<float>(l[i]);
  int8_t L[16];
  EXPECT_EQ(qref::make_qx_quants(16, 8, x, L, 1, nullptr), 0.25f);
  for (int i = 0; i < 16; ++i) EXPECT_EQ(L[i], l[i] + 8) << i;
  std::vector<float> w(16, 1.0f);
  EXPECT_EQ(qref::make_qx_quants(16, 8, x, L, 1, w.data()), 0.25f);
  for (int i = 0; i < 16; ++i) EXPECT_EQ(L[i], l[i] + 8) << i;
}

TEST(QuantSearch, MakeQ3QuantsRecoversExactGrid) {
  const int l[16] = {-4, 3, -1, 2, 0, 1, -3, 2, -2, 1, 3, -4, 0, -2, 1, -1};
  float x[16];
  for (int i = 0; i < 16; ++i) x[i] = 0.5f * static_cast<float>(l[i]);
  int8_t L[16];
  EXPECT_EQ(qref::make_q3_quants(16, 4, x, L, true), 0.5f);
  for (int i = 0; i < 16; ++i) EXPECT_EQ(L[i], l[i] + 4) << i;
}

TEST(QuantSearch, MakeQkx2AndQkx3RecoverExactAffineGrid) {
  // x = 0.5 * l - 1 with l in 0..15 (both ends present): scale 0.5, min offset 1.
  float x[32], w[32];
  int l[32];
  for (int i = 0; i < 32; ++i) {
    l[i] = (i * 7) % 16;
    x[i] = 0.5f * static_cast<float>(l[i]) - 1.0f;
    w[i] = 0.5f + std::fabs(x[i]);
  }
  uint8_t L[32], Laux[32];
  float the_min = -1.0f;
  EXPECT_EQ(qref::make_qkx2_quants(32, 15, x, w, L, &the_min, Laux, -1.0f, 0.1f, 20, false), 0.5f);
  EXPECT_EQ(the_min, 1.0f);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(L[i], l[i]) << i;
  EXPECT_EQ(qref::make_qkx3_quants(32, 15, x, w, L, &the_min, Laux, -0.9f, 0.05f, 36, false), 0.5f);
  EXPECT_EQ(the_min, 1.0f);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(L[i], l[i]) << i;
}

TEST(QuantSearch, MakeQkxDegenerateGroups) {
  uint8_t L[16], Laux[16];
  float w[16], the_min = -1.0f;
  float x[16];
  for (int i = 0; i < 16; ++i) {
    x[i] = 0.0f;
    w[i] = 1.0f;
  }
  EXPECT_EQ(qref::make_qkx2_quants(16, 3, x, w, L, &the_min, Laux, -0.5f, 0.1f, 15, true), 0.0f);
  EXPECT_EQ(the_min, 0.0f);
  for (uint8_t v : L) EXPECT_EQ(v, 0);
  // All positive and equal: the min is clamped to 0, so the scale carries the value.
  for (int i = 0; i < 16; ++i) x[i] = 3.0f;
  const float s = qref::make_qkx3_quants(16, 3, x, w, L, &the_min, Laux, -0.9f, 0.05f, 36, false);
  EXPECT_EQ(the_min, 0.0f);
  for (int i = 0; i < 16; ++i) EXPECT_FLOAT_EQ(s * L[i], 3.0f);
}

TEST(QuantSearch, MakeQpQuantsRecoversExactGrid) {
  float x[8], qw[8];
  for (int i = 0; i < 8; ++i) {
    x[i] = 0.5f * static_cast<float>((i * 5) % 8);
    qw[i] = 1.0f + static_cast<float>(i);
  }
  uint8_t L[8];
  EXPECT_EQ(qref::make_qp_quants(8, 7, x, L, qw), 0.5f);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(L[i], (i * 5) % 8) << i;
  for (float& v : x) v = 0.0f;
  EXPECT_EQ(qref::make_qp_quants(8, 7, x, L, qw), 0.0f);
}

TEST(QuantSearch, ZeroAndTinyGroupsReturnZeroScale) {
  float x[16];
  for (int i = 0; i < 16; ++i) x[i] = (i % 2 ? 1.0f : -1.0f) * 1e-16f;  // below GROUP_MAX_EPS
  int8_t L[16];
  EXPECT_EQ(qref::make_qx_quants(16, 32, x, L, 1, nullptr), 0.0f);
  for (int8_t v : L) EXPECT_EQ(v, 0);
  EXPECT_EQ(qref::make_q3_quants(16, 4, x, L, true), 0.0f);
  for (int8_t v : L) EXPECT_EQ(v, 0);
}

TEST(QuantPaths, UnitImatrixIsNotTheReferencePath) {
  // With an imatrix the K-quants and legacy types run a different algorithm (ggml's *_impl);
  // an all-ones imatrix does not reproduce the no-imatrix bytes.
  std::vector<float> x(1024);
  uint32_t s = 3;
  for (auto& v : x) {
    s = s * 1664525u + 1013904223u;
    v = static_cast<float>(static_cast<int32_t>(s >> 8) - 8388608) / 8388608.0f;
  }
  const std::vector<float> ones(1024, 1.0f);
  for (GgmlType t : {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q2_K,
                     GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K,
                     GgmlType::IQ4_NL, GgmlType::IQ4_XS}) {
    std::vector<uint8_t> a(ggml_row_size(t, 1024)), b(a.size());
    quantize_row(t, x.data(), a.data(), 1024);
    quantize_row(t, x.data(), b.data(), 1024, ones.data());
    EXPECT_NE(a, b) << ggml_type_name(t);
  }
}

}  // namespace
}  // namespace nibble
