// Reference codecs beyond the Appendix B vectors (STYLE §3.4): all-zero, tiny, subnormal, huge,
// constant and mixed-sign blocks, round-trip error budgets per bit width, importance-matrix
// effect, block locality, odd sizes and misaligned buffers, and the codec table itself.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "quant/blocks.h"
#include "quant/quant.h"
#include "util/fp16.h"

namespace nibble {
namespace {

// Every type with a quantizer, and its round-trip budget: normalised RMS error
// sqrt(sum (y-x)^2 / sum x^2) on well-behaved data. Budgets grow as bits shrink; the measured
// values on uniform/Gaussian/cubed-uniform data are about half of these.
struct Budget {
  GgmlType type;
  double nrmse;
};
const Budget kBudgets[] = {
    {GgmlType::F32, 0.0},    {GgmlType::F16, 0.0005},  {GgmlType::BF16, 0.004},
    {GgmlType::Q8_0, 0.008}, {GgmlType::Q8_1, 0.008},  {GgmlType::Q8_K, 0.008},
    {GgmlType::Q6_K, 0.025}, {GgmlType::Q5_0, 0.06},   {GgmlType::Q5_1, 0.06},
    {GgmlType::Q5_K, 0.05},  {GgmlType::Q4_0, 0.11},   {GgmlType::Q4_1, 0.11},
    {GgmlType::Q4_K, 0.10},  {GgmlType::IQ4_NL, 0.10}, {GgmlType::IQ4_XS, 0.10},
    {GgmlType::Q3_K, 0.19},  {GgmlType::Q2_K, 0.42},
};

std::string name_of(const ::testing::TestParamInfo<Budget>& info) {
  return std::string(ggml_type_name(info.param.type));
}

// Deterministic generator (the Appendix B LCG); every test prints nothing random.
struct Lcg {
  uint32_t s;
  float uniform() {  // [-1, 1)
    s = s * 1664525u + 1013904223u;
    return static_cast<float>(static_cast<int32_t>(s >> 8) - 8388608) / 8388608.0f;
  }
  float gaussish() { return (uniform() + uniform() + uniform() + uniform()) * 0.8660254f; }
};

uint64_t block_size(GgmlType t) { return traits(t).block_size; }

std::vector<uint8_t> quantize(GgmlType t, const std::vector<float>& x, uint64_t n_per_row,
                              const float* imatrix = nullptr) {
  const uint64_t rows = x.size() / n_per_row;
  std::vector<uint8_t> q(ggml_row_size(t, n_per_row) * rows);
  quantize_rows(t, x.data(), q.data(), rows, n_per_row, imatrix);
  return q;
}

std::vector<float> dequantize(GgmlType t, const std::vector<uint8_t>& q, uint64_t n) {
  std::vector<float> y(n);
  dequantize_row(t, q.data(), y.data(), n);
  return y;
}

std::vector<float> round_trip(GgmlType t, const std::vector<float>& x, uint64_t n_per_row,
                              const float* imatrix = nullptr) {
  return dequantize(t, quantize(t, x, n_per_row, imatrix), x.size());
}

double nrmse(const std::vector<float>& x, const std::vector<float>& y) {
  double e = 0, n = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double d = static_cast<double>(y[i]) - x[i];
    e += d * d;
    n += static_cast<double>(x[i]) * x[i];
  }
  return n > 0 ? std::sqrt(e / n) : std::sqrt(e);
}

// Index of the first non-finite value, or -1.
long first_non_finite(const std::vector<float>& y) {
  for (size_t i = 0; i < y.size(); ++i) {
    if (!std::isfinite(y[i])) return static_cast<long>(i);
  }
  return -1;
}

constexpr uint64_t kRow = 1024;  // a multiple of every block size
constexpr uint64_t kRows = 8;

std::vector<float> make(uint64_t n, const std::function<float(Lcg&, uint64_t)>& f,
                        uint32_t seed = 7) {
  Lcg g{seed};
  std::vector<float> x(n);
  for (uint64_t i = 0; i < n; ++i) x[i] = f(g, i);
  return x;
}

class QuantRoundTrip : public ::testing::TestWithParam<Budget> {};

TEST_P(QuantRoundTrip, ErrorWithinBudget) {
  const Budget& b = GetParam();
  struct Dist {
    const char* name;
    std::function<float(Lcg&, uint64_t)> f;
  };
  const Dist dists[] = {
      {"uniform", [](Lcg& g, uint64_t) { return g.uniform(); }},
      {"gaussian", [](Lcg& g, uint64_t) { return g.gaussish(); }},
      {"cubed",
       [](Lcg& g, uint64_t) {
         const float u = g.uniform();
         return ((u * u) * u) * 4.0f;
       }},
      {"positive", [](Lcg& g, uint64_t) { return 1.5f + 0.5f * g.uniform(); }},
      {"negative", [](Lcg& g, uint64_t) { return -1.5f + 0.5f * g.uniform(); }},
      {"alternating",
       [](Lcg& g, uint64_t i) {
         return (i % 2 ? 1.0f : -1.0f) * (0.25f + std::fabs(g.uniform()));
       }},
      {"huge 2^12", [](Lcg& g, uint64_t) { return 4096.0f * g.uniform(); }},
  };
  for (const auto& d : dists) {
    const auto x = make(kRow * kRows, d.f);
    const auto y = round_trip(b.type, x, kRow);
    ASSERT_EQ(first_non_finite(y), -1) << d.name;
    EXPECT_LE(nrmse(x, y), b.nrmse) << d.name;
  }
}

TEST_P(QuantRoundTrip, ImatrixWithinBudgetAndHelpsWeightedError) {
  const Budget& b = GetParam();
  const auto x = make(kRow * kRows, [](Lcg& g, uint64_t) { return g.gaussish(); });
  // Every 16th column matters 50x more.
  std::vector<float> qw(kRow);
  for (uint64_t j = 0; j < kRow; ++j) qw[j] = j % 16 == 0 ? 50.0f : 1.0f;
  const auto y0 = round_trip(b.type, x, kRow);
  const auto y1 = round_trip(b.type, x, kRow, qw.data());
  ASSERT_EQ(first_non_finite(y1), -1);
  EXPECT_LE(nrmse(x, y1), b.nrmse);
  double w0 = 0, w1 = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    w0 += qw[i % kRow] * (static_cast<double>(y0[i]) - x[i]) * (static_cast<double>(y0[i]) - x[i]);
    w1 += qw[i % kRow] * (static_cast<double>(y1[i]) - x[i]) * (static_cast<double>(y1[i]) - x[i]);
  }
  if (imatrix_use(b.type) == ImatrixUse::kIgnored) {
    EXPECT_EQ(y0, y1) << "an ignored imatrix must not change the bytes";
  } else {
    EXPECT_LT(w1, 0.8 * w0) << "importance-weighted error should drop with the imatrix";
  }
}

