// Unpacking of each integer-quantized type into int8 rows (ops/int8_rows.h). Plain loops the
// compiler vectorises; compiled per ISA.
#include "ops/int8_rows.h"
#include "util/cpu_features.h"

#include <immintrin.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>

#include "quant/blocks.h"
#include "util/fp16.h"

namespace nibble {

namespace {

#define NIBBLE_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))

inline float f16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}

// Lane scales of one 32-element block with a single scale.
inline void fill8(float* s, float v) {
  for (int j = 0; j < 8; ++j) s[j] = v;
}
// Lane scales of 16 elements (4 lanes).
inline void fill4(float* s, float v) {
  for (int j = 0; j < 4; ++j) s[j] = v;
}

NIBBLE_CLONES
void q4_0(const uint8_t* src, int64_t n, int8_t* q, float* s) {
  for (int64_t b = 0; b < n / 32; ++b) {
    const uint8_t* blk = src + b * sizeof(BlockQ4_0);
    const uint8_t* qs = blk + 2;
    int8_t* o = q + b * 32;
    for (int j = 0; j < 16; ++j) {
      o[j] = static_cast<int8_t>((qs[j] & 0x0F) - 8);
      o[j + 16] = static_cast<int8_t>((qs[j] >> 4) - 8);
    }
    fill8(s + b * 8, f16(blk));
  }
}

NIBBLE_CLONES
void q4_1(const uint8_t* src, int64_t n, int8_t* q, float* s, float* off) {
  for (int64_t b = 0; b < n / 32; ++b) {
    const uint8_t* blk = src + b * sizeof(BlockQ4_1);
    const uint8_t* qs = blk + 4;
    int8_t* o = q + b * 32;
    for (int j = 0; j < 16; ++j) {
      o[j] = static_cast<int8_t>(qs[j] & 0x0F);
      o[j + 16] = static_cast<int8_t>(qs[j] >> 4);
    }
    fill8(s + b * 8, f16(blk));
    off[2 * b] = off[2 * b + 1] = f16(blk + 2);
  }
}

inline uint32_t read_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

NIBBLE_CLONES
void q5_0(const uint8_t* src, int64_t n, int8_t* q, float* s) {
  for (int64_t b = 0; b < n / 32; ++b) {
    const uint8_t* blk = src + b * sizeof(BlockQ5_0);
    const uint32_t qh = read_u32(blk + 2);
    const uint8_t* qs = blk + 6;
    int8_t* o = q + b * 32;
    for (int j = 0; j < 16; ++j) {
      o[j] = static_cast<int8_t>(((qs[j] & 0x0F) | (((qh >> j) & 1u) << 4)) - 16);
      o[j + 16] = static_cast<int8_t>(((qs[j] >> 4) | (((qh >> (j + 16)) & 1u) << 4)) - 16);
    }
    fill8(s + b * 8, f16(blk));
  }
}

NIBBLE_CLONES
void q5_1(const uint8_t* src, int64_t n, int8_t* q, float* s, float* off) {
  for (int64_t b = 0; b < n / 32; ++b) {
    const uint8_t* blk = src + b * sizeof(BlockQ5_1);
    const uint32_t qh = read_u32(blk + 4);
    const uint8_t* qs = blk + 8;
    int8_t* o = q + b * 32;
    for (int j = 0; j < 16; ++j) {
      o[j] = static_cast<int8_t>((qs[j] & 0x0F) | (((qh >> j) & 1u) << 4));
      o[j + 16] = static_cast<int8_t>((qs[j] >> 4) | (((qh >> (j + 16)) & 1u) << 4));
    }
    fill8(s + b * 8, f16(blk));
    off[2 * b] = off[2 * b + 1] = f16(blk + 2);
  }
}

NIBBLE_CLONES
void q8_0(const uint8_t* src, int64_t n, int8_t* q, float* s) {
  for (int64_t b = 0; b < n / 32; ++b) {
    const uint8_t* blk = src + b * sizeof(BlockQ8_0);
    std::memcpy(q + b * 32, blk + 2, 32);
    fill8(s + b * 8, f16(blk));
  }
}

NIBBLE_CLONES
void iq4_nl(const uint8_t* src, int64_t n, int8_t* q, float* s) {
  for (int64_t b = 0; b < n / 32; ++b) {
    const uint8_t* blk = src + b * sizeof(BlockIQ4_NL);
    const uint8_t* qs = blk + 2;
    int8_t* o = q + b * 32;
    for (int j = 0; j < 16; ++j) {
      o[j] = kIq4nlValues[qs[j] & 0x0F];
      o[j + 16] = kIq4nlValues[qs[j] >> 4];
    }
    fill8(s + b * 8, f16(blk));
  }
}

NIBBLE_CLONES
void iq4_xs(const uint8_t* src, int64_t n, int8_t* q, float* s) {
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const auto* blk = reinterpret_cast<const BlockIQ4_XS*>(src + b * sizeof(BlockIQ4_XS));
    const float d = f16(src + b * sizeof(BlockIQ4_XS));
    uint16_t scales_h;
    std::memcpy(&scales_h, &blk->scales_h, 2);
    for (int ib = 0; ib < 8; ++ib) {
      const int ls = ((blk->scales_l[ib / 2] >> (4 * (ib % 2))) & 0xF) |
                     (((scales_h >> (2 * ib)) & 3) << 4);
      const uint8_t* qs = blk->qs + 16 * ib;
      int8_t* o = q + b * kQK_K + 32 * ib;
      for (int j = 0; j < 16; ++j) {
        o[j] = kIq4nlValues[qs[j] & 0xF];
        o[j + 16] = kIq4nlValues[qs[j] >> 4];
      }
      fill8(s + (b * kQK_K + 32 * ib) / 4, d * static_cast<float>(ls - 32));
    }
  }
}

