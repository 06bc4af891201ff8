// Q4_0 with per-block integer sums on AVX2 + FMA + F16C (CPUs without AVX-512: most laptops and
// desktops), for decoding and for prompt batches alike, straight from the stored blocks.
//
// The lane-scaled kernels (ops/int8_dot.h) spend a convert, a multiply and an fma on every 8
// values; with 256-bit registers that left E2B Q4_0 compute-bound at ~25 GB/s (17-18 tokens/s on
// two Zen 5 cores, behind llama.cpp's AVX2 build). Q4_0 has one scale per block of 32, so the
// 32 products of a block can be summed as integers first, as llama.cpp does:
//   - one register holds the 16 nibble bytes of two adjacent blocks (a pair); its low nibbles
//     (values 0..15 of each block) and high ones (16..31) meet activations rearranged once per
//     token to match (Int8Acts::q4p: [a_b[0..15], a_b+1[0..15]] then [a_b[16..31], a_b+1[16..31]]);
//     the nibbles are vpmaddubsw's unsigned operand, the -8 comes back as -8 * sum(a) per block;
//   - two vpmaddubsw, one add (|sum| <= 4 * 15 * 127 fits int16) and one vpmaddwd give 4 int32
//     per block; three vphaddd fold a group of 8 blocks (4 pairs) into one sum per block, in lane
//     order [b0 b2 b4 b6 b1 b3 b5 b7];
//   - per group one convert, one multiply (weight scales times activation scales) and one fma.
// About 6 vector instructions per block where the lane-scaled kernel takes ~14. In a batch the
// nibbles of a pair are unpacked once for 4 tokens.
//
// The arithmetic (bit for bit; tests/ops carry an independent scalar version):
//   group g of 8 blocks, lane p holds block 8g + k with p = kLaneOf[k]:
//     acc[p] = fma(float(isum_b), d_w(b) * d_a(b), acc[p]) over the groups in order, isum_b the
//     exact integer sum of (q - 8) * a over the block;
//   r = ((s0+s4)+(s2+s6)) + ((s1+s5)+(s3+s7)) with s[j] = acc[j] + 0;
//   then the nb % 8 blocks left: r = fma(float(isum_b), d_w(b) * d_a(b), r) in order.
// A token's result is the same in a batch and alone (one kernel for both). It rounds differently
// from the lane-scaled kernels and from the AVX-512 block-sum kernel (~1e-7 relative).
#include <immintrin.h>

#include <cstring>

#include "ops/int8_dot_kernels.h"
#include "ops/int8_simd.h"
#include "util/cpu_features.h"
#include "util/fp16.h"

namespace nibble::int8_kernels {

namespace {

#define NIBBLE_AVX2_F16C __attribute__((target("avx2,fma,f16c")))

// Lane of block k (0..7) of a group after the three vphaddd.
constexpr int kLaneOf[8] = {0, 4, 1, 5, 2, 6, 3, 7};

// The 8 fp16 scales of a group (144 bytes, one every 18) in lane order, as floats. Copied with
// scalar moves (the integer ports are otherwise idle here), converted in one instruction.
NIBBLE_AVX2_F16C inline __m256 group_scales(const uint8_t* group) {
  alignas(16) uint16_t h[8];
  for (int k = 0; k < 8; ++k) std::memcpy(&h[kLaneOf[k]], group + 18 * k, 2);
  return _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(h)));
}

// A pair's 4 int32 sums per block (lanes 0..3 block 2j, 4..7 block 2j + 1) against 64 bytes of
// rearranged activations.
[[gnu::always_inline]] NIBBLE_AVX2_F16C inline __m256i pair_sums(__m256i lo, __m256i hi,
                                                                const int8_t* ap) {
  const __m256i p = _mm256_add_epi16(
      _mm256_maddubs_epi16(lo, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ap))),
      _mm256_maddubs_epi16(hi, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ap + 32))));
  return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

