// dequantize_row_fast (F16C, the int8 form of the integer types, the vectorised legacy loops)
// gives the reference dequantizer's floats bit for bit, for every type it has a fast path for.
#include "ops/dequant_fast.h"

#include <gtest/gtest.h>

#include <cstring>

#include "ops_test_util.h"
#include "quant/quant.h"
#include "util/fp16.h"

namespace nibble {
namespace {

TEST(DequantFast, EqualsReferenceBitForBit) {
  for (GgmlType t : {GgmlType::F16, GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0,
                     GgmlType::Q5_1, GgmlType::Q8_0, GgmlType::Q2_K, GgmlType::Q3_K,
                     GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::IQ4_NL,
                     GgmlType::IQ4_XS}) {
    for (int64_t n : {256, 1024}) {
      auto v = test::random_floats(static_cast<size_t>(n), 40u + static_cast<uint32_t>(t), 3.0f);
      for (int64_t i = 0; i < n / 2; ++i) v[static_cast<size_t>(i)] += 2.0f;
      std::vector<uint8_t> bytes(ggml_row_size(t, static_cast<uint64_t>(n)));
      quantize_row(t, v.data(), bytes.data(), static_cast<uint64_t>(n));
      std::vector<float> want(static_cast<size_t>(n)), got(static_cast<size_t>(n));
      dequantize_row(t, bytes.data(), want.data(), static_cast<uint64_t>(n));
      dequantize_row_fast(t, bytes.data(), got.data(), n);
      ASSERT_EQ(0, std::memcmp(want.data(), got.data(), got.size() * sizeof(float)))
          << ggml_type_name(t) << " n " << n;
    }
  }
}

TEST(DequantFast, F16SpecialValues) {
  // Zeros, subnormals, the largest finite, infinities and NaN payloads, then a tail of 3.
  const uint16_t bits[] = {0x0000, 0x8000, 0x0001, 0x83FF, 0x7BFF, 0xFBFF, 0x7C00,
                           0xFC00, 0x7E01, 0x7C01, 0x3C00, 0xC000, 0x0400, 0x1234, 0xABCD,
                           0x5555, 0x0200, 0x8001, 0x7FFF};
  const int64_t n = sizeof(bits) / sizeof(bits[0]);
  std::vector<float> got(n);
  dequantize_row_fast(GgmlType::F16, reinterpret_cast<const uint8_t*>(bits), got.data(), n);
  for (int64_t i = 0; i < n; ++i) {
    const float want = f16_to_f32(bits[i]);
    uint32_t a, b;
    std::memcpy(&a, &want, 4);
    std::memcpy(&b, &got[i], 4);
    EXPECT_EQ(a, b) << "f16 bits 0x" << std::hex << bits[i];
  }
}

}  // namespace
}  // namespace nibble
