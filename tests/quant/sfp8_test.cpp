// SFP8 (nibble extension, spec §7.1): the value codec against gemma.cpp's known values
// (compression/sfp_test.cc: decode formula, every code round-trips, golden inputs, the all-bf16
// statistics), the type-table row, and the GGUF reader accepting id 1000 but no other unknown id.
#include "quant/sfp8.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <set>
#include <vector>

#include "gguf/gguf_file.h"
#include "gguf/gguf_writer.h"
#include "quant/quant.h"
#include "util/fp16.h"

namespace nibble {
namespace {

// gemma.cpp's F32FromSFP8: assemble the binary32 from the fields.
float decode_by_formula(uint32_t sfp) {
  const uint32_t sign32 = (sfp & 0x80u) << 24;
  sfp &= 0x7Fu;
  if (sfp == 0) return 0.0f;
  const bool large = sfp >= 64;
  const uint32_t m_bits = large ? 3 : 2;
  const uint32_t m = sfp & ((1u << m_bits) - 1u);
  const uint32_t e = sfp >> m_bits;
  const uint32_t bias = large ? 15 : 23;
  return bits_f32(sign32 | ((127 + e - bias) << 23) | (m << (23 - m_bits)));
}

TEST(Sfp8, DecodeMatchesTheFormulaAndIsMonotonic) {
  std::set<float> unique;
  float prev = -1.0f;
  for (uint32_t c = 0; c < 256; ++c) {
    if (c == 0x80) continue;  // -0 is reserved
    const float v = sfp8_to_f32(static_cast<uint8_t>(c));
    EXPECT_EQ(f32_bits(v), f32_bits(decode_by_formula(c))) << c;
    EXPECT_EQ(f32_bits(v) & 0xFFFFu, 0u) << "not a bf16: " << c;
    unique.insert(v);
    if (c < 128) {
      EXPECT_GT(v, prev) << c;  // strictly increasing with the code
      prev = v;
    }
  }
  EXPECT_EQ(unique.size(), 255u);
  EXPECT_EQ(sfp8_to_f32(0x01), 1.25f * std::ldexp(1.0f, -23));
  EXPECT_EQ(sfp8_to_f32(0x3F), 1.75f * std::ldexp(1.0f, -8));
  EXPECT_EQ(sfp8_to_f32(0x40), std::ldexp(1.0f, -7));
  EXPECT_EQ(sfp8_to_f32(0x7F), kSfp8Max);
  EXPECT_EQ(sfp8_to_f32(0xFF), -kSfp8Max);
  EXPECT_EQ(sfp8_to_bf16(0x00), 0x0000);
}

TEST(Sfp8, EveryCodeRoundTrips) {
  for (uint32_t c = 0; c < 256; ++c) {
    if (c == 0x80) continue;
    EXPECT_EQ(sfp8_from_bf16(sfp8_to_bf16(static_cast<uint8_t>(c))), c) << c;
    EXPECT_EQ(sfp8_from_f32(sfp8_to_f32(static_cast<uint8_t>(c))), c) << c;
  }
}

TEST(Sfp8, GoldenValuesFromGemmaCpp) {
  struct Golden {
    float in, out;
  };
  const Golden golden[] = {
      // all mantissa bits set, all discarded zero (no rounding)
      {0.46875f, 0.46875f},
      {0.9375f, 0.9375f},
      // all mantissa bits set, one below it set (round up to a power of two)
      {0.484375f, 0.5f},
      {0.96875f, 1.0f},
      // lowest mantissa bit set, all discarded zero
      {0.28125f, 0.28125f},
      {0.5625f, 0.5625f},
      // lowest mantissa bit set, one below it set (round up to even)
      {0.296875f, 0.3125f},
      {0.59375f, 0.625f},
      // all mantissa zero, all discarded set (round up)
      {0.279296875f, 0.28125f},
      {0.55859375f, 0.5625f},
      // all mantissa zero, one below it set (round DOWN to a power of two)
      {0.265625f, 0.25f},
      {0.53125f, 0.5f},
      // at the switch point: 1.max * 2^-8 rounds up to 1.0 * 2^-7
      {0.0068359375f, 0.0068359375f},
      {0.00732421875f, 0.0078125f},
      {0.007568359375f, 0.0078125f},
      {1.0f, 1.0f},
      {1.0625f, 1.0f},
      // smallest exponents, no subnormals
      {2.384185791015625E-7f, 2.384185791015625E-7f},
      {1.49011611938E-07f, 1.49011611938E-07f},
      {1.19209289551E-07f, 1.49011611938E-07f},  // 1.00p-23 -> 1.01p-23 (code 0 is zero)
      {5.96046447754E-08f, 0.0f},
      {8.94069671631E-08f, 0.0f},
      {1.11758708954E-07f, 1.49011611938E-07f},  // 1.111p-24 -> 1.01p-23
      {0.013841f, 0.013671875f},                 // 1100_010 * 2^-7 rounds down to 110
  };
  for (float s : {1.0f, -1.0f}) {
    for (const auto& g : golden) {
      const float in = s * g.in, want = s * g.out;
      const uint8_t code = sfp8_from_f32(in);
      const float got = sfp8_to_f32(code);
      EXPECT_EQ(got, want) << "in " << in << " code " << int(code);
      if (want == 0.0f) {
        EXPECT_EQ(code, 0) << "sign of zero dropped: " << in;
      }
    }
  }
}

TEST(Sfp8, AllBf16InputsStatistics) {
  // gemma.cpp TestEncDec: every bf16 with the low 3 mantissa bits clear, |x| <= 1.875, both signs.
  int num = 0, exact = 0, to_zero = 0, sign_flip = 0;
  double max_err = 0.0;
  for (uint32_t i = 0; i < 0x8000u / 8; ++i) {
    const uint16_t bits = static_cast<uint16_t>(i * 8);
    const float f = bf16_to_f32(bits);
    if (!std::isfinite(f) || f > kSfp8Max) continue;
    for (float x : {f, -f}) {
      ++num;
      const float y = sfp8_to_f32(sfp8_from_bf16(static_cast<uint16_t>(f32_bits(x) >> 16)));
      if (y == x) ++exact;
      if (y == 0.0f && x != 0.0f) ++to_zero;
      if (y != 0.0f && std::signbit(y) != std::signbit(x)) ++sign_flip;
      max_err = std::max(max_err, static_cast<double>(std::fabs(y - x)));
    }
  }
  EXPECT_EQ(exact, 256);
  EXPECT_EQ(to_zero, 3322);
  EXPECT_EQ(sign_flip, 0);
  EXPECT_EQ(max_err, 0.0625);
  EXPECT_EQ(num, 4094);  // 2047 magnitudes (128 exponents x 16 mantissas, up to 1.875), both signs
}

TEST(Sfp8, ClampsAndSpecialInputs) {
  EXPECT_EQ(sfp8_from_f32(2.5f), 0x7F);
  EXPECT_EQ(sfp8_from_f32(-1e30f), 0xFF);
  EXPECT_EQ(sfp8_from_f32(INFINITY), 0x7F);
  EXPECT_EQ(sfp8_from_f32(NAN), 0x00);
  EXPECT_EQ(sfp8_from_f32(-0.0f), 0x00);  // never 0x80
  // f32 input is truncated, not rounded, to bf16 first: just below a bf16 midpoint upward.
  EXPECT_EQ(sfp8_from_f32(bits_f32(0x3F80FFFFu)), sfp8_from_bf16(0x3F80));
}

TEST(Sfp8, TypeTableRowAndRowCodecs) {
  EXPECT_EQ(static_cast<uint32_t>(GgmlType::SFP8), kNibbleSfp8TypeId);
  EXPECT_GE(kNibbleSfp8TypeId, 1000u);  // far from ggml's ids
  const GgmlTypeTraits* tr = ggml_type_traits(kNibbleSfp8TypeId);
  ASSERT_NE(tr, nullptr);
  EXPECT_STREQ(tr->name, "sfp8");
  EXPECT_EQ(tr->block_size, 1u);
  EXPECT_EQ(tr->type_size, 1u);
  EXPECT_EQ(ggml_type_from_name("SFP8"), GgmlType::SFP8);
  EXPECT_TRUE(is_nibble_extension(GgmlType::SFP8));
  EXPECT_FALSE(is_nibble_extension(GgmlType::Q4_0));
  EXPECT_EQ(ggml_type_traits(kNibbleSfp8TypeId + 1), nullptr);
  EXPECT_EQ(ggml_type_traits(999), nullptr);
  ASSERT_TRUE(can_quantize(GgmlType::SFP8));
  ASSERT_TRUE(can_dequantize(GgmlType::SFP8));
  EXPECT_EQ(imatrix_use(GgmlType::SFP8), ImatrixUse::kIgnored);
  std::vector<float> x(255);
  std::vector<uint8_t> codes;
  for (uint32_t c = 0; c < 256; ++c) {
    if (c != 0x80) codes.push_back(static_cast<uint8_t>(c));
  }
  for (size_t i = 0; i < codes.size(); ++i) x[i] = sfp8_to_f32(codes[i]);
  std::vector<uint8_t> q(255);
  EXPECT_EQ(quantize_rows(GgmlType::SFP8, x.data(), q.data(), 5, 51), 255u);
  EXPECT_EQ(q, codes);
  std::vector<float> y(255);
  dequantize_row(GgmlType::SFP8, q.data(), y.data(), 255);
  EXPECT_EQ(std::memcmp(x.data(), y.data(), 255 * 4), 0);
}

TEST(Sfp8, GgufReaderAcceptsTheExtensionIdOnly) {
  GgufWriter w;
  w.metadata().set("general.architecture", GgufValue::str("test"));
  const std::vector<uint8_t> data(64, 0x41);
  ASSERT_TRUE(w.add_tensor("a", GgmlType::SFP8, {8, 8}, data.data(), data.size()).ok());
  auto bytes = w.write_to_memory();
  ASSERT_TRUE(bytes.ok());
  auto f = GgufFile::parse(bytes.value().data(), bytes.value().size(), "sfp8.gguf");
  ASSERT_TRUE(f.ok()) << f.error().message;
  EXPECT_EQ(f.value()->tensors()[0].type, GgmlType::SFP8);
  EXPECT_EQ(f.value()->tensors()[0].n_bytes, 64u);
  // Patch the tensor's type id (the u32 after name and dims) to 1001: rejected.
  std::vector<uint8_t> b = bytes.value();
  const uint32_t id = kNibbleSfp8TypeId;
  size_t pos = std::string::npos;
  for (size_t i = 0; i + 4 <= b.size(); ++i) {
    if (std::memcmp(b.data() + i, &id, 4) == 0) {
      pos = i;
      break;
    }
  }
  ASSERT_NE(pos, std::string::npos);
  for (uint32_t bad : {1001u, 999u, 43u}) {
    std::memcpy(b.data() + pos, &bad, 4);
    auto g = GgufFile::parse(b.data(), b.size(), "bad.gguf");
    ASSERT_FALSE(g.ok()) << bad;
    EXPECT_NE(g.error().message.find("unknown or removed type id " + std::to_string(bad)),
              std::string::npos)
        << g.error().message;
  }
}

}  // namespace
}  // namespace nibble