// The blocks past the last group of 8, in order.
inline float tail(const uint8_t* row, const Int8Acts& a, int64_t tok, float r) {
  const int64_t nb = a.n / 32;
  const int8_t* aq = a.q_of(tok);
  const float* ad = a.d_of(tok);
  for (int64_t b = nb / 8 * 8; b < nb; ++b) {
    const uint8_t* blk = row + 18 * b;
    uint16_t h;
    std::memcpy(&h, blk, 2);
    int32_t isum = 0;
    for (int i = 0; i < 16; ++i) {
      isum += ((blk[2 + i] & 0x0F) - 8) * int32_t{aq[32 * b + i]};
      isum += ((blk[2 + i] >> 4) - 8) * int32_t{aq[32 * b + 16 + i]};
    }
    r = __builtin_fmaf(static_cast<float>(isum), f16_to_f32(h) * ad[b], r);
  }
  return r;
}

// One row against T tokens (tok0..): out[t * ldo]. kPrefetch: decoding, the row streams from
// memory (a batch reads its rows from cache after the first tokens).
template <int T, bool kPrefetch>
NIBBLE_AVX2_F16C void row_tokens(const uint8_t* row, const Int8Acts& a, int64_t tok0, float* out,
                                 int64_t ldo) {
  const int64_t nb = a.n / 32, n_groups = nb / 8;
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const int8_t* ap[T];
  const int32_t* corr[T];
  const float* ad[T];
  __m256 acc[T];
  for (int t = 0; t < T; ++t) {
    ap[t] = a.q4p_of(tok0 + t);
    corr[t] = a.q4p_corr_of(tok0 + t);
    ad[t] = a.q4p_d_of(tok0 + t);
    acc[t] = _mm256_setzero_ps();
  }
  for (int64_t g = 0; g < n_groups; ++g) {
    const uint8_t* gp = row + 144 * g;
    if constexpr (kPrefetch) {
      for (int l = 0; l < 3; ++l) {
        _mm_prefetch(reinterpret_cast<const char*>(gp + kDecodePrefetch + 64 * l), _MM_HINT_T0);
      }
    }
    __m256i h01[T], h23[T];
    for (int j = 0; j < 4; ++j) {
      const uint8_t* pair = gp + 36 * j;
      const __m256i v = _mm256_inserti128_si256(
          _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(pair + 2))),
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(pair + 20)), 1);
      const __m256i lo = _mm256_and_si256(v, m4);
      const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
      for (int t = 0; t < T; ++t) {
        const __m256i s = pair_sums(lo, hi, ap[t] + 256 * g + 64 * j);
        if (j == 0) h01[t] = s;
        else if (j == 1) h01[t] = _mm256_hadd_epi32(h01[t], s);
        else if (j == 2) h23[t] = s;
        else h23[t] = _mm256_hadd_epi32(h23[t], s);
      }
    }
    const __m256 dw = group_scales(gp);
    for (int t = 0; t < T; ++t) {
      const __m256i isum = _mm256_add_epi32(
          _mm256_hadd_epi32(h01[t], h23[t]),
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(corr[t] + 8 * g)));
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum),
                               _mm256_mul_ps(dw, _mm256_loadu_ps(ad[t] + 8 * g)), acc[t]);
    }
  }
  for (int t = 0; t < T; ++t) {
    out[t * ldo] = tail(row, a, tok0 + t, reduce_lanes(acc[t], _mm256_setzero_ps()));
  }
}

}  // namespace

bool q4_0_pairs_available() {
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                          cpu_has_f16c();
  return yes;
}

void q4_0_pairs_dot(const uint8_t* const* rows, int n_rows, const Int8Acts& a, int64_t tok0,
                    int64_t n_tok, float* out, int64_t ldo) {
  if (n_tok == 1) {
    for (int r = 0; r < n_rows; ++r) row_tokens<1, true>(rows[r], a, tok0, out + r, ldo);
    return;
  }
  int64_t t = 0;
  for (; t + 4 <= n_tok; t += 4) {
    for (int r = 0; r < n_rows; ++r) row_tokens<4, false>(rows[r], a, tok0 + t, out + t * ldo + r, ldo);
  }
  const int64_t left = n_tok - t;
  for (int r = 0; r < n_rows; ++r) {
    float* o = out + t * ldo + r;
    if (left == 3) row_tokens<3, false>(rows[r], a, tok0 + t, o, ldo);
    else if (left == 2) row_tokens<2, false>(rows[r], a, tok0 + t, o, ldo);
    else if (left == 1) row_tokens<1, false>(rows[r], a, tok0 + t, o, ldo);
  }
}

}  // namespace nibble::int8_kernels