// Q4_K / Q5_K 6-bit scale and min of sub-block j.
inline void k4_scale_min(const uint8_t* q, int j, int* sc, int* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

NIBBLE_CLONES
void q4_k(const uint8_t* src, int64_t n, int8_t* q, float* s, float* off) {
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const auto* blk = reinterpret_cast<const BlockQ4_K*>(src + b * sizeof(BlockQ4_K));
    const uint8_t* raw = src + b * sizeof(BlockQ4_K);
    const float d = f16(raw), dmin = f16(raw + 2);
    for (int sb = 0; sb < 8; ++sb) {
      int sc, m;
      k4_scale_min(blk->scales, sb, &sc, &m);
      const uint8_t* qs = blk->qs + 32 * (sb / 2);
      const int shift = (sb % 2) * 4;
      const int64_t e0 = b * kQK_K + 32 * sb;
      int8_t* o = q + e0;
      for (int l = 0; l < 32; ++l) o[l] = static_cast<int8_t>((qs[l] >> shift) & 0xF);
      fill8(s + e0 / 4, d * static_cast<float>(sc));
      off[e0 / 16] = off[e0 / 16 + 1] = -(dmin * static_cast<float>(m));
    }
  }
}

NIBBLE_CLONES
void q5_k(const uint8_t* src, int64_t n, int8_t* q, float* s, float* off) {
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const auto* blk = reinterpret_cast<const BlockQ5_K*>(src + b * sizeof(BlockQ5_K));
    const uint8_t* raw = src + b * sizeof(BlockQ5_K);
    const float d = f16(raw), dmin = f16(raw + 2);
    for (int sb = 0; sb < 8; ++sb) {
      int sc, m;
      k4_scale_min(blk->scales, sb, &sc, &m);
      const uint8_t* qs = blk->qs + 32 * (sb / 2);
      const int shift = (sb % 2) * 4;
      const int64_t e0 = b * kQK_K + 32 * sb;
      int8_t* o = q + e0;
      for (int l = 0; l < 32; ++l) {
        o[l] = static_cast<int8_t>(((qs[l] >> shift) & 0xF) + 16 * ((blk->qh[l] >> sb) & 1));
      }
      fill8(s + e0 / 4, d * static_cast<float>(sc));
      off[e0 / 16] = off[e0 / 16 + 1] = -(dmin * static_cast<float>(m));
    }
  }
}

