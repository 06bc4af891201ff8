// Decoding straight from Q4_K / Q6_K blocks with AVX2 + FMA + F16C (CPUs without AVX-512: most
// laptops and desktops), one 32-value block at a time, without an unpack buffer (Q4_0 has its own
// block-sum kernel: ops/q4_0_pairs_avx2.cpp). The quantized values are unsigned (Q4_K nibbles,
// Q6_K's 6 bits), so they are vpmaddubsw's unsigned operand and the int8 activations its signed
// one (no sign trick); the -32 of Q6_K comes back as per-token lane terms (Int8Acts::neg8sum4,
// times 4), Q4_K's minimums as the offset term. The arithmetic is ops/int8_dot.h's, so every
// result has the bits of dot_avx2 on the unpacked rows (tested).
#include <immintrin.h>

#include <cstring>

#include "ops/int8_dot_kernels.h"
#include "ops/int8_simd.h"

namespace nibble::int8_kernels {

namespace {

#define NIBBLE_AVX2_F16C __attribute__((target("avx2,fma,f16c")))

NIBBLE_AVX2_F16C inline float reduce(__m256 e, __m256 o) { return reduce_lanes(e, o); }

NIBBLE_AVX2_F16C inline float f16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

// The fp16 at p in all 8 lanes (vpbroadcastw from memory, then one conversion).
NIBBLE_AVX2_F16C inline __m256 f16x8(const uint8_t* p) {
  return _mm256_cvtph_ps(_mm_broadcastw_epi16(_mm_loadu_si16(p)));
}

// Exact int32 lanes of 4 products: unsigned weights q (< 64) times signed activations, plus the
// lane's correction term.
NIBBLE_AVX2_F16C inline __m256i lanes(__m256i q, const int8_t* a, __m256i corr) {
  const __m256i p = _mm256_maddubs_epi16(q, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a)));
  return _mm256_add_epi32(_mm256_madd_epi16(p, _mm256_set1_epi16(1)), corr);
}

NIBBLE_AVX2_F16C inline void accumulate(__m256i i, __m256 lane_scale, const float* dlane,
                                        __m256* acc) {
  *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i), _mm256_mul_ps(lane_scale, _mm256_loadu_ps(dlane)),
                         *acc);
}

NIBBLE_AVX2_F16C float q4_k_row(const uint8_t* row, const Int8Acts& a) {
  const int64_t n_super = a.n / 256;
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256i zero = _mm256_setzero_si256();
  const int8_t* aq = a.q_of(0);
  const float* s16 = a.sum16_of(0);
  __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
  __m256 moff = _mm256_setzero_ps();
  for (int64_t sb = 0; sb < n_super; ++sb) {
    const uint8_t* blk = row + 144 * sb;
    _mm_prefetch(reinterpret_cast<const char*>(blk + kDecodePrefetch), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(blk + kDecodePrefetch + 64), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(blk + kDecodePrefetch + 128), _MM_HINT_T0);
    // The 6-bit scales (bytes 0..7 of u) and minimums (bytes 8..15).
    uint8_t u[16];
    k4_scales_mins(blk + 4, u);
    const __m128i sm = _mm_loadu_si128(reinterpret_cast<const __m128i*>(u));
    const __m256 sc8 =
        _mm256_mul_ps(_mm256_set1_ps(f16(blk)), _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(sm)));
    const __m256 mn8 = _mm256_xor_ps(
        _mm256_mul_ps(_mm256_set1_ps(f16(blk + 2)),
                      _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(sm, 8)))),
        sign);
    // Offsets per 16 values: -(dmin * m) twice per sub-block, in two chunks of 8 groups.
    moff = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(mn8, _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3)),
                           _mm256_loadu_ps(s16 + 16 * sb), moff);
    moff = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(mn8, _mm256_setr_epi32(4, 4, 5, 5, 6, 6, 7, 7)),
                           _mm256_loadu_ps(s16 + 16 * sb + 8), moff);
    for (int k = 0; k < 4; ++k) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 16 + 32 * k));
      const int64_t b0 = 8 * sb + 2 * k;  // the pair's blocks (sub-blocks 2k, 2k + 1)
      accumulate(lanes(_mm256_and_si256(v, m4), aq + 32 * b0, zero),
                 _mm256_permutevar8x32_ps(sc8, _mm256_set1_epi32(2 * k)), a.dlane.data() + 8 * b0,
                 &acc[0]);
      accumulate(lanes(_mm256_and_si256(_mm256_srli_epi16(v, 4), m4), aq + 32 * (b0 + 1), zero),
                 _mm256_permutevar8x32_ps(sc8, _mm256_set1_epi32(2 * k + 1)),
                 a.dlane.data() + 8 * (b0 + 1), &acc[1]);
    }
  }
  const float off = reduce_offset_lanes(moff);
  return reduce(acc[0], acc[1]) + off;
}

