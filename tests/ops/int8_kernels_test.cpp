// The integer-dot path of matmul: int8 unpacking of every integer-quantized type against the
// reference dequantizer (exact), activation quantization against the reference Q8_0 quantizer,
// every ISA kernel against the generic one (bit for bit), and matmul against a float oracle over
// the dequantized weights and dequantized activations.
#include <gtest/gtest.h>

#include <limits>

#include <cmath>
#include <cstring>

#include "ops/int8_acts.h"
#include "ops/int8_dot.h"
#include "ops/int8_panel.h"
#include "ops/int8_rows.h"
#include "ops/matmul.h"
#include "ops/reference/reference_ops.h"
#include "ops_test_util.h"
#include "quant/blocks.h"
#include "quant/quant.h"
#include "util/cpu_features.h"
#include "util/fp16.h"

namespace nibble {
namespace {

const GgmlType kInt8Types[] = {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1,
                               GgmlType::Q8_0, GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K,
                               GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::IQ4_NL,
                               GgmlType::IQ4_XS};

std::vector<uint8_t> quantized(GgmlType type, const std::vector<float>& v, int64_t n_in) {
  const uint64_t rb = ggml_row_size(type, static_cast<uint64_t>(n_in));
  const int64_t rows = static_cast<int64_t>(v.size()) / n_in;
  std::vector<uint8_t> out(rb * static_cast<uint64_t>(rows));
  for (int64_t r = 0; r < rows; ++r)
    quantize_row(type, v.data() + r * n_in, out.data() + r * rb, static_cast<uint64_t>(n_in));
  return out;
}

TEST(Int8Rows, UnpackEqualsReferenceDequantizerExactly) {
  for (GgmlType t : kInt8Types) {
    ASSERT_TRUE(int8_rows_supported(t)) << ggml_type_name(t);
    const int64_t n = 512;
    // Mixed magnitudes, with a shifted half so that the offset types get non-zero minimums.
    auto v = test::random_floats(static_cast<size_t>(n), 7u + static_cast<uint32_t>(t), 2.0f);
    for (int64_t i = 0; i < n / 2; ++i) v[static_cast<size_t>(i)] += 1.5f;
    const auto bytes = quantized(t, v, n);
    std::vector<float> want(static_cast<size_t>(n));
    dequantize_row(t, bytes.data(), want.data(), static_cast<uint64_t>(n));
    std::vector<int8_t> q(static_cast<size_t>(n));
    std::vector<float> s(static_cast<size_t>(n / 4)), off(static_cast<size_t>(n / 16), 0.0f);
    unpack_int8_row(t, bytes.data(), n, q.data(), s.data(),
                    int8_rows_have_min(t) ? off.data() : nullptr);
    for (int64_t i = 0; i < n; ++i) {
      const float got = static_cast<float>(q[i]) * s[i / 4] + off[i / 16];
      ASSERT_EQ(got, want[i]) << ggml_type_name(t) << " element " << i;
    }
  }
}

TEST(Int8Acts, MatchReferenceQ8_0Quantizer) {
  const int64_t n = 256;
  auto x = test::random_floats(static_cast<size_t>(n), 11, 3.0f);
  x[5] = 0.0f;
  for (int j = 64; j < 96; ++j) x[j] = 0.0f;  // an all-zero block
  std::vector<uint8_t> ref(ggml_row_size(GgmlType::Q8_0, n));
  quantize_row(GgmlType::Q8_0, x.data(), ref.data(), static_cast<uint64_t>(n));
  std::vector<int8_t> q(n);
  std::vector<float> d(n / 32), s16(n / 16);
  quantize_act_row(x.data(), n, q.data(), d.data(), s16.data());
  for (int64_t b = 0; b < n / 32; ++b) {
    BlockQ8_0 blk;
    std::memcpy(&blk, ref.data() + b * sizeof(BlockQ8_0), sizeof blk);
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[32 * b + j]));
    EXPECT_EQ(d[b], amax / 127.0f) << "block " << b;
    EXPECT_EQ(f32_to_f16(d[b]), blk.d) << "block " << b;
    for (int j = 0; j < 32; ++j) ASSERT_EQ(q[32 * b + j], blk.qs[j]) << "block " << b << " " << j;
    for (int h = 0; h < 2; ++h) {
      int sum = 0;
      for (int j = 0; j < 16; ++j) sum += q[32 * b + 16 * h + j];
      EXPECT_EQ(s16[2 * b + h], d[b] * static_cast<float>(sum));
    }
  }
}

TEST(Int8Rows, FastUnpackEqualsPortable) {
  for (GgmlType t : kInt8Types) {
    const int64_t n = 1024;
    const auto v = test::random_floats(static_cast<size_t>(n), 29u + static_cast<uint32_t>(t));
    const auto bytes = quantized(t, v, n);
    std::vector<int8_t> q1(n), q2(n);
    std::vector<float> s1(n / 4), s2(n / 4), o1(n / 16, 0.0f), o2(n / 16, 0.0f);
    const bool m = int8_rows_have_min(t);
    unpack_int8_row(t, bytes.data(), n, q1.data(), s1.data(), m ? o1.data() : nullptr);
    unpack_int8_row_portable(t, bytes.data(), n, q2.data(), s2.data(), m ? o2.data() : nullptr);
    EXPECT_EQ(q1, q2) << ggml_type_name(t);
    EXPECT_EQ(s1, s2) << ggml_type_name(t);
    EXPECT_EQ(o1, o2) << ggml_type_name(t);
  }
}

