// KV row codecs. Encoding goes through the reference quantizers (a batch writes few rows; f16
// rows, which quantized caches also write for their recent ring, use F16C when present);
// decoding is on the attention hot path, so it has F16C / AVX2 variants picked at load time.
// Every variant computes each element the same way (one int->float conversion and one multiply
// by the block scale, as ggml's dequantize_row_*), so all agree bit for bit.
#include "ops/kv_rows.h"
#include "util/cpu_features.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "ops/kv_view.h"
#include "quant/blocks.h"
#include "quant/quant.h"
#include "util/check.h"
#include "util/fp16.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define NIBBLE_KV_X86 1
#endif

namespace nibble {
namespace {

inline void decode_q8_0(const uint8_t* src, float* dst, int64_t n) {
  const auto* b = reinterpret_cast<const BlockQ8_0*>(src);
  for (int64_t i = 0; i < n / 32; ++i) {
    const float d = f16_to_f32(b[i].d);
    float* y = dst + i * 32;
    for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(b[i].qs[j]) * d;
  }
}

inline void decode_q4_0(const uint8_t* src, float* dst, int64_t n) {
  const auto* b = reinterpret_cast<const BlockQ4_0*>(src);
  for (int64_t i = 0; i < n / 32; ++i) {
    const float d = f16_to_f32(b[i].d);
    float* y = dst + i * 32;
    for (int j = 0; j < 16; ++j) {
      y[j] = static_cast<float>((b[i].qs[j] & 0x0F) - 8) * d;
      y[j + 16] = static_cast<float>((b[i].qs[j] >> 4) - 8) * d;
    }
  }
}

inline void decode_f16_scalar(const uint8_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, src + 2 * i, 2);
    dst[i] = f16_to_f32(h);
  }
}

#ifdef NIBBLE_KV_X86
__attribute__((target("avx,f16c"))) void decode_f16_f16c(const uint8_t* src, float* dst,
                                                         int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * i));
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
  }
  decode_f16_scalar(src + 2 * i, dst + i, n - i);
}
// f32 -> f16, round to nearest even: the same bits as f32_to_f16 for every non-NaN value (NaN
// payloads aside; cache rows are finite). Every stored row of an f16 cache or of a quantized
// cache's recent ring goes through it.
__attribute__((target("avx,f16c"))) void encode_f16_f16c(const float* src, uint8_t* dst,
                                                         int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h =
        _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 2 * i), h);
  }
  for (; i < n; ++i) {
    const uint16_t h = f32_to_f16(src[i]);
    std::memcpy(dst + 2 * i, &h, 2);
  }
}
// 8 int8 values (low 8 bytes of b) -> floats times d.
__attribute__((target("avx2,f16c"))) inline void i8x8_times(__m128i b, __m256 d, float* y) {
  _mm256_storeu_ps(y, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b)), d));
}
__attribute__((target("avx2,f16c"))) void decode_q8_0_avx2(const uint8_t* src, float* dst,
                                                           int64_t n) {
  const auto* b = reinterpret_cast<const BlockQ8_0*>(src);
  for (int64_t i = 0; i < n / 32; ++i) {
    const __m256 d = _mm256_set1_ps(f16_to_f32(b[i].d));
    const __m128i q0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[i].qs));
    const __m128i q1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[i].qs + 16));
    float* y = dst + i * 32;
    i8x8_times(q0, d, y);
    i8x8_times(_mm_srli_si128(q0, 8), d, y + 8);
    i8x8_times(q1, d, y + 16);
    i8x8_times(_mm_srli_si128(q1, 8), d, y + 24);
  }
}
__attribute__((target("avx2,f16c"))) void decode_q4_0_avx2(const uint8_t* src, float* dst,
                                                           int64_t n) {
  const auto* b = reinterpret_cast<const BlockQ4_0*>(src);
  const __m128i mask = _mm_set1_epi8(0x0F), eight = _mm_set1_epi8(8);
  for (int64_t i = 0; i < n / 32; ++i) {
    const __m256 d = _mm256_set1_ps(f16_to_f32(b[i].d));
    const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[i].qs));
    const __m128i lo = _mm_sub_epi8(_mm_and_si128(q, mask), eight);                     // 0..15
    const __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(q, 4), mask), eight);  // 16..31
    float* y = dst + i * 32;
    i8x8_times(lo, d, y);
    i8x8_times(_mm_srli_si128(lo, 8), d, y + 8);
    i8x8_times(hi, d, y + 16);
    i8x8_times(_mm_srli_si128(hi, 8), d, y + 24);
  }
}
const bool kHaveF16c = __builtin_cpu_supports("avx") && cpu_has_f16c();
const bool kHaveAvx2 = kHaveF16c && __builtin_cpu_supports("avx2");
#endif

}  // namespace

int64_t kv_rotation_block(int64_t head_dim) {
  int64_t b = 1;
  while (b < 512 && head_dim % (2 * b) == 0) b *= 2;
  return b;
}

void kv_rotate(float* x, int64_t n_heads, int64_t head_dim) {
  const int64_t n = kv_rotation_block(head_dim);
  const float norm = 1.0f / std::sqrt(static_cast<float>(n));
  for (int64_t off = 0; off < n_heads * head_dim; off += n) {
    float* v = x + off;
    for (int64_t h = 1; h < n; h *= 2) {  // fast Walsh-Hadamard transform, Sylvester order
      for (int64_t i = 0; i < n; i += 2 * h) {
        for (int64_t j = i; j < i + h; ++j) {
          const float a = v[j], b = v[j + h];
          v[j] = a + b;
          v[j + h] = a - b;
        }
      }
    }
    for (int64_t i = 0; i < n; ++i) v[i] *= norm;
  }
}

void kv_encode_row(GgmlType type, const float* src, uint8_t* dst, int64_t n) {
  NIBBLE_CHECK(kv_type_supported(type) && n % kv_block_elems(type) == 0,
               "kv_encode_row: unsupported type or length");
  switch (type) {
    case GgmlType::F32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case GgmlType::F16:
#ifdef NIBBLE_KV_X86
      if (kHaveF16c) return encode_f16_f16c(src, dst, n);
#endif
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = f32_to_f16(src[i]);
        std::memcpy(dst + 2 * i, &h, 2);
      }
      return;
    case GgmlType::Q4_0: {
      thread_local std::vector<float> ones;
      if (ones.size() < static_cast<size_t>(n)) ones.assign(static_cast<size_t>(n), 1.0f);
      quantize_row(type, src, dst, static_cast<uint64_t>(n), ones.data());
      return;
    }
    default:
      quantize_row(type, src, dst, static_cast<uint64_t>(n));  // the reference quantizer
      return;
  }
}

void kv_decode_row(GgmlType type, const uint8_t* src, float* dst, int64_t n) {
  switch (type) {
    case GgmlType::F32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case GgmlType::F16:
#ifdef NIBBLE_KV_X86
      if (kHaveF16c) return decode_f16_f16c(src, dst, n);
#endif
      return decode_f16_scalar(src, dst, n);
    case GgmlType::Q8_0:
#ifdef NIBBLE_KV_X86
      if (kHaveAvx2) return decode_q8_0_avx2(src, dst, n);
#endif
      return decode_q8_0(src, dst, n);
    case GgmlType::Q4_0:
#ifdef NIBBLE_KV_X86
      if (kHaveAvx2) return decode_q4_0_avx2(src, dst, n);
#endif
      return decode_q4_0(src, dst, n);
    default:
      NIBBLE_CHECK(false, "kv_decode_row: unsupported type");
  }
}

}  // namespace nibble