NIBBLE_CLONES
void q6_k(const uint8_t* src, int64_t n, int8_t* q, float* s) {
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const auto* blk = reinterpret_cast<const BlockQ6_K*>(src + b * sizeof(BlockQ6_K));
    const float d = f16(src + b * sizeof(BlockQ6_K) + offsetof(BlockQ6_K, d));
    int8_t* o = q + b * kQK_K;
    for (int h = 0; h < 2; ++h) {
      const uint8_t* ql = blk->ql + 64 * h;
      const uint8_t* qh = blk->qh + 32 * h;
      int8_t* y = o + 128 * h;
      for (int l = 0; l < 32; ++l) {
        y[l] = static_cast<int8_t>(((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
        y[l + 32] = static_cast<int8_t>(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
        y[l + 64] = static_cast<int8_t>(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
        y[l + 96] = static_cast<int8_t>(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
      }
    }
    for (int j = 0; j < 16; ++j) {
      fill4(s + (b * kQK_K + 16 * j) / 4, d * static_cast<float>(blk->scales[j]));
    }
  }
}

NIBBLE_CLONES
void q2_k(const uint8_t* src, int64_t n, int8_t* q, float* s, float* off) {
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const auto* blk = reinterpret_cast<const BlockQ2_K*>(src + b * sizeof(BlockQ2_K));
    const uint8_t* raw = src + b * sizeof(BlockQ2_K);
    const float d = f16(raw + offsetof(BlockQ2_K, d)), dmin = f16(raw + offsetof(BlockQ2_K, dmin));
    int8_t* o = q + b * kQK_K;
    for (int h = 0; h < 2; ++h) {
      const uint8_t* qs = blk->qs + 32 * h;
      for (int p = 0; p < 4; ++p) {
        for (int l = 0; l < 32; ++l) o[128 * h + 32 * p + l] = static_cast<int8_t>((qs[l] >> (2 * p)) & 3);
      }
    }
    for (int j = 0; j < 16; ++j) {
      const uint8_t sc = blk->scales[j];
      const int64_t e0 = b * kQK_K + 16 * j;
      fill4(s + e0 / 4, d * static_cast<float>(sc & 0xF));
      off[e0 / 16] = -(dmin * static_cast<float>(sc >> 4));
    }
  }
}

inline int q3k_scale(const uint8_t* scales, int j) {
  const int low = j < 8 ? (scales[j] & 0xF) : (scales[j - 8] >> 4);
  return low | (((scales[8 + j % 4] >> (2 * (j / 4))) & 3) << 4);
}

NIBBLE_CLONES
void q3_k(const uint8_t* src, int64_t n, int8_t* q, float* s) {
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const auto* blk = reinterpret_cast<const BlockQ3_K*>(src + b * sizeof(BlockQ3_K));
    const float d = f16(src + b * sizeof(BlockQ3_K) + offsetof(BlockQ3_K, d));
    int8_t* o = q + b * kQK_K;
    for (int h = 0; h < 2; ++h) {
      const uint8_t* qs = blk->qs + 32 * h;
      for (int p = 0; p < 4; ++p) {
        const int bit = 4 * h + p;  // element e = 128h + 32p + l: hmask bit e/32
        for (int l = 0; l < 32; ++l) {
          const int low = (qs[l] >> (2 * p)) & 3;
          const int hb = (blk->hmask[l] >> bit) & 1;
          o[128 * h + 32 * p + l] = static_cast<int8_t>(low - (hb ? 0 : 4));
        }
      }
    }
    for (int j = 0; j < 16; ++j) {
      fill4(s + (b * kQK_K + 16 * j) / 4, d * static_cast<float>(q3k_scale(blk->scales, j) - 32));
    }
  }
}


// ---- AVX2 + F16C unpackers for the K-quants, Q4_0, Q8_0 and IQ4_XS (same bytes as above) -----

#define NIBBLE_AVX2 __attribute__((target("avx2,fma,f16c")))

NIBBLE_AVX2 inline void fill8_avx2(float* s, uint16_t h) {
  _mm256_storeu_ps(s, _mm256_set1_ps(_cvtsh_ss(h)));
}

// The fp16 at p (F16C).
NIBBLE_AVX2 inline float f16_avx2(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

NIBBLE_AVX2 void q4_0_avx2(const uint8_t* src, int64_t n, int8_t* q, float* s) {
  const __m256i m4 = _mm256_set1_epi8(0x0F), k8 = _mm256_set1_epi8(8);
  for (int64_t b = 0; b < n / 32; ++b) {
    const uint8_t* blk = src + b * sizeof(BlockQ4_0);
    const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2));
    __m256i v = _mm256_set_m128i(_mm_srli_epi16(raw, 4), raw);
    v = _mm256_sub_epi8(_mm256_and_si256(v, m4), k8);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + b * 32), v);
    uint16_t h;
    std::memcpy(&h, blk, 2);
    fill8_avx2(s + b * 8, h);
  }
}