TEST(Int8Acts, FastRowEqualsScalarIncludingTies) {
  const int64_t n = 4096;
  auto x = test::random_floats(static_cast<size_t>(n), 31, 5.0f);
  // A block with amax 127 has d = 1: k + 0.5 are exact ties (round half away from zero).
  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j - 16) + 0.5f;
  x[31] = 127.0f;
  for (int j = 32; j < 64; ++j) x[j] = -x[j - 32];
  std::vector<int8_t> q1(n), q2(n);
  std::vector<float> d1(n / 32), d2(n / 32), s1(n / 16), s2(n / 16);
  quantize_act_row(x.data(), n, q1.data(), d1.data(), s1.data());
  quantize_act_row_fast(x.data(), n, q2.data(), d2.data(), s2.data());
  EXPECT_EQ(q1, q2);
  EXPECT_EQ(d1, d2);
  EXPECT_EQ(s1, s2);
  EXPECT_EQ(q1[0], -16);  // -15.5 -> -16
  EXPECT_EQ(q1[16], 1);   // 0.5 -> 1
}

TEST(Int8Acts, NonFiniteAndTinyBlocksStayInRange) {
  // Blocks whose 1 / d overflows (values ~1e-38), or with infinite or NaN values: every q in
  // [-127, 127] (the kernels' sign tricks and int16 pair sums rely on it), NaN -> 0, and the
  // fast form gives the scalar form's bytes.
  const int64_t n = 160;
  std::vector<float> x(static_cast<size_t>(n), 0.0f);
  for (int j = 0; j < 32; ++j) x[j] = (j % 3 == 0 ? -1.0f : 1.0f) * 1e-38f * static_cast<float>(j);
  for (int j = 32; j < 64; ++j) x[j] = static_cast<float>(j) * 2e-39f;
  x[64] = std::numeric_limits<float>::infinity();
  x[65] = -std::numeric_limits<float>::infinity();
  x[66] = 3.0f;
  x[96] = std::numeric_limits<float>::quiet_NaN();
  x[97] = 5.0f;
  x[98] = -2.0f;
  for (int j = 128; j < 160; ++j) x[j] = static_cast<float>(j - 140);  // an ordinary block
  std::vector<int8_t> q1(n), q2(n);
  std::vector<float> d1(n / 32), d2(n / 32), s1(n / 16), s2(n / 16);
  quantize_act_row(x.data(), n, q1.data(), d1.data(), s1.data());
  quantize_act_row_fast(x.data(), n, q2.data(), d2.data(), s2.data());
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_GE(q1[i], -127) << i;
    EXPECT_EQ(q1[i], q2[i]) << i;
  }
  EXPECT_EQ(q1[96], 0);  // NaN
  // A block with an infinity has d = inf and q = 0 (inf * 0 is NaN): its products stay NaN.
  EXPECT_EQ(q1[64], 0);
  EXPECT_TRUE(std::isinf(d1[2]));
  EXPECT_EQ(q1[159], 127);
}

// Every ISA this CPU runs gives the generic kernel's bits, for 1..4 rows and 1..9 tokens, odd and
// even block counts, with and without offsets.
TEST(Int8Dot, EveryIsaMatchesGenericBitForBit) {
  int isas_run = 0;
  for (const char* isa : {"avx512-vnni", "avx2"}) {
    for (GgmlType t : {GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q6_K,
                       GgmlType::Q2_K, GgmlType::Q4_1}) {
      const int64_t n = traits(t).block_size == 256 ? 768 : 224;  // 24 or 7 blocks of 32
      const auto v = test::random_floats(static_cast<size_t>(4 * n), 3u + static_cast<uint32_t>(t));
      const auto bytes = quantized(t, v, n);
      const uint64_t rb = ggml_row_size(t, static_cast<uint64_t>(n));
      std::vector<int8_t> q(static_cast<size_t>(4 * n));
      std::vector<float> s(static_cast<size_t>(n)), off(static_cast<size_t>(4 * n / 16));
      Int8Row rows[4];
      const bool has_min = int8_rows_have_min(t);
      for (int r = 0; r < 4; ++r) {
        unpack_int8_row(t, bytes.data() + r * rb, n, q.data() + r * n, s.data() + r * n / 4,
                        has_min ? off.data() + r * n / 16 : nullptr);
        rows[r] = {q.data() + r * n, s.data() + r * n / 4, has_min ? off.data() + r * n / 16 : nullptr};
      }
      const auto x = test::random_floats(static_cast<size_t>(9 * n), 5);
      Int8Acts acts;
      quantize_acts(x.data(), 9, n, has_min, acts);
      for (int nr = 1; nr <= 4; ++nr) {
        for (int nt : {1, 2, 3, 4, 5, 9}) {
          std::vector<float> want(static_cast<size_t>(nt * 4)), got(want.size());
          ASSERT_TRUE(int8_dot_with("generic", rows, nr, acts, 0, nt, want.data(), 4));
          if (!int8_dot_with(isa, rows, nr, acts, 0, nt, got.data(), 4)) goto next_isa;
          for (int tt = 0; tt < nt; ++tt)
            for (int r = 0; r < nr; ++r)
              ASSERT_EQ(got[tt * 4 + r], want[tt * 4 + r])
                  << isa << " " << ggml_type_name(t) << " rows " << nr << " tokens " << nt;
        }
      }
    }
    ++isas_run;
  next_isa:;
  }
  std::printf("int8 kernels compared with generic: %d ISA(s); matmul uses %s\n", isas_run,
              int8_dot_isa());
}

