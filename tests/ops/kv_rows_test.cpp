// KV row codecs against the reference codecs of quant/quant.h, bit for bit: encoding (f16
// round-to-nearest-even, q8_0 / q4_0 reference quantizers) and the fast decoders (F16C / AVX2
// variants where the CPU has them), over random rows and special values (zeros, f16
// subnormals, values that overflow f16, all-equal and tiny blocks).
#include "ops/kv_rows.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "ops/kv_view.h"
#include "ops/reference/reference_ops.h"
#include "ops_test_util.h"
#include "quant/quant.h"
#include "util/fp16.h"

namespace nibble {
namespace {

std::vector<float> special_row() {
  std::vector<float> x = test::random_floats(256, 9, 3.0f);
  for (int i = 0; i < 32; ++i) x[i] = 0.0f;               // all-zero block
  for (int i = 32; i < 64; ++i) x[i] = 1e-6f * (i - 48);  // f16 subnormals, tiny block
  for (int i = 64; i < 96; ++i) x[i] = 0.75f;             // all-equal block
  x[100] = 70000.0f;                                      // overflows f16
  x[101] = -1e9f;
  x[102] = 6e-8f;                                                    // rounds to the smallest f16
  for (int i = 128; i < 160; ++i) x[i] = (i % 2 ? 1 : -1) * 1e-30f;  // below f16 range
  return x;
}

TEST(KvRows, EncodeMatchesReferenceQuantizer) {
  for (GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::Q8_0, GgmlType::Q4_0}) {
    for (const auto& x : {special_row(), test::random_floats(512, 4, 10.0f)}) {
      const int64_t n = static_cast<int64_t>(x.size());
      std::vector<uint8_t> got(kv_bytes(t, n)), want(ggml_row_size(t, static_cast<uint64_t>(n)));
      ASSERT_EQ(got.size(), want.size()) << ggml_type_name(t);
      kv_encode_row(t, x.data(), got.data(), n);
      // q4_0: the importance-weighted quantizer with unit importance.
      const std::vector<float> ones(x.size(), 1.0f);
      quantize_row(t, x.data(), want.data(), static_cast<uint64_t>(n),
                   t == GgmlType::Q4_0 ? ones.data() : nullptr);
      EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size()), 0) << ggml_type_name(t);
    }
  }
}

TEST(KvRows, F16EncodeIsRoundToNearestEvenForEveryValue) {
  // The F16C path against the scalar conversion: f32 bit patterns across the whole range (every
  // 1021st, odd step: mantissas vary), both signs, plus exact halfway cases. NaNs excluded.
  std::vector<float> x;
  for (uint64_t u = 0; u < 0x7F800001ull; u += 1021) {
    const uint32_t b = static_cast<uint32_t>(u);
    float f;
    std::memcpy(&f, &b, 4);
    x.push_back(f);
    x.push_back(-f);
  }
  for (uint32_t h = 0; h < 0x7C00; h += 7) {  // f16 value + half an f16 step: ties
    const uint32_t b = (h << 13) + 0x38000000u + 0x1000u;
    float f;
    std::memcpy(&f, &b, 4);
    x.push_back(f);
  }
  x.resize(x.size() / 8 * 8 + 5);  // a tail the vector loop leaves
  std::vector<uint8_t> got(2 * x.size());
  kv_encode_row(GgmlType::F16, x.data(), got.data(), static_cast<int64_t>(x.size()));
  for (size_t i = 0; i < x.size(); ++i) {
    uint16_t g;
    std::memcpy(&g, got.data() + 2 * i, 2);
    ASSERT_EQ(g, f32_to_f16(x[i])) << "x = " << x[i];
  }
}

TEST(KvRows, DecodeMatchesReferenceDequantizer) {
  for (GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::Q8_0, GgmlType::Q4_0}) {
    // Random bytes exercise every code (f16 NaNs and infinities included); scales of quantized
    // blocks come from the same random bytes.
    for (int64_t n : {int64_t{32}, int64_t{96}, int64_t{512}}) {
      std::vector<uint8_t> bytes(kv_bytes(t, n));
      const auto r = test::random_floats(bytes.size(), static_cast<uint32_t>(n), 1.0f);
      for (size_t i = 0; i < bytes.size(); ++i)
        bytes[i] = static_cast<uint8_t>((r[i] + 1.0f) * 127.9f);
      std::vector<float> got(static_cast<size_t>(n)), want(static_cast<size_t>(n));
      kv_decode_row(t, bytes.data(), got.data(), n);
      dequantize_row(t, bytes.data(), want.data(), static_cast<uint64_t>(n));
      EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0)
          << ggml_type_name(t) << " n=" << n;
    }
  }
  // Odd lengths for the f16 tail (not a multiple of 8).
  std::vector<uint8_t> h(2 * 13);
  for (size_t i = 0; i < h.size(); ++i) h[i] = static_cast<uint8_t>(i * 37 + 1);
  std::vector<float> got(13), want(13);
  kv_decode_row(GgmlType::F16, h.data(), got.data(), 13);
  dequantize_row(GgmlType::F16, h.data(), want.data(), 13);
  EXPECT_EQ(std::memcmp(got.data(), want.data(), sizeof(float) * 13), 0);
}

TEST(KvRows, RotationIsTheOrthonormalHadamardTransform) {
  for (int64_t d : {int64_t{32}, int64_t{64}, int64_t{96}, int64_t{256}, int64_t{1024}}) {
    const auto x = test::random_floats(static_cast<size_t>(2 * d), static_cast<uint32_t>(d), 3.0f);
    auto fast = x, slow = x;
    kv_rotate(fast.data(), 2, d);
    ref::hadamard(slow.data(), 2, d);
    test::expect_near_all(fast.data(), slow.data(), x.size(), 1e-5f, 1e-5f,
                          "rotation d=" + std::to_string(d));
    kv_rotate(fast.data(), 2, d);  // its own inverse
    test::expect_near_all(fast.data(), x.data(), x.size(), 1e-5f, 1e-5f,
                          "rotated twice d=" + std::to_string(d));
  }
  EXPECT_EQ(kv_rotation_block(64), 64);
  EXPECT_EQ(kv_rotation_block(96), 32);
  EXPECT_EQ(kv_rotation_block(512), 512);
  EXPECT_EQ(kv_rotation_block(1024), 512);
}

TEST(KvRows, ByteSizesAreGgmls) {
  for (GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::Q8_0, GgmlType::Q4_0}) {
    EXPECT_TRUE(kv_type_supported(t));
    EXPECT_EQ(kv_bytes(t, 256), ggml_row_size(t, 256)) << ggml_type_name(t);
  }
  EXPECT_FALSE(kv_type_supported(GgmlType::Q4_K));
  EXPECT_FALSE(kv_type_supported(GgmlType::BF16));
}

}  // namespace
}  // namespace nibble
