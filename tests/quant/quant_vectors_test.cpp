// Reference codecs vs the spec's Appendix B test vectors (hashes produced by ggml itself).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "quant/quant.h"
#include "test_util.h"
#include "util/fp16.h"

namespace nibble {
namespace {

// Appendix B input generator: exactly representable floats in [-1, 1).
std::vector<float> make_input(uint32_t seed, bool heavy) {
  std::vector<float> x(16 * 1024);
  uint32_t s = seed;
  for (auto& v : x) {
    s = s * 1664525u + 1013904223u;
    float u = static_cast<float>(static_cast<int32_t>(s >> 8) - 8388608) / 8388608.0f;
    v = heavy ? ((u * u) * u) * 4.0f : u;
  }
  return x;
}

std::string hash_of_type(GgmlType type, const std::vector<float>& x) {
  std::vector<uint8_t> out(ggml_row_size(type, 1024) * 16);
  for (int r = 0; r < 16; ++r) {
    quantize_row(type, x.data() + r * 1024, out.data() + r * ggml_row_size(type, 1024), 1024);
  }
  return test::sha256_hex(out.data(), out.size());
}

TEST(QuantVectors, InputsMatchSpec) {
  auto u = make_input(1, false), c = make_input(2, true);
  EXPECT_EQ(test::sha256_hex(u.data(), u.size() * 4),
            "d50266c631ba531c6d3a0d2640dfb0b17cb5bd3f02cec8cc0f80363799376e38");
  EXPECT_EQ(test::sha256_hex(c.data(), c.size() * 4),
            "8e67161d9ddc1a248a0ce58c7724c030676bdb03b8958417e55dde129b9445ae");
}

struct Vector {
  GgmlType type;
  const char* u_hash;
  const char* c_hash;
  const char* dequant_hash;  // of dequantized input U (nullptr: not given)
};

TEST(QuantVectors, BytesAndDequantMatchGgml) {
  const Vector kVectors[] = {
      {GgmlType::F16, "6f0fc59d2c9d64a00abebe66846976ace9f94d6a0bdcd419817cd3864360ee13",
       "61c2ab5b0ad85452cd2f326643d52121b11c04e8b58c11dbe59fdfcfafd7b64c", nullptr},
      {GgmlType::BF16, "71c0216050dd54decbc89a7aa8939f905efe236b5cf44135737f39c2de0fe331",
       "b28c44fce919ce98ba7573471baaa99bcfce4f963c730e26577a90c10fd3f5c9", nullptr},
      {GgmlType::Q4_0, "5848f40b39aaa46b1134639ab3131c02eb21061eec8ea857182502f2c735c3e2",
       "ea45dc3b0999ebb925d0898d1cdc11896d4440eb27ca4d1a697c52c17a3438d9",
       "4b7d3aef99909364db0734d8c63df3e20058d0f3ceeed5652f1a6178eff690e1"},
      {GgmlType::Q8_0, "d9e36b737665bbaedd12ef3fcf6c57d58c2540ec31c14213e3955b0564bfac70",
       "feb140c8bd441b9d8acc8ef2df55861024937d1b973f9a440fb4c735ab942b8f",
       "5c66d91f67001b46f112c164259c035ad5f6517bc726d0949d96b37055a20862"},
  };
  const auto u = make_input(1, false), c = make_input(2, true);
  for (const auto& v : kVectors) {
    SCOPED_TRACE(ggml_type_name(v.type));
    EXPECT_EQ(hash_of_type(v.type, u), v.u_hash);
    EXPECT_EQ(hash_of_type(v.type, c), v.c_hash);
    if (v.dequant_hash != nullptr) {
      const uint64_t rb = ggml_row_size(v.type, 1024);
      std::vector<uint8_t> q(rb * 16);
      std::vector<float> y(16 * 1024);
      for (int r = 0; r < 16; ++r) quantize_row(v.type, u.data() + r * 1024, q.data() + r * rb, 1024);
      for (int r = 0; r < 16; ++r) dequantize_row(v.type, q.data() + r * rb, y.data() + r * 1024, 1024);
      EXPECT_EQ(test::sha256_hex(y.data(), y.size() * 4), v.dequant_hash);
    }
  }
}

TEST(QuantVectors, FirstBlocksMatchSpec) {
  const auto u = make_input(1, false);
  auto hex = [](const uint8_t* p, size_t n) {
    static const char* k = "0123456789abcdef";
    std::string s;
    for (size_t i = 0; i < n; ++i) { s += k[p[i] >> 4]; s += k[p[i] & 15]; }
    return s;
  };
  uint8_t b[34];
  quantize_row(GgmlType::Q4_0, u.data(), b, 32);
  EXPECT_EQ(hex(b, 18), "bc2fe456b89b31161d5920ba94674acef43f");
  quantize_row(GgmlType::Q8_0, u.data(), b, 32);
  EXPECT_EQ(hex(b, 34), "cc1fbbde01368ade480f8125beec1859ba7e5fd33008b5988fd09f3616e0c24271ab");
}

TEST(Fp16, AllHalfValuesRoundTrip) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = f16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_EQ(f32_to_f16(f) & 0x7E00u, 0x7E00u);
      continue;
    }
    ASSERT_EQ(f32_to_f16(f), h) << "half bits " << h;
  }
}

TEST(Fp16, RoundsToNearestEven) {
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7BFF);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7C00);  // ties to even -> inf
  EXPECT_EQ(f32_to_f16(1.0f + 1.0f / 2048.0f), 0x3C00);  // halfway, even stays
  EXPECT_EQ(f32_to_f16(1.0f + 3.0f / 2048.0f), 0x3C02);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25)), 0x0000);  // halfway to smallest subnormal: even
  EXPECT_EQ(f32_to_f16(std::ldexp(1.5f, -25)), 0x0001);
  EXPECT_EQ(f32_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3F80);
  EXPECT_EQ(f32_to_bf16(1.0f + std::ldexp(3.0f, -8)), 0x3F82);
}

}  // namespace
}  // namespace nibble