// The AVX-512 panel kernel gives the generic panel arithmetic's bits: every row count 1..16,
// token counts around the 8/4/2/1 tiles, scale groups of 32 and 16, with and without offsets.
TEST(Int8Panel, Avx512MatchesGenericBitForBit) {
  for (GgmlType t : {GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q6_K,
                     GgmlType::Q2_K, GgmlType::IQ4_XS}) {
    const int64_t n = 512;
    const auto v = test::random_floats(static_cast<size_t>(16 * n), 50u + static_cast<uint32_t>(t));
    const auto bytes = quantized(t, v, n);
    const uint64_t rb = ggml_row_size(t, static_cast<uint64_t>(n));
    const bool has_min = int8_rows_have_min(t);
    std::vector<int8_t> q(static_cast<size_t>(16 * n));
    std::vector<float> s(static_cast<size_t>(4 * n)), off(static_cast<size_t>(n));
    Int8Row rows[16];
    for (int r = 0; r < 16; ++r) {
      unpack_int8_row(t, bytes.data() + r * rb, n, q.data() + r * n, s.data() + r * n / 4,
                      has_min ? off.data() + r * n / 16 : nullptr);
      rows[r] = {q.data() + r * n, s.data() + r * n / 4, has_min ? off.data() + r * n / 16 : nullptr};
    }
    const auto x = test::random_floats(static_cast<size_t>(19 * n), 51);
    Int8Acts acts;
    quantize_acts(x.data(), 19, n, has_min, acts);
    add_unsigned_acts(acts);
    Int8PanelBuffer buf;
    for (int nr : {1, 5, 16}) {
      const Int8Panel p = buf.pack(rows, nr, n, panel_group(t));
      for (int nt : {1, 3, 8, 15, 19}) {
        std::vector<float> want(static_cast<size_t>(nt * 16), -1.0f), got(want);
        panel_dot_generic(p, acts, 0, nt, want.data(), 16);
        if (!panel_dot_avx512_checked(p, acts, 0, nt, got.data(), 16)) GTEST_SKIP() << "no AVX-512 VNNI";
        for (size_t i = 0; i < want.size(); ++i)
          ASSERT_EQ(got[i], want[i]) << ggml_type_name(t) << " rows " << nr << " tokens " << nt << " i " << i;
      }
    }
  }
}

// matmul on integer types = the float dot of the dequantized weights with the dequantized
// activations (d * q), up to float summation order.
TEST(Int8Matmul, EqualsFloatOracleOnQuantizedActivations) {
  for (GgmlType t : kInt8Types) {
    for (int64_t n_in : {256, 1536}) {
      for (int64_t n_tokens : {1, 3, 70}) {
        const int64_t n_out = 37;
        const auto v = test::random_floats(static_cast<size_t>(n_out * n_in), 9u + static_cast<uint32_t>(t));
        const auto bytes = quantized(t, v, n_in);
        const WeightMatrix w{t, bytes.data(), n_in, n_out, ggml_row_size(t, n_in)};
        const auto x = test::random_floats(static_cast<size_t>(n_tokens * n_in), 17);
        std::vector<float> xq(x.size());
        std::vector<int8_t> q(static_cast<size_t>(n_in));
        std::vector<float> d(static_cast<size_t>(n_in / 32));
        for (int64_t tk = 0; tk < n_tokens; ++tk) {
          quantize_act_row(x.data() + tk * n_in, n_in, q.data(), d.data(), nullptr);
          for (int64_t i = 0; i < n_in; ++i) xq[tk * n_in + i] = d[i / 32] * static_cast<float>(q[i]);
        }
        std::vector<float> y(static_cast<size_t>(n_tokens * n_out)), want(y.size());
        matmul(w, x.data(), n_tokens, y.data());
        ref::matmul(t, bytes.data(), n_in, n_out, xq.data(), n_tokens, want.data());
        test::expect_near_all(y.data(), want.data(), y.size(), 4e-6f * static_cast<float>(n_in),
                              1e-5f, std::string(ggml_type_name(t)) + " n_in " +
                                         std::to_string(n_in) + " tokens " + std::to_string(n_tokens));
        // A token alone gives the same bits as in a batch of the per-row kernels; the panel
        // kernel of long batches (ops/int8_panel.h) sums in another order: float rounding apart.
        std::vector<float> one(static_cast<size_t>(n_out));
        matmul(w, x.data() + (n_tokens - 1) * n_in, 1, one.data());
        const float* in_batch = y.data() + (n_tokens - 1) * n_out;
        if ((n_tokens < kPanelMinTokens || !panel_kernel_available()) &&
            int8_decode_matches_batch(t)) {
          for (int64_t o = 0; o < n_out; ++o)
            ASSERT_EQ(one[o], in_batch[o]) << ggml_type_name(t) << " row " << o;
        } else {
          test::expect_near_all(one.data(), in_batch, one.size(), 4e-6f * static_cast<float>(n_in),
                                1e-5f, std::string(ggml_type_name(t)) + " alone vs batch");
        }
      }
    }
  }
}

