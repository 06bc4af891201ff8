// Q2_K, Q3_K and IQ4_XS decoding on AVX-512: the AVX2 block-sum kernels' arithmetic
// (ops/block_sums_avx2.cpp: q2_3_k_row, iq4_xs_row) at twice the width, so the same bits. Each
// block's products are exact integers either way; the float work is the AVX2 kernels',
// instruction for instruction.
//
// Q2_K / Q3_K (AVX-512 BW): a super-block's 64 bytes of 2-bit values load in one register whose
// 256-bit halves hold values 0..127 and 128..255, so shifting by 2c picks block c of the first
// half and block 4 + c of the second (32 values each). The activations of those two blocks meet
// them in one vpmaddubsw (two 256-bit loads), each 16 values' int16 scale in one vpmaddwd (one
// vpermw places the four scales a register needs); Q3_K's hmask bit c (first half) and 4 + c
// (second) come from one register holding hmask and hmask >> 4. Four registers fold to the 8
// block sums in order with unpacks (the AVX2 kernel spends a vphaddd tree and a vpshufb per
// block).
// IQ4_XS (AVX-512 BW + VNNI): two sub-blocks' 32 bytes of nibbles spread to [low | high | low |
// high] nibbles of each, one vpshufb looks up the codebook plus 128 (unsigned, 1..241), and one
// vpdpbusd sums 4 products in int32 (no int16 pairs to saturate, no sign trick); the 128 comes
// back as -128 * the activations' sum per block (from isum16).
//
// GCC 12 reports its own intrinsics headers (undefined upper lanes of casts) as uninitialised.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <cstring>

#include "ops/int8_dot_kernels.h"
#include "ops/int8_simd.h"
#include "quant/blocks.h"
#include "util/cpu_features.h"