TEST_P(QuantRoundTrip, AllZeroBlocksGiveZeroScaleAndExactZeros) {
  const Budget& b = GetParam();
  const uint64_t n = block_size(b.type) * 3;
  const std::vector<float> x(n, 0.0f);
  std::vector<float> qw(n, 1.0f);
  for (const float* im :
       {static_cast<const float*>(nullptr), static_cast<const float*>(qw.data())}) {
    const auto q = quantize(b.type, x, n, im);
    const auto y = dequantize(b.type, q, n);
    for (uint64_t i = 0; i < n; ++i)
      ASSERT_EQ(y[i], 0.0f) << "element " << i << (im ? " (imatrix)" : "");
  }
}

TEST_P(QuantRoundTrip, NegativeZeroAndSubnormalsStayFinite) {
  const Budget& b = GetParam();
  const uint64_t n = block_size(b.type) * 4;
  for (const float scale : {1e-20f, 1e-38f, 1e-44f}) {
    auto x =
        make(n, [scale](Lcg& g, uint64_t i) { return i % 5 == 0 ? -0.0f : scale * g.uniform(); });
    std::vector<float> qw(n, 1.0f);
    for (const float* im :
         {static_cast<const float*>(nullptr), static_cast<const float*>(qw.data())}) {
      const auto y = round_trip(b.type, x, n, im);
      ASSERT_EQ(first_non_finite(y), -1) << "scale " << scale;
      for (uint64_t i = 0; i < n; ++i) {
        ASSERT_LE(std::fabs(y[i]), 2.0f * scale) << "element " << i << " scale " << scale;
      }
    }
  }
}

TEST_P(QuantRoundTrip, TinyGroupsNextToLargeOnes) {
  // One block of 1e-20 values beside ordinary blocks: no NaN, the tiny block ~0, the others fine.
  const Budget& b = GetParam();
  const uint64_t bs = block_size(b.type);
  const uint64_t n = std::max<uint64_t>(bs * 4, 1024);
  auto x = make(n, [](Lcg& g, uint64_t) { return g.uniform(); });
  for (uint64_t i = bs; i < 2 * bs; ++i) x[i] *= 1e-20f;
  const auto y = round_trip(b.type, x, n);
  ASSERT_EQ(first_non_finite(y), -1);
  for (uint64_t i = bs; i < 2 * bs; ++i) ASSERT_LE(std::fabs(y[i]), 1e-19f) << i;
}