// Against the unquantized activations the error is bounded by half an activation step per value:
// |y - y_exact| <= sum_b (d_b / 2) * sum_{i in b} |w_i| (+ float rounding).
TEST(Int8Matmul, ActivationQuantizationErrorWithinBound) {
  const int64_t n_in = 2048, n_out = 64;
  const GgmlType t = GgmlType::Q4_0;
  const auto v = test::random_floats(static_cast<size_t>(n_out * n_in), 21);
  const auto bytes = quantized(t, v, n_in);
  const WeightMatrix w{t, bytes.data(), n_in, n_out, ggml_row_size(t, n_in)};
  auto x = test::random_floats(static_cast<size_t>(n_in), 23);
  for (int64_t i = 0; i < n_in; i += 97) x[static_cast<size_t>(i)] *= 20.0f;  // outliers
  std::vector<float> y(n_out), want(n_out), wrow(n_in);
  matmul(w, x.data(), 1, y.data());
  ref::matmul(t, bytes.data(), n_in, n_out, x.data(), 1, want.data());
  for (int64_t o = 0; o < n_out; ++o) {
    dequantize_row(t, bytes.data() + o * w.row_bytes, wrow.data(), n_in);
    double bound = 0.0;
    for (int64_t b = 0; b < n_in / 32; ++b) {
      float amax = 0.0f;
      double wsum = 0.0;
      for (int j = 0; j < 32; ++j) {
        amax = std::max(amax, std::fabs(x[32 * b + j]));
        wsum += std::fabs(wrow[32 * b + j]);
      }
      bound += amax / 127.0 / 2.0 * wsum;
    }
    EXPECT_LE(std::fabs(y[o] - want[o]), bound * 1.0001 + 1e-4) << "row " << o;
  }
}

}  // namespace
}  // namespace nibble