namespace nibble::int8_kernels {

namespace {

#define NIBBLE_AVX512BW \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")))

// vpermw indices: register c takes the scales of sub-blocks 2c, 2c + 1 (block c) and 8 + 2c,
// 9 + 2c (block 4 + c), one per 128-bit lane.
struct ScaleIndex {
  alignas(64) uint16_t idx[4][32];
  ScaleIndex() {
    for (int c = 0; c < 4; ++c) {
      for (int i = 0; i < 8; ++i) {
        idx[c][i] = static_cast<uint16_t>(2 * c);
        idx[c][8 + i] = static_cast<uint16_t>(2 * c + 1);
        idx[c][16 + i] = static_cast<uint16_t>(8 + 2 * c);
        idx[c][24 + i] = static_cast<uint16_t>(9 + 2 * c);
      }
    }
  }
};

const ScaleIndex& scale_index() {
  static const ScaleIndex s;
  return s;
}

// Four registers of 16 int32 to 8: lane c of the result sums s[c]'s 128-bit lanes 0 and 1, lane
// 4 + c its lanes 2 and 3.
NIBBLE_AVX512BW inline __m256i fold4(const __m512i s[4]) {
  // Per 128-bit lane L: [sum of s0's 4 lanes, s1's, s2's, s3's].
  const __m512i t01 =
      _mm512_add_epi32(_mm512_unpacklo_epi32(s[0], s[1]), _mm512_unpackhi_epi32(s[0], s[1]));
  const __m512i t23 =
      _mm512_add_epi32(_mm512_unpacklo_epi32(s[2], s[3]), _mm512_unpackhi_epi32(s[2], s[3]));
  const __m512i v =
      _mm512_add_epi32(_mm512_unpacklo_epi64(t01, t23), _mm512_unpackhi_epi64(t01, t23));
  const __m256i lo = _mm512_castsi512_si256(v), hi = _mm512_extracti64x4_epi64(v, 1);
  return _mm256_add_epi32(_mm256_permute2x128_si256(lo, hi, 0x20),
                          _mm256_permute2x128_si256(lo, hi, 0x31));
}

template <bool kQ3>
NIBBLE_AVX512BW float row_dot(const uint8_t* row, const Int8Acts& a, const ScaleIndex& si) {
  constexpr int kBytes = kQ3 ? 110 : 84, kQs = kQ3 ? 32 : 16;
  const int64_t n_super = a.n / 256;
  const __m512i m3 = _mm512_set1_epi8(3);
  const int8_t* aq = a.q_of(0);
  const int16_t* as16 = a.isum16_of(0);
  const float* ad = a.d_of(0);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t sb = 0; sb < n_super; ++sb) {
    const uint8_t* blk = row + kBytes * sb;
    _mm_prefetch(reinterpret_cast<const char*>(blk + kDecodePrefetch), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(blk + kDecodePrefetch + 64), _MM_HINT_T0);
    __m256i sc16, mn16;
    q2_3_k_scales_mins<kQ3>(blk, &sc16, &mn16);
    const __m512i sc512 = _mm512_zextsi256_si512(sc16);
    const __m512i q = _mm512_loadu_si512(blk + kQs);
    // Q3_K: bits 0..3 of each byte of the upper half are bits 4..7 of hmask (a 16-bit shift
    // brings the neighbour's bits only into bits 4..7), so block c of either half wants bit c.
    __m512i hm = _mm512_setzero_si512();
    if constexpr (kQ3) {
      const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk));
      hm = _mm512_inserti64x4(_mm512_castsi256_si512(h), _mm256_srli_epi16(h, 4), 1);
    }
    const int8_t* x = aq + 256 * sb;
    __m512i s[4];
    for (int c = 0; c < 4; ++c) {
      __m512i u = _mm512_and_si512(c == 0   ? q
                                   : c == 1 ? _mm512_srli_epi16(q, 2)
                                   : c == 2 ? _mm512_srli_epi16(q, 4)
                                            : _mm512_srli_epi16(q, 6),
                                   m3);
      if constexpr (kQ3) {  // bit c to bit 2
        const __m512i hb = c == 0   ? _mm512_slli_epi16(hm, 2)
                           : c == 1 ? _mm512_slli_epi16(hm, 1)
                           : c == 2 ? hm
                                    : _mm512_srli_epi16(hm, 1);
        u = _mm512_or_si512(u, _mm512_and_si512(hb, _mm512_set1_epi8(0x04)));
      }
      const __m512i xa = _mm512_inserti64x4(
          _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + 32 * c))),
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + 128 + 32 * c)), 1);
      const __m512i scales = _mm512_permutexvar_epi16(_mm512_load_si512(si.idx[c]), sc512);
      s[c] = _mm512_madd_epi16(_mm512_maddubs_epi16(u, xa), scales);
    }
    const __m256i m = _mm256_madd_epi16(
        mn16, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(as16 + 16 * sb)));
    acc = q2_3_k_accumulate<kQ3>(blk, fold4(s), m, _mm256_loadu_ps(ad + 8 * sb), acc);
  }
  return reduce_lanes(acc, _mm256_setzero_ps());
}

// ---- IQ4_XS --------------------------------------------------------------------------------

#define NIBBLE_AVX512VNNI \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")))

struct Iq4Tables {
  alignas(16) uint8_t book[16];    // the codebook plus 128
  alignas(64) uint16_t shift[32];  // per word: 0 in 128-bit lanes 0 and 2, 4 in lanes 1 and 3
  Iq4Tables() {
    for (int i = 0; i < 16; ++i) book[i] = static_cast<uint8_t>(kIq4nlValues[i] + 128);
    for (int i = 0; i < 32; ++i) shift[i] = static_cast<uint16_t>((i / 8) % 2 == 1 ? 4 : 0);
  }
};

const Iq4Tables& iq4_tables() {
  static const Iq4Tables t;
  return t;
}