TEST_P(QuantRoundTrip, ConstantAndSparseBlocks) {
  const Budget& b = GetParam();
  const uint64_t n = kRow;
  const auto constant = std::vector<float>(n, 0.7f);
  const auto y = round_trip(b.type, constant, n);
  ASSERT_EQ(first_non_finite(y), -1);
  EXPECT_LE(nrmse(constant, y), b.nrmse) << "constant";
  const auto sparse = make(n, [](Lcg& g, uint64_t i) { return i % 11 == 3 ? g.uniform() : 0.0f; });
  const auto ys = round_trip(b.type, sparse, n);
  ASSERT_EQ(first_non_finite(ys), -1);
  EXPECT_LE(nrmse(sparse, ys), 2.0 * b.nrmse) << "sparse";
}

TEST_P(QuantRoundTrip, BlocksAreIndependentWithoutImatrix) {
  // Quantizing a row at once equals quantizing it block by block, for odd block counts.
  const Budget& b = GetParam();
  const uint64_t bs = block_size(b.type);
  const uint64_t bytes = traits(b.type).type_size;
  for (const uint64_t nb : {1u, 2u, 3u, 7u, 33u}) {
    const auto x = make(
        bs * nb, [](Lcg& g, uint64_t) { return g.gaussish(); }, static_cast<uint32_t>(nb));
    const auto whole = quantize(b.type, x, bs * nb);
    ASSERT_EQ(whole.size(), nb * bytes);
    for (uint64_t i = 0; i < nb; ++i) {
      std::vector<uint8_t> one(bytes);
      quantize_row(b.type, x.data() + i * bs, one.data(), bs);
      ASSERT_EQ(std::memcmp(one.data(), whole.data() + i * bytes, bytes), 0)
          << "block " << i << " of " << nb;
    }
  }
}

TEST_P(QuantRoundTrip, MisalignedBuffers) {
  // Quantized bytes have no alignment: the same bytes are written to / read from an odd address.
  // (f32 rows stay aligned: a misaligned float* is not valid C++.)
  const Budget& b = GetParam();
  const uint64_t n = block_size(b.type) * 5;
  const auto x = make(n, [](Lcg& g, uint64_t) { return g.uniform(); });
  const auto q = quantize(b.type, x, n);
  std::vector<uint8_t> buf(q.size() + 3);
  quantize_row(b.type, x.data(), buf.data() + 1, n);
  EXPECT_EQ(std::memcmp(buf.data() + 1, q.data(), q.size()), 0);
  std::vector<float> y(n);
  dequantize_row(b.type, buf.data() + 1, y.data(), n);
  EXPECT_EQ(y, dequantize(b.type, q, n));
}

INSTANTIATE_TEST_SUITE_P(AllTypes, QuantRoundTrip, ::testing::ValuesIn(kBudgets), name_of);

// ---- known bytes of special blocks ----------------------------------------------------------

TEST(QuantSpecialBlocks, ZeroBlockBytes) {
  const std::vector<float> z(256, 0.0f);
  auto q = quantize(GgmlType::IQ4_NL, std::vector<float>(32, 0.0f), 32);
  EXPECT_EQ(q[0], 0);
  EXPECT_EQ(q[1], 0);
  for (int j = 2; j < 18; ++j) EXPECT_EQ(q[j], 0x88) << j;  // index 8: K[8] = 1 is nearest to 0

  q = quantize(GgmlType::IQ4_XS, z, 256);
  BlockIQ4_XS xs;
  std::memcpy(&xs, q.data(), sizeof(xs));
  EXPECT_EQ(xs.d, 0x8000);         // d = -max_scale/32 = -0.0
  EXPECT_EQ(xs.scales_h, 0xAAAA);  // every 6-bit scale = 32: high bits 10
  for (uint8_t s : xs.scales_l) EXPECT_EQ(s, 0);
  for (uint8_t s : xs.qs) EXPECT_EQ(s, 0x88);

  for (GgmlType t : {GgmlType::Q6_K, GgmlType::Q8_K}) {
    q = quantize(t, z, 256);
    for (size_t j = 0; j < q.size(); ++j) ASSERT_EQ(q[j], 0) << ggml_type_name(t) << " byte " << j;
  }
  // Scale-carrying types: the f16 scale decodes to zero.
  for (GgmlType t :
       {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0}) {
    q = quantize(t, std::vector<float>(32, 0.0f), 32);
    uint16_t d;
    std::memcpy(&d, q.data(), 2);
    EXPECT_EQ(f16_to_f32(d), 0.0f) << ggml_type_name(t);
  }
}

