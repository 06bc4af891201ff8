// Reference row codecs: F32, F16, BF16 (exact conversions) and Q8_0, Q4_0 (spec §2.4, §2.8,
// §3.1; x86 unfused float semantics, hence -ffp-contract=off for the project).
#include "quant/quant.h"

#include <cmath>
#include <cstring>

#include "quant/blocks.h"
#include "util/check.h"
#include "util/fp16.h"

namespace nibble {

namespace {

void dequantize_q4_0(const uint8_t* src, float* dst, uint64_t n) {
  const auto* blocks = reinterpret_cast<const BlockQ4_0*>(src);
  for (uint64_t b = 0; b < n / kQK4_0; ++b) {
    BlockQ4_0 blk;
    std::memcpy(&blk, &blocks[b], sizeof(blk));
    const float d = f16_to_f32(blk.d);
    float* y = dst + b * kQK4_0;
    for (int j = 0; j < 16; ++j) {
      y[j] = static_cast<float>((blk.qs[j] & 0x0F) - 8) * d;
      y[j + 16] = static_cast<float>((blk.qs[j] >> 4) - 8) * d;
    }
  }
}

void dequantize_q8_0(const uint8_t* src, float* dst, uint64_t n) {
  const auto* blocks = reinterpret_cast<const BlockQ8_0*>(src);
  for (uint64_t b = 0; b < n / kQK8_0; ++b) {
    BlockQ8_0 blk;
    std::memcpy(&blk, &blocks[b], sizeof(blk));
    const float d = f16_to_f32(blk.d);
    for (int j = 0; j < 32; ++j) dst[b * kQK8_0 + j] = static_cast<float>(blk.qs[j]) * d;
  }
}

void quantize_q4_0(const float* x, uint8_t* dst, uint64_t n) {
  for (uint64_t b = 0; b < n / kQK4_0; ++b) {
    const float* xb = x + b * kQK4_0;
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < kQK4_0; ++j) {
      const float v = xb[j];
      if (amax < std::fabs(v)) {
        amax = std::fabs(v);
        max = v;
      }
    }
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    BlockQ4_0 blk;
    blk.d = f32_to_f16(d);
    for (int j = 0; j < 16; ++j) {
      const float x0 = xb[j] * id;
      const float x1 = xb[j + 16] * id;
      int q0 = static_cast<int8_t>(x0 + 8.5f);
      int q1 = static_cast<int8_t>(x1 + 8.5f);
      if (q0 > 15) q0 = 15;
      if (q1 > 15) q1 = 15;
      blk.qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
    std::memcpy(dst + b * sizeof(BlockQ4_0), &blk, sizeof(blk));
  }
}

void quantize_q8_0(const float* x, uint8_t* dst, uint64_t n) {
  for (uint64_t b = 0; b < n / kQK8_0; ++b) {
    const float* xb = x + b * kQK8_0;
    float amax = 0.0f;
    for (int j = 0; j < kQK8_0; ++j) amax = std::fmax(amax, std::fabs(xb[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    BlockQ8_0 blk;
    blk.d = f32_to_f16(d);
    for (int j = 0; j < kQK8_0; ++j) blk.qs[j] = static_cast<int8_t>(std::round(xb[j] * id));
    std::memcpy(dst + b * sizeof(BlockQ8_0), &blk, sizeof(blk));
  }
}

}  // namespace

bool can_dequantize(GgmlType type) {
  switch (type) {
    case GgmlType::F32: case GgmlType::F16: case GgmlType::BF16:
    case GgmlType::Q4_0: case GgmlType::Q8_0:
      return true;
    default:
      return false;
  }
}

bool can_quantize(GgmlType type) { return can_dequantize(type); }

void dequantize_row(GgmlType type, const uint8_t* src, float* dst, uint64_t n) {
  switch (type) {
    case GgmlType::F32:
      std::memcpy(dst, src, n * 4);
      return;
    case GgmlType::F16:
      for (uint64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = f16_to_f32(h);
      }
      return;
    case GgmlType::BF16:
      for (uint64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = bf16_to_f32(h);
      }
      return;
    case GgmlType::Q4_0: dequantize_q4_0(src, dst, n); return;
    case GgmlType::Q8_0: dequantize_q8_0(src, dst, n); return;
    default: NIBBLE_CHECK(false, "dequantize_row: unsupported type");
  }
}

void quantize_row(GgmlType type, const float* src, uint8_t* dst, uint64_t n) {
  switch (type) {
    case GgmlType::F32:
      std::memcpy(dst, src, n * 4);
      return;
    case GgmlType::F16:
      for (uint64_t i = 0; i < n; ++i) {
        uint16_t h = f32_to_f16(src[i]);
        std::memcpy(dst + 2 * i, &h, 2);
      }
      return;
    case GgmlType::BF16:
      for (uint64_t i = 0; i < n; ++i) {
        uint16_t h = f32_to_bf16(src[i]);
        std::memcpy(dst + 2 * i, &h, 2);
      }
      return;
    case GgmlType::Q4_0: quantize_q4_0(src, dst, n); return;
    case GgmlType::Q8_0: quantize_q8_0(src, dst, n); return;
    default: NIBBLE_CHECK(false, "quantize_row: unsupported type");
  }
}

}  // namespace nibble
