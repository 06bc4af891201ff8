// Vectorisable row dequantizers (bit-identical to quant/quant.cpp's reference codecs).
#include "ops/dequant_fast.h"
#include "util/cpu_features.h"

#include <immintrin.h>

#include <cstring>
#include <vector>

#include "ops/int8_rows.h"

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

__attribute__((target("avx2,f16c"))) void f16_row_f16c(const uint8_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * i));
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
  }
  for (; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, src + 2 * i, 2);
    dst[i] = f16_to_f32(h);
  }
}

bool have_f16c() {
  static const bool yes = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && cpu_has_f16c();
  }();
  return yes;
}

// Integer-quantized types through their int8 form (ops/int8_rows.h): q * scale + offset is the
// reference dequantizer's value exactly.
NIBBLE_CLONES
void int8_form_row(GgmlType type, const uint8_t* src, float* dst, int64_t n) {
  thread_local std::vector<int8_t> q;
  thread_local std::vector<float> sc, off;
  if (q.size() < static_cast<size_t>(n)) {
    q.resize(static_cast<size_t>(n));
    sc.resize(static_cast<size_t>(n / 4 + 1));
    off.resize(static_cast<size_t>(n / 16 + 1));
  }
  const bool has_off = int8_rows_have_min(type);
  unpack_int8_row(type, src, n, q.data(), sc.data(), has_off ? off.data() : nullptr);
  if (has_off) {
    for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(q[i]) * sc[i / 4] + off[i / 16];
  } else {
    for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(q[i]) * sc[i / 4];
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
    case GgmlType::F16:
      if (have_f16c()) {
        f16_row_f16c(src, dst, n);
        return;
      }
      break;
    default:
      if (int8_rows_supported(type) && n % 256 == 0) {
        int8_form_row(type, src, dst, n);
        return;
      }
      break;
  }
  dequantize_row(type, src, dst, static_cast<uint64_t>(n));
}

}  // namespace nibble