NIBBLE_AVX2_F16C float q6_k_row(const uint8_t* row, const Int8Acts& a) {
  const int64_t n_super = a.n / 256;
  const __m256i m0f = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
  const int8_t* aq = a.q_of(0);
  __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
  for (int64_t sb = 0; sb < n_super; ++sb) {
    const uint8_t* blk = row + 210 * sb;
    for (int l = 0; l < 4; ++l) {
      _mm_prefetch(reinterpret_cast<const char*>(blk + kDecodePrefetch + 64 * l), _MM_HINT_T0);
    }
    const __m256 d = _mm256_set1_ps(f16(blk + 208));
    // d * scales[j] of the 16 sub-blocks of 16 values: [0..7] and [8..15].
    __m256 sc[2];
    for (int h = 0; h < 2; ++h) {
      const __m128i s8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(blk + 192 + 8 * h));
      sc[h] = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(s8)));
    }
    for (int h = 0; h < 2; ++h) {  // 128-value halves: ql[64h..], qh[32h..]
      const __m256i ql0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 64 * h));
      const __m256i ql1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 64 * h + 32));
      const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 128 + 32 * h));
      const __m256i q[4] = {
          _mm256_or_si256(_mm256_and_si256(ql0, m0f), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30)),
          _mm256_or_si256(_mm256_and_si256(ql1, m0f), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m0f), _mm256_and_si256(qh, m30)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m0f),
                          _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30))};
      for (int c = 0; c < 4; ++c) {
        const int64_t b = 8 * sb + 4 * h + c;  // block of 32 values
        const int j = 2 * (4 * h + c) % 8;     // its first sub-block within sc[h]
        const __m256i corr = _mm256_slli_epi32(
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.neg8sum4.data() + 8 * b)), 2);
        const __m256 lane_scale = _mm256_permutevar8x32_ps(
            sc[h], _mm256_setr_epi32(j, j, j, j, j + 1, j + 1, j + 1, j + 1));
        accumulate(lanes(q[c], aq + 32 * b, corr), lane_scale, a.dlane.data() + 8 * b, &acc[b & 1]);
      }
    }
  }
  return reduce(acc[0], acc[1]);
}

}  // namespace

bool direct_dot_avx2(GgmlType type, const uint8_t* const* rows, int n_rows, const Int8Acts& a,
                     int64_t tok, float* out) {
  if (tok != 0 || !a.has_decode_terms) return false;
  switch (type) {
    case GgmlType::Q4_K:
      if (!a.has_sums || a.n % 256 != 0) return false;
      for (int r = 0; r < n_rows; ++r) out[r] = q4_k_row(rows[r], a);
      return true;
    case GgmlType::Q6_K:
      if (a.n % 256 != 0) return false;
      for (int r = 0; r < n_rows; ++r) out[r] = q6_k_row(rows[r], a);
      return true;
    default: return false;
  }
}

}  // namespace nibble::int8_kernels