TEST(QuantSpecialBlocks, Q8KScaleAndBsums) {
  auto x = make(512, [](Lcg& g, uint64_t) { return 3.0f * g.gaussish(); });
  x[300] = -20.0f;  // the max-|x| element of block 1 maps to -127
  const auto q = quantize(GgmlType::Q8_K, x, 512);
  for (int b = 0; b < 2; ++b) {
    BlockQ8_K blk;
    std::memcpy(&blk, q.data() + b * sizeof(blk), sizeof(blk));
    for (int k = 0; k < 16; ++k) {
      int sum = 0;
      for (int j = 0; j < 16; ++j) sum += blk.qs[16 * k + j];
      EXPECT_EQ(blk.bsums[k], sum) << "block " << b << " group " << k;
    }
    float amax = 0.0f;
    for (int j = 0; j < 256; ++j) amax = std::max(amax, std::fabs(x[256 * b + j]));
    EXPECT_NEAR(std::fabs(blk.d), amax / 127.0f, amax * 1e-6f);
    for (int j = 0; j < 256; ++j) {
      EXPECT_LE(std::fabs(blk.d * blk.qs[j] - x[256 * b + j]), 0.5f * std::fabs(blk.d) * 1.0001f)
          << j;
    }
    if (b == 1) {
      EXPECT_EQ(blk.qs[300 - 256], -127);
    }
  }
}

TEST(QuantSpecialBlocks, Q8_1SumField) {
  const auto x = make(64, [](Lcg& g, uint64_t) { return g.uniform(); });
  const auto q = quantize(GgmlType::Q8_1, x, 64);
  for (int b = 0; b < 2; ++b) {
    BlockQ8_1 blk;
    std::memcpy(&blk, q.data() + b * sizeof(blk), sizeof(blk));
    int sum = 0;
    for (int j = 0; j < 32; ++j) sum += blk.qs[j];
    // s = fp16(sum * d_f32) with the unrounded d; within half an f16 ulp of sum * F(d) * (1 +-
    // 2^-11).
    const float s = f16_to_f32(blk.s), approx = static_cast<float>(sum) * f16_to_f32(blk.d);
    EXPECT_NEAR(s, approx, std::fabs(approx) * 2e-3f + 1e-6f);
  }
  // Q8_1's quants equal Q8_0's.
  const auto q0 = quantize(GgmlType::Q8_0, x, 64);
  for (int b = 0; b < 2; ++b) {
    EXPECT_EQ(std::memcmp(q.data() + 36 * b + 4, q0.data() + 34 * b + 2, 32), 0);
  }
}

TEST(QuantSpecialBlocks, Q4_0MaxElementMapsToLevelZero) {
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[j] = 0.01f * static_cast<float>(j - 16);
  x[5] = -2.0f;  // max |x|: d = -2/-8 = 0.25, quant 0
  const auto q = quantize(GgmlType::Q4_0, x, 32);
  BlockQ4_0 blk;
  std::memcpy(&blk, q.data(), sizeof(blk));
  EXPECT_EQ(f16_to_f32(blk.d), 0.25f);
  EXPECT_EQ(blk.qs[5] & 0xF, 0);
}

TEST(QuantSpecialBlocks, IQ4NLKvCachePathDiffersButIsValid) {
  const auto x = make(1024, [](Lcg& g, uint64_t) { return g.gaussish(); });
  std::vector<uint8_t> kv(ggml_row_size(GgmlType::IQ4_NL, 1024));
  quantize_row_iq4_nl_kv(x.data(), kv.data(), 1024);
  const auto file = quantize(GgmlType::IQ4_NL, x, 1024);
  EXPECT_NE(kv, file);  // no scale search, negative initial scale
  const auto y = dequantize(GgmlType::IQ4_NL, kv, 1024);
  ASSERT_EQ(first_non_finite(y), -1);
  EXPECT_LE(nrmse(x, y), 0.12);
  // All-zero block: d = 0.
  std::vector<uint8_t> z(18);
  const std::vector<float> zeros(32, 0.0f);
  quantize_row_iq4_nl_kv(zeros.data(), z.data(), 32);
  EXPECT_EQ(z[0], 0);
  EXPECT_EQ(z[1], 0);
}