NIBBLE_AVX2 void q8_0_avx2(const uint8_t* src, int64_t n, int8_t* q, float* s) {
  for (int64_t b = 0; b < n / 32; ++b) {
    const uint8_t* blk = src + b * sizeof(BlockQ8_0);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + b * 32),
                        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2)));
    uint16_t h;
    std::memcpy(&h, blk, 2);
    fill8_avx2(s + b * 8, h);
  }
}

// Q4_K / Q5_K super-block b (d, dmin at raw, raw + 2): lane scales d * sc and offsets -(dmin * m)
// of its 8 sub-blocks.
NIBBLE_AVX2 inline void k4_scales_avx2(const uint8_t* raw, const uint8_t* scales, int64_t b,
                                       float* s, float* off) {
  const float d = f16_avx2(raw), dmin = f16_avx2(raw + 2);
  for (int sb = 0; sb < 8; ++sb) {
    int sc, m;
    k4_scale_min(scales, sb, &sc, &m);
    const int64_t e0 = b * kQK_K + 32 * sb;
    _mm256_storeu_ps(s + e0 / 4, _mm256_set1_ps(d * static_cast<float>(sc)));
    off[e0 / 16] = off[e0 / 16 + 1] = -(dmin * static_cast<float>(m));
  }
}

NIBBLE_AVX2 void q4_k_avx2(const uint8_t* src, int64_t n, int8_t* q, float* s, float* off) {
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const uint8_t* raw = src + b * sizeof(BlockQ4_K);
    const auto* blk = reinterpret_cast<const BlockQ4_K*>(raw);
    int8_t* o = q + b * kQK_K;
    for (int k = 0; k < 4; ++k) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk->qs + 32 * k));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + 64 * k), _mm256_and_si256(v, m4));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + 64 * k + 32),
                          _mm256_and_si256(_mm256_srli_epi16(v, 4), m4));
    }
    k4_scales_avx2(raw, blk->scales, b, s, off);
  }
}