namespace nibble {
namespace {

// Decoding reads Q4_0 / Q8_0 / Q4_K / Q6_K blocks directly on AVX-512 VNNI: the same bits as the
// per-row kernels on unpacked rows (a batch of 3 tokens runs those), also with an odd number of
// blocks. (On AVX2 the block-sum kernels run both: BlockSumMatmulEqualsScalarOracle checks them.)
TEST(Int8Matmul, DirectDecodeEqualsUnpackedRows) {
  for (GgmlType t : {GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::Q6_K, GgmlType::Q4_K}) {
    for (int64_t n_in : {32, 224, 1536, 2304}) {
      if (n_in % 256 != 0 && (t == GgmlType::Q6_K || t == GgmlType::Q4_K)) continue;
      const int64_t n_out = 13;
      const auto v = test::random_floats(static_cast<size_t>(n_out * n_in), 61);
      const auto bytes = quantized(t, v, n_in);
      const WeightMatrix w{t, bytes.data(), n_in, n_out, ggml_row_size(t, n_in)};
      const auto x = test::random_floats(static_cast<size_t>(3 * n_in), 62);
      std::vector<float> batch(static_cast<size_t>(3 * n_out)), one(static_cast<size_t>(n_out));
      matmul(w, x.data(), 3, batch.data());
      for (int64_t tk = 0; tk < 3; ++tk) {
        matmul(w, x.data() + tk * n_in, 1, one.data());
        if (int8_decode_matches_batch(t)) {
          for (int64_t o = 0; o < n_out; ++o)
            ASSERT_EQ(one[o], batch[tk * n_out + o]) << ggml_type_name(t) << " n_in " << n_in;
        } else {
          test::expect_near_all(one.data(), batch.data() + tk * n_out, one.size(),
                                4e-6f * static_cast<float>(n_in), 1e-5f,
                                std::string(ggml_type_name(t)) + " decode vs batch");
        }
      }
    }
  }
}

// Each ISA's direct decoding kernels (reading the stored blocks) against that ISA's kernel on the
// unpacked rows, bit for bit, called explicitly so that every kernel this CPU can run is covered
// whichever one matmul picks.
TEST(Int8Matmul, DirectKernelsOfEveryIsaEqualUnpackedRows) {
  int covered = 0;
  for (const char* isa : {"avx512-vnni"}) {  // AVX2: block sums (tests below)
    for (GgmlType t : {GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q6_K}) {
      for (int64_t n_in : {256, 1536, 2304}) {
        const int64_t n_out = 6;
        auto v = test::random_floats(static_cast<size_t>(n_out * n_in), 81, 1.5f);
        for (size_t i = 0; i < v.size(); i += 3) v[i] += 0.7f;  // non-zero minimums for Q4_K
        const auto bytes = quantized(t, v, n_in);
        const uint64_t rb = ggml_row_size(t, static_cast<uint64_t>(n_in));
        const auto x = test::random_floats(static_cast<size_t>(n_in), 82, 2.0f);
        Int8Acts acts;
        quantize_acts(x.data(), 1, n_in, int8_rows_have_min(t), acts);
        add_decode_terms(acts);
        const uint8_t* rows[4];
        std::vector<int8_t> q(static_cast<size_t>(4 * n_in));
        std::vector<float> sc(static_cast<size_t>(n_in)), off(static_cast<size_t>(n_in / 4));
        for (int64_t r0 = 0; r0 < n_out; r0 += 4) {
          const int m = static_cast<int>(std::min<int64_t>(4, n_out - r0));
          Int8Row unpacked[4];
          for (int i = 0; i < m; ++i) {
            rows[i] = bytes.data() + (r0 + i) * rb;
            unpack_int8_row(t, rows[i], n_in, q.data() + i * n_in, sc.data() + i * (n_in / 4),
                            int8_rows_have_min(t) ? off.data() + i * (n_in / 16) : nullptr);
            unpacked[i] = {q.data() + i * n_in, sc.data() + i * (n_in / 4),
                           int8_rows_have_min(t) ? off.data() + i * (n_in / 16) : nullptr};
          }
          float direct[4], want[4];
          if (!int8_dot_direct_with(isa, t, rows, m, acts, 0, direct)) continue;
          ASSERT_TRUE(int8_dot_with(isa, unpacked, m, acts, 0, 1, want, 1));
          ++covered;
          for (int i = 0; i < m; ++i)
            ASSERT_EQ(direct[i], want[i]) << isa << " " << ggml_type_name(t) << " n_in " << n_in
                                          << " row " << r0 + i;
        }
      }
    }
  }
  if (covered == 0) GTEST_SKIP() << "this CPU has no AVX-512 direct decoding kernels";
}

// Q4_0 decoding with per-block integer sums (ops/q4_0_decode_avx512.cpp) against a scalar
// version of the arithmetic its header states, bit for bit: chunks of 16 blocks with lane
// 4k + m holding block 16c + 4m + k (a partial last chunk padded with zeros), the fixed
// 16-lane reduction, then the blocks past the last group of 4 in order.
float q4_0_block_sums_oracle(const uint8_t* row, const int8_t* aq, const float* ad, int64_t n) {
  const int64_t nb = n / 32, n_groups = nb / 4, n_chunks = (n_groups + 3) / 4;
  auto isum = [&](int64_t b) {
    const uint8_t* blk = row + 18 * b;
    int32_t s = 0;
    for (int i = 0; i < 16; ++i) {
      s += ((blk[2 + i] & 0x0F) - 8) * int32_t{aq[32 * b + i]};
      s += ((blk[2 + i] >> 4) - 8) * int32_t{aq[32 * b + 16 + i]};
    }
    return s;
  };
  auto dw = [&](int64_t b) {
    uint16_t h;
    std::memcpy(&h, row + 18 * b, 2);
    return f16_to_f32(h);
  };
  float acc[16] = {};
  for (int64_t c = 0; c < n_chunks; ++c) {
    for (int k = 0; k < 4; ++k) {
      for (int m = 0; m < 4; ++m) {
        const int64_t g = 4 * c + m, b = 16 * c + 4 * m + k;
        const bool real = g < n_groups;
        const float i = real ? static_cast<float>(isum(b)) : 0.0f;
        const float p = real ? dw(b) * ad[b] : 0.0f;
        acc[4 * k + m] = std::fmaf(i, p, acc[4 * k + m]);
      }
    }
  }
  float s[8];
  for (int j = 0; j < 8; ++j) s[j] = acc[j] + acc[8 + j];
  float r = ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
  for (int64_t b = 4 * n_groups; b < nb; ++b)
    r = std::fmaf(static_cast<float>(isum(b)), dw(b) * ad[b], r);
  return r;
}

TEST(Int8Matmul, Q4_0BlockSumDecodingEqualsScalarOracle) {
  if (int8_decode_matches_batch(GgmlType::Q4_0)) {
    GTEST_SKIP() << "this CPU decodes Q4_0 with the lane-scaled kernel (no AVX-512 VBMI)";
  }
  // 32..224: only the scalar tail or one partial chunk; 1536: 3 whole chunks; 2176: 4 chunks
  // and a partial one (68 blocks); 2208: a partial chunk and a 1-block tail (69 blocks).
  for (int64_t n_in : {32, 96, 128, 224, 1536, 2176, 2208}) {
    const int64_t n_out = 9;
    const auto v = test::random_floats(static_cast<size_t>(n_out * n_in), 71, 1.5f);
    const auto bytes = quantized(GgmlType::Q4_0, v, n_in);
    const uint64_t rb = ggml_row_size(GgmlType::Q4_0, static_cast<uint64_t>(n_in));
    const WeightMatrix w{GgmlType::Q4_0, bytes.data(), n_in, n_out, rb};
    const auto x = test::random_floats(static_cast<size_t>(n_in), 72, 3.0f);
    std::vector<int8_t> q(static_cast<size_t>(n_in));
    std::vector<float> d(static_cast<size_t>(n_in / 32));
    quantize_act_row(x.data(), n_in, q.data(), d.data(), nullptr);
    std::vector<float> y(static_cast<size_t>(n_out));
    matmul(w, x.data(), 1, y.data());
    for (int64_t o = 0; o < n_out; ++o) {
      const float want = q4_0_block_sums_oracle(bytes.data() + o * rb, q.data(), d.data(), n_in);
      ASSERT_EQ(y[o], want) << "n_in " << n_in << " row " << o;
    }
  }
}

}  // namespace
}  // namespace nibble