NIBBLE_AVX512VNNI float iq4_xs_row_dot(const uint8_t* row, const Int8Acts& a, const Iq4Tables& tb) {
  const int64_t n_super = a.n / 256;
  const int8_t* aq = a.q_of(0);
  const int16_t* as16 = a.isum16_of(0);
  const float* ad = a.d_of(0);
  const __m512i book =
      _mm512_broadcast_i32x4(_mm_load_si128(reinterpret_cast<const __m128i*>(tb.book)));
  const __m512i shift = _mm512_load_si512(tb.shift);
  const __m512i spread = _mm512_setr_epi64(0, 1, 0, 1, 2, 3, 2, 3);
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  // The lanes after the folds hold blocks [0 2 4 6 1 3 5 7]; the AVX2 kernel's are in order.
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t sb = 0; sb < n_super; ++sb) {
    const uint8_t* blk = row + 136 * sb;
    for (int l = 0; l < 3; ++l) {
      _mm_prefetch(reinterpret_cast<const char*>(blk + kDecodePrefetch + 64 * l), _MM_HINT_T0);
    }
    const __m256 sc8 = iq4_xs_scales(blk);
    const int8_t* x = aq + 256 * sb;
    __m512i s[4];
    for (int j = 0; j < 4; ++j) {  // sub-blocks 2j (lanes 0, 1) and 2j + 1 (lanes 2, 3)
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 8 + 32 * j));
      const __m512i v = _mm512_and_si512(
          _mm512_srlv_epi16(_mm512_permutexvar_epi64(spread, _mm512_castsi256_si512(q)), shift),
          m4);
      s[j] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_shuffle_epi8(book, v),
                                 _mm512_loadu_si512(x + 64 * j));
    }
    const __m256i sums = _mm256_permutevar8x32_epi32(fold4(s), order);
    // Minus 128 * the block's activation sum: the codebook came in offset by 128.
    const __m256i asum = _mm256_madd_epi16(
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(as16 + 16 * sb)), _mm256_set1_epi16(1));
    const __m256i isum = _mm256_sub_epi32(sums, _mm256_slli_epi32(asum, 7));
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum),
                          _mm256_mul_ps(sc8, _mm256_loadu_ps(ad + 8 * sb)), acc);
  }
  return reduce_lanes(acc, _mm256_setzero_ps());
}

}  // namespace

bool iq4_xs_decode_available() {
  static const bool yes = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bw") != 0 && __builtin_cpu_supports("avx512vl") != 0 &&
           __builtin_cpu_supports("avx512dq") != 0 && __builtin_cpu_supports("avx512vnni") != 0 &&
           __builtin_cpu_supports("fma") != 0 && __builtin_cpu_supports("avx2") != 0 &&
           cpu_has_f16c();
  }();
  return yes;
}

bool q2_3_k_decode_available() {
  static const bool yes = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bw") != 0 && __builtin_cpu_supports("avx512vl") != 0 &&
           __builtin_cpu_supports("avx512dq") != 0 && __builtin_cpu_supports("fma") != 0 &&
           __builtin_cpu_supports("avx2") != 0 && cpu_has_f16c();
  }();
  return yes;
}

bool low_bit_decode_rows(GgmlType type, const uint8_t* const* rows, int n_rows, const Int8Acts& a,
                         float* out) {
  if (!a.has_isum16 || a.n % 256 != 0) return false;
  if (type == GgmlType::IQ4_XS) {
    if (!iq4_xs_decode_available()) return false;
    const Iq4Tables& tb = iq4_tables();
    for (int r = 0; r < n_rows; ++r) out[r] = iq4_xs_row_dot(rows[r], a, tb);
    return true;
  }
  if ((type != GgmlType::Q2_K && type != GgmlType::Q3_K) || !q2_3_k_decode_available()) {
    return false;
  }
  const ScaleIndex& si = scale_index();
  for (int r = 0; r < n_rows; ++r) {
    out[r] = type == GgmlType::Q3_K ? row_dot<true>(rows[r], a, si) : row_dot<false>(rows[r], a, si);
  }
  return true;
}

}  // namespace nibble::int8_kernels