NIBBLE_AVX2 void q6_k_avx2(const uint8_t* src, int64_t n, int8_t* q, float* s) {
  const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30),
                k32 = _mm256_set1_epi8(32);
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const uint8_t* raw = src + b * sizeof(BlockQ6_K);
    const auto* blk = reinterpret_cast<const BlockQ6_K*>(raw);
    const float d = f16_avx2(raw + offsetof(BlockQ6_K, d));
    int8_t* o = q + b * kQK_K;
    for (int h = 0; h < 2; ++h) {
      const __m256i l0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk->ql + 64 * h));
      const __m256i l1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk->ql + 64 * h + 32));
      const __m256i hb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk->qh + 32 * h));
      const __m256i v0 = _mm256_or_si256(_mm256_and_si256(l0, m4),
                                         _mm256_and_si256(_mm256_slli_epi16(hb, 4), m30));
      const __m256i v1 = _mm256_or_si256(_mm256_and_si256(l1, m4),
                                         _mm256_and_si256(_mm256_slli_epi16(hb, 2), m30));
      const __m256i v2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                                         _mm256_and_si256(hb, m30));
      const __m256i v3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                         _mm256_and_si256(_mm256_srli_epi16(hb, 2), m30));
      int8_t* y = o + 128 * h;
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(y), _mm256_sub_epi8(v0, k32));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + 32), _mm256_sub_epi8(v1, k32));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + 64), _mm256_sub_epi8(v2, k32));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + 96), _mm256_sub_epi8(v3, k32));
    }
    float* sp = s + b * kQK_K / 4;
    for (int j = 0; j < 16; ++j) {
      const __m128 v = _mm_set1_ps(d * static_cast<float>(blk->scales[j]));
      _mm_storeu_ps(sp + 4 * j, v);
    }
  }
}

// A byte mask per element: 0xFF where bit `bit` of the byte is set.
NIBBLE_AVX2 inline __m256i bit_set(__m256i bytes, int bit) {
  const __m256i b = _mm256_set1_epi8(static_cast<char>(1 << bit));
  return _mm256_cmpeq_epi8(_mm256_and_si256(bytes, b), b);
}

NIBBLE_AVX2 void q5_k_avx2(const uint8_t* src, int64_t n, int8_t* q, float* s, float* off) {
  const __m256i m4 = _mm256_set1_epi8(0x0F), k16 = _mm256_set1_epi8(16);
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const uint8_t* raw = src + b * sizeof(BlockQ5_K);
    const auto* blk = reinterpret_cast<const BlockQ5_K*>(raw);
    int8_t* o = q + b * kQK_K;
    const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk->qh));
    for (int k = 0; k < 4; ++k) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk->qs + 32 * k));
      const __m256i lo = _mm256_add_epi8(_mm256_and_si256(v, m4),
                                         _mm256_and_si256(bit_set(qh, 2 * k), k16));
      const __m256i hi = _mm256_add_epi8(_mm256_and_si256(_mm256_srli_epi16(v, 4), m4),
                                         _mm256_and_si256(bit_set(qh, 2 * k + 1), k16));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + 64 * k), lo);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + 64 * k + 32), hi);
    }
    k4_scales_avx2(raw, blk->scales, b, s, off);
  }
}