TEST(QuantSpecialBlocks, LegacyImatrixUsesWholeRowSigma) {
  // Q4_0 with an imatrix: the weights depend on the whole row's mean square, so a block's bytes
  // can change when another block of the row changes (unlike the K-quants, whose sigma2 is per
  // super-block).
  auto x = make(1024, [](Lcg& g, uint64_t) { return g.gaussish(); });
  std::vector<float> qw(1024);
  for (int j = 0; j < 1024; ++j) qw[j] = 0.5f + static_cast<float>(j % 13) * 0.125f;
  auto x2 = x;
  for (int j = 512; j < 1024; ++j) x2[j] *= 30.0f;
  for (GgmlType t : {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1}) {
    const auto a = quantize(t, x, 1024, qw.data()), b = quantize(t, x2, 1024, qw.data());
    const size_t first_half = ggml_row_size(t, 512);
    EXPECT_NE(std::memcmp(a.data(), b.data(), first_half), 0) << ggml_type_name(t);
  }
  for (GgmlType t : {GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K,
                     GgmlType::IQ4_NL, GgmlType::IQ4_XS}) {
    const auto a = quantize(t, x, 1024, qw.data()), b = quantize(t, x2, 1024, qw.data());
    const size_t first_half = ggml_row_size(t, 512);
    EXPECT_EQ(std::memcmp(a.data(), b.data(), first_half), 0) << ggml_type_name(t);
  }
}

// ---- the codec table ------------------------------------------------------------------------

TEST(QuantTable, RowsAreConsistentWithTypeTraits) {
  int n_codecs = 0;
  for (uint32_t id = 0; id < kGgmlTypeCount; ++id) {
    if (ggml_type_traits(id) == nullptr) continue;
    const auto type = static_cast<GgmlType>(id);
    const QuantCodec* c = quant_codec(type);
    if (c == nullptr) {
      EXPECT_FALSE(can_quantize(type)) << ggml_type_name(type);
      EXPECT_FALSE(can_dequantize(type)) << ggml_type_name(type);
      continue;
    }
    ++n_codecs;
    SCOPED_TRACE(ggml_type_name(type));
    EXPECT_EQ(c->type, type);
    EXPECT_NE(c->dequantize, nullptr);
    EXPECT_TRUE(can_dequantize(type));
    EXPECT_EQ(can_quantize(type), c->quantize != nullptr);
    EXPECT_EQ(c->quantize_imatrix != nullptr, c->imatrix != ImatrixUse::kIgnored);
  }
  EXPECT_EQ(n_codecs, static_cast<int>(std::size(kBudgets)));
  for (const auto& b : kBudgets) EXPECT_TRUE(can_quantize(b.type)) << ggml_type_name(b.type);
  // Types nibble does not convert (grid-based IQ formats, ternary, MXFP4) are refused.
  for (GgmlType t :
       {GgmlType::IQ2_XXS, GgmlType::IQ3_S, GgmlType::IQ1_M, GgmlType::TQ1_0, GgmlType::MXFP4}) {
    EXPECT_FALSE(can_quantize(t)) << ggml_type_name(t);
    EXPECT_FALSE(can_dequantize(t)) << ggml_type_name(t);
  }
  EXPECT_TRUE(quant_codec(GgmlType::Q8_K)->activation_only);
  EXPECT_TRUE(quant_codec(GgmlType::Q8_1)->activation_only);
  EXPECT_FALSE(quant_codec(GgmlType::Q4_K)->activation_only);
}

TEST(QuantTable, ImatrixUsePerType) {
  EXPECT_EQ(imatrix_use(GgmlType::Q8_0), ImatrixUse::kIgnored);
  EXPECT_EQ(imatrix_use(GgmlType::F16), ImatrixUse::kIgnored);
  for (GgmlType t : {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q2_K,
                     GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K}) {
    EXPECT_EQ(imatrix_use(t), ImatrixUse::kSwitches) << ggml_type_name(t);
  }
  EXPECT_EQ(imatrix_use(GgmlType::IQ4_NL), ImatrixUse::kWeights);
  EXPECT_EQ(imatrix_use(GgmlType::IQ4_XS), ImatrixUse::kWeights);
}

TEST(QuantTable, QuantizeRowsReturnsBytesWritten) {
  const auto x = make(4 * 512, [](Lcg& g, uint64_t) { return g.uniform(); });
  for (const auto& b : kBudgets) {
    std::vector<uint8_t> q(ggml_row_size(b.type, 512) * 4 + 7, 0xCD);
    const uint64_t n = quantize_rows(b.type, x.data(), q.data(), 4, 512, nullptr);
    EXPECT_EQ(n, ggml_row_size(b.type, 512) * 4) << ggml_type_name(b.type);
    for (size_t i = n; i < q.size(); ++i)
      ASSERT_EQ(q[i], 0xCD) << "wrote past the end: " << ggml_type_name(b.type);
  }
}

}  // namespace
}  // namespace nibble
