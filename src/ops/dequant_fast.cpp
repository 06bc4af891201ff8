// Vectorisable row dequantizers (bit-identical to quant/quant.cpp's reference codecs).
#include "ops/dequant_fast.h"

#include <cstring>

#include "quant/blocks.h"
#include "quant/quant.h"
#include "util/fp16.h"

namespace nibble {

namespace {

#define NIBBLE_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))

NIBBLE_CLONES
void bf16_row(const uint8_t* src, float* dst, int64_t n) {
  const uint16_t* s = reinterpret_cast<const uint16_t*>(src);
  uint32_t* d = reinterpret_cast<uint32_t*>(dst);
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) d[i] = static_cast<uint32_t>(s[i]) << 16;
}

NIBBLE_CLONES
void q8_0_row(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t b = 0; b < n / kQK8_0; ++b) {
    const uint8_t* blk = src + b * sizeof(BlockQ8_0);
    uint16_t dh;
    std::memcpy(&dh, blk, 2);
    const float d = f16_to_f32(dh);
    const int8_t* q = reinterpret_cast<const int8_t*>(blk + 2);
    float* y = dst + b * kQK8_0;
#pragma omp simd
    for (int j = 0; j < kQK8_0; ++j) y[j] = static_cast<float>(q[j]) * d;
  }
}

NIBBLE_CLONES
void q4_0_row(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t b = 0; b < n / kQK4_0; ++b) {
    const uint8_t* blk = src + b * sizeof(BlockQ4_0);
    uint16_t dh;
    std::memcpy(&dh, blk, 2);
    const float d = f16_to_f32(dh);
    const uint8_t* q = blk + 2;
    float* y = dst + b * kQK4_0;
#pragma omp simd
    for (int j = 0; j < 16; ++j) {
      y[j] = static_cast<float>((q[j] & 0x0F) - 8) * d;
      y[j + 16] = static_cast<float>((q[j] >> 4) - 8) * d;
    }
  }
}

}  // namespace

void dequantize_row_fast(GgmlType type, const uint8_t* src, float* dst, int64_t n) {
  switch (type) {
    case GgmlType::F32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case GgmlType::BF16:
      bf16_row(src, dst, n);
      return;
    case GgmlType::Q8_0:
      q8_0_row(src, dst, n);
      return;
    case GgmlType::Q4_0:
      q4_0_row(src, dst, n);
      return;
    default:
      dequantize_row(type, src, dst, static_cast<uint64_t>(n));
      return;
  }
}

}  // namespace nibble