NIBBLE_AVX2 void q2_k_avx2(const uint8_t* src, int64_t n, int8_t* q, float* s, float* off) {
  const __m256i m2 = _mm256_set1_epi8(3);
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const uint8_t* raw = src + b * sizeof(BlockQ2_K);
    const auto* blk = reinterpret_cast<const BlockQ2_K*>(raw);
    const float d = f16_avx2(raw + offsetof(BlockQ2_K, d));
    const float dmin = f16_avx2(raw + offsetof(BlockQ2_K, dmin));
    int8_t* o = q + b * kQK_K;
    for (int h = 0; h < 2; ++h) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk->qs + 32 * h));
      for (int p = 0; p < 4; ++p) {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + 128 * h + 32 * p),
                            _mm256_and_si256(_mm256_srli_epi16(v, 2 * p), m2));
      }
    }
    // 16 sub-blocks: scales d * (sc & 15), 4 lanes each; offsets -(dmin * (sc >> 4)), one each.
    const __m128i sc = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk->scales));
    const __m128i sc_lo = _mm_and_si128(sc, _mm_set1_epi8(0x0F));
    const __m128i sc_hi = _mm_and_si128(_mm_srli_epi16(sc, 4), _mm_set1_epi8(0x0F));
    alignas(32) float scale16[16];
    const __m256 vd = _mm256_set1_ps(d), vm = _mm256_set1_ps(dmin);
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m128i lo[2] = {sc_lo, _mm_srli_si128(sc_lo, 8)};
    const __m128i hi[2] = {sc_hi, _mm_srli_si128(sc_hi, 8)};
    for (int half = 0; half < 2; ++half) {
      const __m256 lo8 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(lo[half]));
      const __m256 hi8 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(hi[half]));
      _mm256_store_ps(scale16 + 8 * half, _mm256_mul_ps(vd, lo8));
      _mm256_storeu_ps(off + b * 16 + 8 * half, _mm256_xor_ps(_mm256_mul_ps(vm, hi8), sign));
    }
    float* sp = s + b * kQK_K / 4;
    for (int j = 0; j < 16; ++j) _mm_storeu_ps(sp + 4 * j, _mm_broadcast_ss(scale16 + j));
  }
}

NIBBLE_AVX2 void q3_k_avx2(const uint8_t* src, int64_t n, int8_t* q, float* s) {
  const __m256i m2 = _mm256_set1_epi8(3), k4 = _mm256_set1_epi8(4);
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const uint8_t* raw = src + b * sizeof(BlockQ3_K);
    const auto* blk = reinterpret_cast<const BlockQ3_K*>(raw);
    const float d = f16_avx2(raw + offsetof(BlockQ3_K, d));
    int8_t* o = q + b * kQK_K;
    const __m256i hm = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk->hmask));
    for (int h = 0; h < 2; ++h) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk->qs + 32 * h));
      for (int p = 0; p < 4; ++p) {
        const __m256i low = _mm256_and_si256(_mm256_srli_epi16(v, 2 * p), m2);
        const __m256i minus4 = _mm256_andnot_si256(bit_set(hm, 4 * h + p), k4);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + 128 * h + 32 * p),
                            _mm256_sub_epi8(low, minus4));
      }
    }
    alignas(32) int32_t sc[16];
    for (int j = 0; j < 16; ++j) sc[j] = q3k_scale(blk->scales, j) - 32;
    alignas(32) float scale16[16];
    const __m256 vd = _mm256_set1_ps(d);
    for (int half = 0; half < 2; ++half) {
      _mm256_store_ps(scale16 + 8 * half,
                      _mm256_mul_ps(vd, _mm256_cvtepi32_ps(_mm256_load_si256(
                                            reinterpret_cast<const __m256i*>(sc + 8 * half)))));
    }
    float* sp = s + b * kQK_K / 4;
    for (int j = 0; j < 16; ++j) _mm_storeu_ps(sp + 4 * j, _mm_broadcast_ss(scale16 + j));
  }
}

NIBBLE_AVX2 void iq4_xs_avx2(const uint8_t* src, int64_t n, int8_t* q, float* s) {
  const __m128i values = _mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4nlValues));
  const __m128i m4 = _mm_set1_epi8(0x0F);
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const uint8_t* raw = src + b * sizeof(BlockIQ4_XS);
    const auto* blk = reinterpret_cast<const BlockIQ4_XS*>(raw);
    uint16_t scales_h;
    std::memcpy(&scales_h, &blk->scales_h, 2);
    const float d = f16_avx2(raw);
    for (int ib = 0; ib < 8; ++ib) {
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk->qs + 16 * ib));
      int8_t* o = q + b * kQK_K + 32 * ib;
      _mm_storeu_si128(reinterpret_cast<__m128i*>(o), _mm_shuffle_epi8(values, _mm_and_si128(v, m4)));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(o + 16),
                       _mm_shuffle_epi8(values, _mm_and_si128(_mm_srli_epi16(v, 4), m4)));
      const int ls = ((blk->scales_l[ib / 2] >> (4 * (ib % 2))) & 0xF) |
                     (((scales_h >> (2 * ib)) & 3) << 4);
      _mm256_storeu_ps(s + (b * kQK_K + 32 * ib) / 4,
                       _mm256_set1_ps(d * static_cast<float>(ls - 32)));
    }
  }
}