namespace nibble {
namespace {

// The block-sum kernels of AVX2 (ops/block_sums_avx2.cpp) against a scalar version of the
// arithmetic their header states, bit for bit: groups of 8 blocks (Q4_K: a super-block's
// sub-blocks) with block 8g + k in lane k (Q8_0, Q4_K) or {0,4,1,5,2,6,3,7}[k] (Q4_0), the fixed
// 8-lane reduction, then the blocks past the last group in order (Q4_0, Q8_0) or the offset term
// (Q4_K). aq, ad, s16: one token's quantized activations, their scales and sums per 16.
constexpr GgmlType kBlockSumTypes[] = {GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::Q4_K,
                                       GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::Q2_K,
                                       GgmlType::Q3_K, GgmlType::IQ4_XS};

float block_sums_oracle(GgmlType t, const uint8_t* row, const int8_t* aq, const float* ad,
                        const float* s16, int64_t n) {
  static constexpr int kQ4Lane[8] = {0, 4, 1, 5, 2, 6, 3, 7};
  const int64_t nb = n / 32;
  auto f16 = [](const uint8_t* p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return f16_to_f32(h);
  };
  // Block b's integer sum, its weight scale and its lane.
  auto isum = [&](int64_t b) {
    int32_t s = 0;
    if (t == GgmlType::Q4_0) {
      const uint8_t* blk = row + 18 * b;
      for (int i = 0; i < 16; ++i) {
        s += ((blk[2 + i] & 0x0F) - 8) * int32_t{aq[32 * b + i]};
        s += ((blk[2 + i] >> 4) - 8) * int32_t{aq[32 * b + 16 + i]};
      }
    } else if (t == GgmlType::Q8_0) {
      const uint8_t* blk = row + 34 * b;
      for (int i = 0; i < 32; ++i) s += int32_t{static_cast<int8_t>(blk[2 + i])} * aq[32 * b + i];
    } else if (t == GgmlType::Q6_K) {  // scale * (q - 32) * a, q from the reference layout
      const uint8_t* sb = row + 210 * (b / 8);
      for (int i = 0; i < 32; ++i) {
        const int v = static_cast<int>(32 * (b % 8) + i);  // value index in the super-block
        const int h = v / 128, l = v % 32, quarter = (v % 128) / 32;
        const uint8_t ql = sb[64 * h + l + (quarter % 2) * 32];
        const int lo = quarter < 2 ? ql & 0x0F : ql >> 4;
        const int hi = (sb[128 + 32 * h + l] >> (2 * quarter)) & 3;
        const int sc = static_cast<int8_t>(sb[192 + v / 16]);
        s += sc * ((lo | (hi << 4)) - 32) * int32_t{aq[32 * b + i]};
      }
    } else if (t == GgmlType::Q4_K) {  // sub-block j = b % 8 of super-block b / 8, low or high nibbles
      const uint8_t* qs = row + 144 * (b / 8) + 16 + 32 * ((b % 8) / 2);
      const int shift = (b % 2) * 4;
      for (int i = 0; i < 32; ++i) s += ((qs[i] >> shift) & 0x0F) * int32_t{aq[32 * b + i]};
    } else if (t == GgmlType::Q5_K) {  // as Q4_K (qs at 48) plus bit j of qh[i] (qh at 16) as the fifth bit
      const uint8_t* sb = row + 176 * (b / 8);
      const int j = static_cast<int>(b % 8);
      for (int i = 0; i < 32; ++i) {
        const int q = ((sb[48 + 32 * (j / 2) + i] >> ((j % 2) * 4)) & 0x0F) | (((sb[16 + i] >> j) & 1) << 4);
        s += q * int32_t{aq[32 * b + i]};
      }
    } else if (t == GgmlType::Q2_K || t == GgmlType::Q3_K) {
      // Value v of the super-block: 2 bits at shift 2 * ((v % 128) / 32) of qs[32 * (v / 128) +
      // v % 32]; Q2_K: times scale (sc & 15) of its 16 (the minimum is the offset below); Q3_K:
      // minus 4 unless bit v / 32 of hmask[v % 32] is set, times (6-bit scale - 32).
      const bool q3 = t == GgmlType::Q3_K;
      const uint8_t* sb = row + (q3 ? 110 : 84) * (b / 8);
      for (int i = 0; i < 32; ++i) {
        const int v = static_cast<int>(32 * (b % 8) + i);
        int q = (sb[(q3 ? 32 : 16) + 32 * (v / 128) + v % 32] >> (2 * ((v % 128) / 32))) & 3;
        int sc;
        if (q3) {
          if (((sb[v % 32] >> (v / 32)) & 1) == 0) q -= 4;
          const int j = v / 16;
          const int low = j < 8 ? (sb[96 + j] & 0x0F) : (sb[96 + j - 8] >> 4);
          sc = (low | (((sb[96 + 8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
        } else {
          sc = sb[v / 16] & 0x0F;
        }
        s += sc * q * int32_t{aq[32 * b + i]};
      }
    } else {  // IQ4_XS: sub-block b % 8's 16 bytes at 8 + 16 * (b % 8), low nibbles then high
      static constexpr int kBook[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                        1,    13,   25,  38,  53,  69,  89,  113};
      const uint8_t* qs = row + 136 * (b / 8) + 8 + 16 * (b % 8);
      for (int i = 0; i < 16; ++i) {
        s += kBook[qs[i] & 0x0F] * int32_t{aq[32 * b + i]};
        s += kBook[qs[i] >> 4] * int32_t{aq[32 * b + 16 + i]};
      }
    }
    return s;
  };
  // Q2_K's minimums: sum over the block's two 16s of (sc >> 4) * sum(a), an integer.
  auto q2_min_isum = [&](int64_t b) {
    const uint8_t* sb = row + 84 * (b / 8);
    int32_t m = 0;
    for (int half = 0; half < 2; ++half) {
      const int j = static_cast<int>(2 * (b % 8) + half);
      int32_t sa = 0;
      for (int i = 0; i < 16; ++i) sa += aq[32 * b + 16 * half + i];
      m += (sb[j] >> 4) * sa;
    }
    return m;
  };
  // Q4_K's 6-bit scale (0) or minimum (1) of sub-block j (the reference get_scale_min_k4).
  auto k4 = [](const uint8_t* sc, int j, int which) {
    if (j < 4) return which == 0 ? sc[j] & 63 : sc[j + 4] & 63;
    return which == 0 ? (sc[j + 4] & 0x0F) | ((sc[j - 4] >> 6) << 4)
                      : (sc[j + 4] >> 4) | ((sc[j] >> 6) << 4);
  };
  auto wscale = [&](int64_t b) {
    if (t == GgmlType::Q4_0) return f16(row + 18 * b);
    if (t == GgmlType::Q8_0) return f16(row + 34 * b);
    if (t == GgmlType::Q6_K) return f16(row + 210 * (b / 8) + 208);
    if (t == GgmlType::Q2_K) return f16(row + 84 * (b / 8) + 80);
    if (t == GgmlType::Q3_K) return f16(row + 110 * (b / 8) + 108);
    if (t == GgmlType::IQ4_XS) {
      const uint8_t* sb = row + 136 * (b / 8);
      const int ib = static_cast<int>(b % 8);
      const int ls = ((sb[4 + ib / 2] >> (4 * (ib % 2))) & 0x0F) | (((sb[2 + ib / 4] >> (2 * (ib % 4))) & 3) << 4);
      return f16(sb) * static_cast<float>(ls - 32);
    }
    const uint8_t* sb = row + (t == GgmlType::Q5_K ? 176 : 144) * (b / 8);
    return f16(sb) * static_cast<float>(k4(sb + 4, static_cast<int>(b % 8), 0));
  };
  const int64_t n_groups = nb / 8;
  float acc[8] = {};
  for (int64_t g = 0; g < n_groups; ++g) {
    for (int k = 0; k < 8; ++k) {
      const int64_t b = 8 * g + k;
      const int p = t == GgmlType::Q4_0 ? kQ4Lane[k] : k;
      acc[p] = std::fmaf(static_cast<float>(isum(b)), wscale(b) * ad[b], acc[p]);
      if (t == GgmlType::Q2_K) {
        acc[p] = std::fmaf(static_cast<float>(q2_min_isum(b)), -f16(row + 84 * g + 82) * ad[b], acc[p]);
      }
    }
    if (t == GgmlType::Q4_K || t == GgmlType::Q5_K) {  // the super-block's offsets, same lanes
      const uint8_t* blk = row + (t == GgmlType::Q5_K ? 176 : 144) * g;
      for (int half = 0; half < 2; ++half) {
        for (int l = 0; l < 8; ++l) {
          const float mn = -(f16(blk + 2) * static_cast<float>(k4(blk + 4, 4 * half + l / 2, 1)));
          acc[l] = std::fmaf(mn, s16[16 * g + 8 * half + l], acc[l]);
        }
      }
    }
  }
  float s[8];
  for (int j = 0; j < 8; ++j) s[j] = acc[j] + 0.0f;
  float r = ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
  for (int64_t b = 8 * n_groups; b < nb; ++b)
    r = std::fmaf(static_cast<float>(isum(b)), wscale(b) * ad[b], r);
  return r;
}

// The kernels called directly (whatever ISA matmul picks): 1..16 rows, 1..15 tokens (the 8-token
// tiles, then 4, then the 1..3 left), rows with no whole group, whole groups only, and a tail.
TEST(Int8Matmul, BlockSumKernelsEqualScalarOracle) {
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma") || !cpu_has_f16c())
    GTEST_SKIP() << "no AVX2 + FMA + F16C";
  for (GgmlType t : kBlockSumTypes) {
    for (int64_t n_in : {32, 224, 256, 1536, 2336}) {
      if (traits(t).block_size == 256 && n_in % 256 != 0) continue;
      const int n_out = 16;
      auto v = test::random_floats(static_cast<size_t>(n_out * n_in), 91, 1.5f);
      for (size_t i = 0; i < v.size(); i += 3) v[i] += 0.7f;  // non-zero minimums for Q4_K
      const auto bytes = quantized(t, v, n_in);
      const uint64_t rb = ggml_row_size(t, static_cast<uint64_t>(n_in));
      const auto x = test::random_floats(static_cast<size_t>(15 * n_in), 92, 3.0f);
      Int8Acts acts;
      quantize_acts(x.data(), 15, n_in, int8_rows_have_min(t), acts);
      if (t == GgmlType::Q4_0) add_q4_0_pair_terms(acts);
      add_isum16(acts);
      const uint8_t* rows[16];
      for (int r = 0; r < n_out; ++r) rows[r] = bytes.data() + r * rb;
      for (int nr : {1, 3, 16}) {
        for (int nt : {1, 2, 3, 4, 5, 8, 9, 15}) {
          std::vector<float> got(static_cast<size_t>(nt * n_out), -1.0f);
          ASSERT_TRUE(int8_block_sums_dot(t, rows, nr, acts, 0, nt, got.data(), n_out))
              << ggml_type_name(t) << " n_in " << n_in;
          for (int tk = 0; tk < nt; ++tk) {
            for (int r = 0; r < nr; ++r) {
              const float want = block_sums_oracle(t, rows[r], acts.q_of(tk), acts.d_of(tk),
                                                   int8_rows_have_min(t) ? acts.sum16_of(tk) : nullptr,
                                                   n_in);
              ASSERT_EQ(got[static_cast<size_t>(tk * n_out + r)], want)
                  << ggml_type_name(t) << " n_in " << n_in << " rows " << nr << " tokens " << nt
                  << " t " << tk << " r " << r;
            }
          }
        }
      }
    }
  }
}

// Q2_K, Q3_K and Q6_K need the activations' isum16: without it the kernels decline and write
// nothing (matmul then unpacks the rows).
TEST(Int8Matmul, BlockSumKernelsDeclineWithoutTheirTerms) {
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma") || !cpu_has_f16c())
    GTEST_SKIP() << "no AVX2 + FMA + F16C";
  for (GgmlType t : {GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q6_K}) {
    const int64_t n_in = 512;
    const auto bytes = quantized(t, test::random_floats(static_cast<size_t>(2 * n_in), 5), n_in);
    const auto x = test::random_floats(static_cast<size_t>(n_in), 6);
    Int8Acts acts;
    quantize_acts(x.data(), 1, n_in, int8_rows_have_min(t), acts);
    const uint8_t* rows[2] = {bytes.data(), bytes.data() + ggml_row_size(t, n_in)};
    float out[2] = {-7.0f, -7.0f};
    EXPECT_FALSE(int8_block_sums_dot(t, rows, 2, acts, 0, 1, out, 1)) << ggml_type_name(t);
    EXPECT_FALSE(int8_dot_direct(t, rows, 2, acts, 0, out) && t != GgmlType::Q6_K)
        << ggml_type_name(t);  // (AVX-512's Q6_K decoder needs other terms)
    if (t != GgmlType::Q6_K) {
      EXPECT_EQ(out[0], -7.0f) << ggml_type_name(t);
      EXPECT_EQ(out[1], -7.0f) << ggml_type_name(t);
    }
  }
}

// matmul of `n_tokens` random tokens through an n_out x n_in matrix of type t: every result has
// block_sums_oracle's bits.
void expect_matmul_equals_block_sum_oracle(GgmlType t, int64_t n_in, int64_t n_out,
                                           int64_t n_tokens, uint32_t seed) {
  auto v = test::random_floats(static_cast<size_t>(n_out * n_in), seed, 1.5f);
  for (size_t i = 0; i < v.size(); i += 3) v[i] += 0.7f;  // non-zero minimums for the K types
  const auto bytes = quantized(t, v, n_in);
  const uint64_t rb = ggml_row_size(t, static_cast<uint64_t>(n_in));
  const WeightMatrix w{t, bytes.data(), n_in, n_out, rb};
  const auto x = test::random_floats(static_cast<size_t>(n_tokens * n_in), seed + 1, 3.0f);
  std::vector<float> y(static_cast<size_t>(n_tokens * n_out));
  matmul(w, x.data(), n_tokens, y.data());
  std::vector<int8_t> q(static_cast<size_t>(n_in));
  std::vector<float> d(static_cast<size_t>(n_in / 32)), s16(static_cast<size_t>(n_in / 16));
  for (int64_t tk = 0; tk < n_tokens; ++tk) {
    quantize_act_row(x.data() + tk * n_in, n_in, q.data(), d.data(), s16.data());
    for (int64_t o = 0; o < n_out; ++o) {
      ASSERT_EQ(y[static_cast<size_t>(tk * n_out + o)],
                block_sums_oracle(t, bytes.data() + o * rb, q.data(), d.data(), s16.data(), n_in))
          << ggml_type_name(t) << " n_in " << n_in << " tokens " << n_tokens << " t " << tk
          << " row " << o;
    }
  }
}

// Where matmul runs these types on those kernels (AVX2 CPUs, or NIBBLE_ISA=avx2: ctest's
// ops.isa_avx2 run), decoding and batches give the oracle's bits.
TEST(Int8Matmul, BlockSumMatmulEqualsScalarOracle) {
  int covered = 0;
  for (GgmlType t : kBlockSumTypes) {
    if (!int8_block_sums(t)) continue;
    for (int64_t n_in : {96, 1536, 2336}) {
      if (traits(t).block_size == 256 && n_in % 256 != 0) continue;
      for (int64_t n_tokens : {1, 7, 40}) {
        expect_matmul_equals_block_sum_oracle(t, n_in, 37, n_tokens, 93);
        if (HasFatalFailure()) return;
        ++covered;
      }
    }
  }
  if (covered == 0) GTEST_SKIP() << "matmul runs these types on " << int8_dot_isa() << " kernels";
}

// On AVX-512 one token of Q2_K, Q3_K and IQ4_XS decodes on their AVX-512 decoders
// (ops/low_bit_decode_avx512.cpp) and Q5_K on the AVX2 block sums: the oracle's bits either way;
// a batch runs the AVX-512 kernels.
TEST(Int8Matmul, AVX512DecodesOnBlockSumsWhereItHasNoDecoder) {
  if (std::strcmp(int8_dot_isa(), "avx512-vnni") != 0 || int8_decode_matches_batch(GgmlType::Q5_K))
    GTEST_SKIP() << "matmul runs " << int8_dot_isa() << " kernels";
  for (GgmlType t : {GgmlType::Q5_K, GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::IQ4_XS}) {
    EXPECT_FALSE(int8_decode_matches_batch(t)) << ggml_type_name(t);
    for (int64_t n_in : {256, 1536, 2304}) {
      expect_matmul_equals_block_sum_oracle(t, n_in, 21, 1, 95);
      if (HasFatalFailure()) return;
    }
  }
}

}  // namespace
}  // namespace nibble