bool have_avx2() {
  static const bool yes = [] {
    __builtin_cpu_init();
    const char* isa = std::getenv("NIBBLE_ISA");
    if (isa != nullptr && std::strcmp(isa, "generic") == 0) return false;
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           cpu_has_f16c();
  }();
  return yes;
}

}  // namespace

bool int8_rows_supported(GgmlType type) {
  switch (type) {
    case GgmlType::Q4_0:
    case GgmlType::Q4_1:
    case GgmlType::Q5_0:
    case GgmlType::Q5_1:
    case GgmlType::Q8_0:
    case GgmlType::Q2_K:
    case GgmlType::Q3_K:
    case GgmlType::Q4_K:
    case GgmlType::Q5_K:
    case GgmlType::Q6_K:
    case GgmlType::IQ4_NL:
    case GgmlType::IQ4_XS:
      return true;
    default:
      return false;
  }
}

bool int8_rows_have_min(GgmlType type) {
  return type == GgmlType::Q4_1 || type == GgmlType::Q5_1 || type == GgmlType::Q2_K ||
         type == GgmlType::Q4_K || type == GgmlType::Q5_K;
}

void unpack_int8_row(GgmlType type, const uint8_t* src, int64_t n, int8_t* q, float* scale,
                     float* offset) {
  if (have_avx2()) {
    switch (type) {
      case GgmlType::Q4_0: return q4_0_avx2(src, n, q, scale);
      case GgmlType::Q8_0: return q8_0_avx2(src, n, q, scale);
      case GgmlType::Q4_K: return q4_k_avx2(src, n, q, scale, offset);
      case GgmlType::Q6_K: return q6_k_avx2(src, n, q, scale);
      case GgmlType::Q5_K: return q5_k_avx2(src, n, q, scale, offset);
      case GgmlType::Q2_K: return q2_k_avx2(src, n, q, scale, offset);
      case GgmlType::Q3_K: return q3_k_avx2(src, n, q, scale);
      case GgmlType::IQ4_XS: return iq4_xs_avx2(src, n, q, scale);
      default: break;
    }
  }
  unpack_int8_row_portable(type, src, n, q, scale, offset);
}

void unpack_int8_row_portable(GgmlType type, const uint8_t* src, int64_t n, int8_t* q,
                              float* scale, float* offset) {
  switch (type) {
    case GgmlType::Q4_0: return q4_0(src, n, q, scale);
    case GgmlType::Q4_1: return q4_1(src, n, q, scale, offset);
    case GgmlType::Q5_0: return q5_0(src, n, q, scale);
    case GgmlType::Q5_1: return q5_1(src, n, q, scale, offset);
    case GgmlType::Q8_0: return q8_0(src, n, q, scale);
    case GgmlType::Q2_K: return q2_k(src, n, q, scale, offset);
    case GgmlType::Q3_K: return q3_k(src, n, q, scale);
    case GgmlType::Q4_K: return q4_k(src, n, q, scale, offset);
    case GgmlType::Q5_K: return q5_k(src, n, q, scale, offset);
    case GgmlType::Q6_K: return q6_k(src, n, q, scale);
    case GgmlType::IQ4_NL: return iq4_nl(src, n, q, scale);
    case GgmlType::IQ4_XS: return iq4_xs(src, n, q, scale);
    default: return;
  }
}

}  // namespace nibble
