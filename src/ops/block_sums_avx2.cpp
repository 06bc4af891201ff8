// Integer block sums on AVX2 + FMA + F16C (CPUs without AVX-512: most laptops and desktops):
// Q4_0, Q8_0, Q4_K, Q5_K, Q6_K, Q2_K, Q3_K and IQ4_XS rows against int8 activations, for decoding
// and for prompt batches alike, straight from the stored blocks (on AVX-512 CPUs too for decoding
// Q5_K, Q2_K, Q3_K and IQ4_XS, which have no AVX-512 decoder).
//
// The lane-scaled kernels (ops/int8_dot.h) spend a convert, a multiply and an fma on every 8
// values; with 256-bit registers that left E2B Q4_0 compute-bound at ~25 GB/s (17-18 tokens/s on
// two Zen 5 cores, behind llama.cpp's AVX2 build). These types have one scale per 32 weights
// (Q4_K, Q5_K: per sub-block of 32; Q6_K: two int8 scales per 32, folded in as integers), as the
// activations do, so the 32 products of a block can be summed as integers first, as llama.cpp
// does, and the float work is done once per 8 blocks:
//   - vpmaddubsw (unsigned x signed bytes) gives int16 pair sums; Q4_0 and Q4_K fold them in
//     int16 with three vphaddw (a lane never sums more than 16 products of 15 * 128: 30720),
//     Q8_0 and Q6_K widen with vpmaddwd (against ones, or Q6_K's scales) and fold with vphaddd;
//     where a register holds one block, a cross-lane add finishes: one int32 sum per block;
//   - per group of 8 blocks one convert, one multiply (weight scales times activation scales)
//     and one fma.
// Q4_0: one register holds the 16 nibble bytes of two adjacent blocks (a pair); its low nibbles
// (values 0..15 of each block) and high ones (16..31) meet activations rearranged once per token
// to match (Int8Acts::q4p: [a_b[0..15], a_b+1[0..15]] then [a_b[16..31], a_b+1[16..31]]); the
// nibbles are the unsigned operand and the -8 comes back as -8 * sum(a) per block; two
// vpmaddubsw add up in int16 (|sum| <= 4 * 15 * 127). Lane order after the folds:
// [b0 b2 b4 b6 b1 b3 b5 b7]. About 6 vector instructions per block (the lane-scaled kernel: ~14).
// Q8_0: one block per register, with the sign trick (|w| unsigned, a times sign(w)); blocks in
// order. Q4_K: a super-block is a group (its 32-byte loads hold sub-blocks 2k and 2k + 1 in the
// low and high nibbles); the 6-bit scales times d are the weight scales, the minimums the offset
// term (dmin * m per 16 values against Int8Acts::sum16) accumulates in the same lanes. Q5_K: as
// Q4_K with each value's fifth bit from qh (bit j of byte l: value l of sub-block j) moved to
// bit 4; its sums stop in int16 after two vphaddw (31 * 128 per product). Q6_K: a
// super-block is a group; the 6-bit values are the unsigned operand (q + 32), each 16-value
// half's int8 scale multiplies in vpmaddwd, and the -32 comes back as one vpmaddwd of the 16
// scales against the activations' integer sums per 16 (Int8Acts::isum16); d is the weight
// scale. Q2_K and Q3_K: as Q6_K with 2-bit values (Q3_K: plus hmask's bit as bit 2, and -4 where
// Q6_K has -32); Q2_K's minimums are a vpmaddwd of the 4-bit mins against isum16, in a second fma
// with -dmin. IQ4_XS: the codebook lookup is one vpshufb, the signed values meet the activations
// with Q8_0's sign trick, the 6-bit scales are float lane scales (d * (ls - 32)).
// In a batch each half group's weights are unpacked once for a tile of 8 tokens.
//
// The arithmetic (bit for bit; tests/ops carry independent scalar versions):
//   group g of 8 blocks (K types: super-block g, its sub-blocks), lane p holds block 8g + k with
//   p = k (Q8_0, K types) or p = {0,4,1,5,2,6,3,7}[k] (Q4_0):
//     acc[p] = fma(float(isum_b), w_b * d_a(b), acc[p]) over the groups in order, isum_b the exact
//     integer sum of q * a over the block (Q4_0: q - 8; Q4_K, Q5_K: the 4- or 5-bit value; Q6_K:
//     scale * (q - 32) with each 16 values' scale; Q2_K: (sc & 15) * q; Q3_K: (s - 32) * (u - 4);
//     IQ4_XS: the codebook value), w_b the weight scale (Q4_0, Q8_0, Q6_K, Q2_K, Q3_K: the fp16
//     d; Q4_K, Q5_K: d * float(scale_k); IQ4_XS: d * float(ls - 32));
//   Q2_K: after each block's main term, acc[p] = fma(float(sum over its two 16s of (sc >> 4) *
//     sum(a)), -dmin * d_a(b), acc[p]);
//   r = ((s0+s4)+(s2+s6)) + ((s1+s5)+(s3+s7)) with s[j] = acc[j] + 0;
//   Q4_K, Q5_K: after each super-block's main term, its offsets in the same lanes: acc[l] =
//     fma(-(dmin * m_(l/2)), sum16[16g + l], acc[l]), then fma(-(dmin * m_(4+l/2)), sum16[16g + 8 + l]);
//   then the nb % 8 blocks left (Q4_0, Q8_0): r = fma(float(isum_b), w_b * d_a(b), r) in order.
// On AVX2 a token's result is the same in a batch and alone (one kernel for both). It rounds
// differently from the lane-scaled kernels and from the AVX-512 block-sum kernel (~1e-7
// relative).
#include <immintrin.h>

#include <cstring>

#include "ops/int8_dot_kernels.h"
#include "ops/int8_simd.h"
#include "quant/blocks.h"
#include "util/cpu_features.h"
#include "util/fp16.h"

namespace nibble::int8_kernels {

namespace {

#define NIBBLE_AVX2_F16C __attribute__((target("avx2,fma,f16c")))

// 8 fp16 scales, one every `stride` bytes, to the lanes lane_of[k], as floats. Copied with
// scalar moves (the integer ports are otherwise idle here), converted in one instruction.
NIBBLE_AVX2_F16C inline __m256 gather_scales(const uint8_t* first, int stride,
                                             const int lane_of[8]) {
  alignas(16) uint16_t h[8];
  for (int k = 0; k < 8; ++k) std::memcpy(&h[lane_of[k]], first + stride * k, 2);
  return _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(h)));
}

NIBBLE_AVX2_F16C inline __m256i load256(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}

// 8 int32: the 16 int16 of p summed in pairs.
[[gnu::always_inline]] NIBBLE_AVX2_F16C inline __m256i widen(__m256i p) {
  return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

// Registers x0..x3 of 8 int32 each, one block per register: hadd(hadd(x0, x1), hadd(x2, x3)) has
// lanes [x0 x1 x2 x3] (first halves' sums) | [x0 x1 x2 x3] (second halves'). Two such, for blocks
// 0..3 and 4..7, give the 8 block sums in order.
[[gnu::always_inline]] NIBBLE_AVX2_F16C inline __m256i fold_halves(__m256i h0, __m256i h1) {
  return _mm256_add_epi32(_mm256_permute2x128_si256(h0, h1, 0x20),
                          _mm256_permute2x128_si256(h0, h1, 0x31));
}

// Prefetches `bytes` of the stream `ahead` bytes on (decoding: the rows stream from memory).
template <int kBytes>
inline void prefetch_ahead(const uint8_t* p) {
  for (int o = 0; o < kBytes; o += 64) {
    _mm_prefetch(reinterpret_cast<const char*>(p + kDecodePrefetch + o), _MM_HINT_T0);
  }
}

// Q4_0 and Q8_0: the blocks past the last group of 8, in order.
template <GgmlType kType>
inline float tail(const uint8_t* row, const Int8Acts& a, int64_t tok, float r) {
  const int64_t nb = a.n / 32;
  const int8_t* aq = a.q_of(tok);
  const float* ad = a.d_of(tok);
  for (int64_t b = nb / 8 * 8; b < nb; ++b) {
    const int8_t* x = aq + 32 * b;
    int32_t isum = 0;
    uint16_t h;
    if constexpr (kType == GgmlType::Q4_0) {
      const uint8_t* blk = row + 18 * b;
      std::memcpy(&h, blk, 2);
      for (int i = 0; i < 16; ++i) {
        isum += ((blk[2 + i] & 0x0F) - 8) * int32_t{x[i]};
        isum += ((blk[2 + i] >> 4) - 8) * int32_t{x[16 + i]};
      }
    } else {
      const uint8_t* blk = row + 34 * b;
      std::memcpy(&h, blk, 2);
      for (int i = 0; i < 32; ++i) isum += int32_t{static_cast<int8_t>(blk[2 + i])} * x[i];
    }
    r = __builtin_fmaf(static_cast<float>(isum), f16_to_f32(h) * ad[b], r);
  }
  return r;
}

// ---- Q4_0 ----------------------------------------------------------------------------------

// A pair's 8 int16 sums (of 4 products) per block (128-bit lane 0 block 2j, lane 1 block 2j + 1)
// against 64 bytes of rearranged activations.
[[gnu::always_inline]] NIBBLE_AVX2_F16C inline __m256i q4_pair_sums(__m256i lo, __m256i hi,
                                                                   const int8_t* ap) {
  return _mm256_add_epi16(_mm256_maddubs_epi16(lo, load256(ap)),
                          _mm256_maddubs_epi16(hi, load256(ap + 32)));
}

// One row against T tokens (tok0..): out[t * ldo].
template <int T, bool kPrefetch>
NIBBLE_AVX2_F16C void q4_0_row(const uint8_t* row, const Int8Acts& a, int64_t tok0, float* out,
                               int64_t ldo) {
  const int64_t n_groups = a.n / 256;
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
    if constexpr (kPrefetch) prefetch_ahead<192>(gp);
    // The group's nibbles, unpacked once for the T tokens.
    __m256i lo[4], hi[4];
    for (int j = 0; j < 4; ++j) {
      const uint8_t* pair = gp + 36 * j;
      const __m256i v = _mm256_inserti128_si256(
          _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(pair + 2))),
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(pair + 20)), 1);
      lo[j] = _mm256_and_si256(v, m4);
      hi[j] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
    }
    const __m256 dw = gather_scales(gp, 18, kQ4PairLane);
    for (int t = 0; t < T; ++t) {
      // In int16: a lane sums at most 16 products of 15 * 127 (30480).
      const int8_t* x = ap[t] + 256 * g;
      const __m256i h01 =
          _mm256_hadd_epi16(q4_pair_sums(lo[0], hi[0], x), q4_pair_sums(lo[1], hi[1], x + 64));
      const __m256i h23 = _mm256_hadd_epi16(q4_pair_sums(lo[2], hi[2], x + 128),
                                            q4_pair_sums(lo[3], hi[3], x + 192));
      const __m256i isum =
          _mm256_add_epi32(widen(_mm256_hadd_epi16(h01, h23)), load256(corr[t] + 8 * g));
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum),
                               _mm256_mul_ps(dw, _mm256_loadu_ps(ad[t] + 8 * g)), acc[t]);
    }
  }
  for (int t = 0; t < T; ++t) {
    out[t * ldo] =
        tail<GgmlType::Q4_0>(row, a, tok0 + t, reduce_lanes(acc[t], _mm256_setzero_ps()));
  }
}

// ---- Q8_0 ----------------------------------------------------------------------------------

constexpr int kInOrder[8] = {0, 1, 2, 3, 4, 5, 6, 7};

template <int T, bool kPrefetch>
NIBBLE_AVX2_F16C void q8_0_row(const uint8_t* row, const Int8Acts& a, int64_t tok0, float* out,
                               int64_t ldo) {
  const int64_t n_groups = a.n / 256;
  const int8_t* aq[T];
  const float* ad[T];
  __m256 acc[T];
  for (int t = 0; t < T; ++t) {
    aq[t] = a.q_of(tok0 + t);
    ad[t] = a.d_of(tok0 + t);
    acc[t] = _mm256_setzero_ps();
  }
  for (int64_t g = 0; g < n_groups; ++g) {
    const uint8_t* gp = row + 272 * g;
    if constexpr (kPrefetch) prefetch_ahead<320>(gp);
    // Each half's 4 weight blocks and their magnitudes, loaded once for the T tokens.
    __m256i hs[2][T];
    for (int h = 0; h < 2; ++h) {
      __m256i w[4], aw[4];
      for (int k = 0; k < 4; ++k) {
        w[k] = load256(gp + 34 * (4 * h + k) + 2);
        aw[k] = _mm256_abs_epi8(w[k]);
      }
      for (int t = 0; t < T; ++t) {
        const int8_t* x = aq[t] + 256 * g + 128 * h;
        __m256i s[4];
        for (int k = 0; k < 4; ++k) {
          s[k] = widen(_mm256_maddubs_epi16(aw[k], _mm256_sign_epi8(load256(x + 32 * k), w[k])));
        }
        hs[h][t] = _mm256_hadd_epi32(_mm256_hadd_epi32(s[0], s[1]), _mm256_hadd_epi32(s[2], s[3]));
      }
    }
    const __m256 dw = gather_scales(gp, 34, kInOrder);
    for (int t = 0; t < T; ++t) {
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(fold_halves(hs[0][t], hs[1][t])),
                               _mm256_mul_ps(dw, _mm256_loadu_ps(ad[t] + 8 * g)), acc[t]);
    }
  }
  for (int t = 0; t < T; ++t) {
    out[t * ldo] =
        tail<GgmlType::Q8_0>(row, a, tok0 + t, reduce_lanes(acc[t], _mm256_setzero_ps()));
  }
}

// ---- Q4_K ----------------------------------------------------------------------------------

// Q4_K, and Q5_K (kQ5: the same with a fifth bit per value from qh, bit j of byte l for value l of
// sub-block j; 176-byte super-blocks).
template <int T, bool kPrefetch, bool kQ5>
NIBBLE_AVX2_F16C void q4_k_row(const uint8_t* row, const Int8Acts& a, int64_t tok0, float* out,
                               int64_t ldo) {
  constexpr int kBytes = kQ5 ? 176 : 144, kQs = kQ5 ? 48 : 16;
  const int64_t n_super = a.n / 256;
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const int8_t* aq[T];
  const float* ad[T];
  const float* s16[T];
  __m256 acc[T];
  for (int t = 0; t < T; ++t) {
    aq[t] = a.q_of(tok0 + t);
    ad[t] = a.d_of(tok0 + t);
    s16[t] = a.sum16_of(tok0 + t);
    acc[t] = _mm256_setzero_ps();
  }
  for (int64_t sb = 0; sb < n_super; ++sb) {
    const uint8_t* blk = row + kBytes * sb;
    if constexpr (kPrefetch) prefetch_ahead<kQ5 ? 192 + 64 : 192>(blk);
    // The 6-bit scales (bytes 0..7 of u) and minimums (bytes 8..15).
    uint8_t u[16];
    k4_scales_mins(blk + 4, u);
    const __m128i sm = _mm_loadu_si128(reinterpret_cast<const __m128i*>(u));
    int32_t dm;  // d and dmin
    std::memcpy(&dm, blk, 4);
    const __m128 dmf = _mm_cvtph_ps(_mm_cvtsi32_si128(dm));
    const __m256 sc8 = _mm256_mul_ps(_mm256_broadcastss_ps(dmf),
                                     _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(sm)));
    const __m256 mn8 = _mm256_xor_ps(
        _mm256_mul_ps(_mm256_broadcastss_ps(_mm_movehdup_ps(dmf)),
                      _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(sm, 8)))),
        sign);
    // Offsets per 16 values: -(dmin * m) twice per sub-block, in two chunks of 8 groups, into
    // the same lanes after the super-block's main term.
    const __m256 mlo =
        _mm256_permutevar8x32_ps(mn8, _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3));
    const __m256 mhi =
        _mm256_permutevar8x32_ps(mn8, _mm256_setr_epi32(4, 4, 5, 5, 6, 6, 7, 7));
    // Q4_K in int16 (a lane sums at most 16 products of 15 * 128: 30720): per 128-bit lane,
    // after three vphaddw, the 8 sub-blocks' sums over values 0..15 (lane 0) and 16..31 (lane 1).
    // Q5_K (31 * 128 per product) stops after two and widens.
    __m256i lo[4], hi[4];  // sub-blocks 2k (low nibbles) and 2k + 1 (high), once for T tokens
    for (int k = 0; k < 4; ++k) {
      const __m256i v = load256(blk + kQs + 32 * k);
      lo[k] = _mm256_and_si256(v, m4);
      hi[k] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
      if constexpr (kQ5) {  // bit 2k (2k + 1) of each qh byte to bit 4
        const __m256i qh = load256(blk + 16), b4 = _mm256_set1_epi8(0x10);
        const __m256i h0 = k == 0 ? _mm256_slli_epi16(qh, 4)
                           : k == 1 ? _mm256_slli_epi16(qh, 2)
                           : k == 2 ? qh
                                    : _mm256_srli_epi16(qh, 2);
        const __m256i h1 = k == 0 ? _mm256_slli_epi16(qh, 3)
                           : k == 1 ? _mm256_slli_epi16(qh, 1)
                           : k == 2 ? _mm256_srli_epi16(qh, 1)
                                    : _mm256_srli_epi16(qh, 3);
        lo[k] = _mm256_or_si256(lo[k], _mm256_and_si256(h0, b4));
        hi[k] = _mm256_or_si256(hi[k], _mm256_and_si256(h1, b4));
      }
    }
    for (int t = 0; t < T; ++t) {
      const int8_t* x = aq[t] + 256 * sb;
      __m256i s[4];
      for (int k = 0; k < 4; ++k) {
        s[k] = _mm256_hadd_epi16(_mm256_maddubs_epi16(lo[k], load256(x + 64 * k)),
                                 _mm256_maddubs_epi16(hi[k], load256(x + 64 * k + 32)));
      }
      __m256i isum;
      if constexpr (kQ5) {
        isum = fold_halves(widen(_mm256_hadd_epi16(s[0], s[1])), widen(_mm256_hadd_epi16(s[2], s[3])));
      } else {
        const __m256i z =
            _mm256_hadd_epi16(_mm256_hadd_epi16(s[0], s[1]), _mm256_hadd_epi16(s[2], s[3]));
        isum = _mm256_add_epi32(_mm256_cvtepi16_epi32(_mm256_castsi256_si128(z)),
                                _mm256_cvtepi16_epi32(_mm256_extracti128_si256(z, 1)));
      }
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum),
                               _mm256_mul_ps(sc8, _mm256_loadu_ps(ad[t] + 8 * sb)), acc[t]);
      acc[t] = _mm256_fmadd_ps(mlo, _mm256_loadu_ps(s16[t] + 16 * sb), acc[t]);
      acc[t] = _mm256_fmadd_ps(mhi, _mm256_loadu_ps(s16[t] + 16 * sb + 8), acc[t]);
    }
  }
  for (int t = 0; t < T; ++t) {
    out[t * ldo] = reduce_lanes(acc[t], _mm256_setzero_ps());
  }
}

// ---- Q6_K ----------------------------------------------------------------------------------

// Word pairs for vpshufb: 128-bit lane 0 gets word j of its source lane 8 times, lane 1 word j + 1.
struct ScaleShuffles {
  alignas(32) uint8_t ctrl[4][32];
  ScaleShuffles() {
    for (int i = 0; i < 4; ++i) {
      for (int k = 0; k < 8; ++k) {
        ctrl[i][2 * k] = static_cast<uint8_t>(4 * i);
        ctrl[i][2 * k + 1] = static_cast<uint8_t>(4 * i + 1);
        ctrl[i][16 + 2 * k] = static_cast<uint8_t>(4 * i + 2);
        ctrl[i][16 + 2 * k + 1] = static_cast<uint8_t>(4 * i + 3);
      }
    }
  }
};

const ScaleShuffles& scale_shuffles() {
  static const ScaleShuffles s;
  return s;
}

// The int16 scales of half h's 4 blocks (each block's two 16s, one per 128-bit lane) from a
// super-block's 16 scales per 16 values.
NIBBLE_AVX2_F16C inline void half_scales(__m256i sc16, int h, const ScaleShuffles& sh,
                                         __m256i s16[4]) {
  // Scales 8h..8h+7 in both lanes, then word pairs per block.
  const __m256i xs = h == 0 ? _mm256_permute2x128_si256(sc16, sc16, 0x00)
                            : _mm256_permute2x128_si256(sc16, sc16, 0x11);
  for (int c = 0; c < 4; ++c) s16[c] = _mm256_shuffle_epi8(xs, load256(sh.ctrl[c]));
}

// 4 blocks of unsigned values u against the activations x, each 16 values times its scale, summed
// per 128-bit lane: [b0 b1 b2 b3] (first 16s' sums) | [b0 b1 b2 b3] (second 16s'), for
// fold_halves.
[[gnu::always_inline]] NIBBLE_AVX2_F16C inline __m256i scaled_half_sums(const __m256i u[4],
                                                                       const __m256i s16[4],
                                                                       const int8_t* x) {
  __m256i s[4];
  for (int c = 0; c < 4; ++c) {
    s[c] = _mm256_madd_epi16(_mm256_maddubs_epi16(u[c], load256(x + 32 * c)), s16[c]);
  }
  return _mm256_hadd_epi32(_mm256_hadd_epi32(s[0], s[1]), _mm256_hadd_epi32(s[2], s[3]));
}

template <int T, bool kPrefetch>
NIBBLE_AVX2_F16C void q6_k_row(const uint8_t* row, const Int8Acts& a, int64_t tok0, float* out,
                               int64_t ldo) {
  const int64_t n_super = a.n / 256;
  const __m256i m0f = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
  const ScaleShuffles& sh = scale_shuffles();
  const int8_t* aq[T];
  const int16_t* as16[T];
  const float* ad[T];
  __m256 acc[T];
  for (int t = 0; t < T; ++t) {
    aq[t] = a.q_of(tok0 + t);
    as16[t] = a.isum16_of(tok0 + t);
    ad[t] = a.d_of(tok0 + t);
    acc[t] = _mm256_setzero_ps();
  }
  for (int64_t sb = 0; sb < n_super; ++sb) {
    const uint8_t* blk = row + 210 * sb;
    if constexpr (kPrefetch) prefetch_ahead<256>(blk);
    const __m128i sc8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 192));
    const __m256i sc16 = _mm256_cvtepi8_epi16(sc8);
    // Per 128-value half h (ql[64h..], qh[32h..]; blocks 4h..4h+3): the blocks' unsigned values
    // (q + 32, 0..63) in order and the int16 scales of their two 16-value halves, one per
    // 128-bit lane, made once for the T tokens.
    __m256i hs[2][T];
    for (int h = 0; h < 2; ++h) {
      const __m256i ql0 = load256(blk + 64 * h);
      const __m256i ql1 = load256(blk + 64 * h + 32);
      const __m256i qh = load256(blk + 128 + 32 * h);
      const __m256i u[4] = {
          _mm256_or_si256(_mm256_and_si256(ql0, m0f), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30)),
          _mm256_or_si256(_mm256_and_si256(ql1, m0f), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m0f), _mm256_and_si256(qh, m30)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m0f),
                          _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30))};
      __m256i s16[4];
      half_scales(sc16, h, sh, s16);
      for (int t = 0; t < T; ++t) hs[h][t] = scaled_half_sums(u, s16, aq[t] + 256 * sb + 128 * h);
    }
    uint16_t dh;
    std::memcpy(&dh, blk + 208, 2);
    const __m256 d = _mm256_set1_ps(_cvtsh_ss(dh));
    for (int t = 0; t < T; ++t) {
      // -32 * (scale * sum of a) per 16 values, summed per block: the offset of q = u - 32.
      const __m256i m = _mm256_madd_epi16(sc16, load256(as16[t] + 16 * sb));
      const __m256i isum =
          _mm256_sub_epi32(fold_halves(hs[0][t], hs[1][t]), _mm256_slli_epi32(m, 5));
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum),
                               _mm256_mul_ps(d, _mm256_loadu_ps(ad[t] + 8 * sb)), acc[t]);
    }
  }
  for (int t = 0; t < T; ++t) out[t * ldo] = reduce_lanes(acc[t], _mm256_setzero_ps());
}

// ---- Q2_K and Q3_K -------------------------------------------------------------------------

// Q2_K (kQ3 false): 84-byte super-blocks, value = d * (sc & 15) * q - dmin * (sc >> 4) per 16
// values, q the 2 bits of qs[32h + i] at shift 2c for value 128h + 32c + i. Q3_K (kQ3): 110 bytes,
// value = d * (s - 32) * (u - 4) with u = those 2 bits | bit 4h + c of hmask[i] as bit 2, s the
// 6-bit scale per 16 values. The unsigned values meet the activations in vpmaddubsw, the int16
// scales of each 16 in vpmaddwd (as Q6_K); Q3_K's -4 is one vpmaddwd of the scales against the
// activations' integer sums per 16 (Int8Acts::isum16), Q2_K's minimums are the same product with
// the 4-bit mins, scaled by -dmin in a second fma.
template <int T, bool kPrefetch, bool kQ3>
NIBBLE_AVX2_F16C void q2_3_k_row(const uint8_t* row, const Int8Acts& a, int64_t tok0, float* out,
                                 int64_t ldo) {
  constexpr int kBytes = kQ3 ? 110 : 84, kQs = kQ3 ? 32 : 16;
  const int64_t n_super = a.n / 256;
  const __m256i m3 = _mm256_set1_epi8(3);
  const ScaleShuffles& sh = scale_shuffles();
  const int8_t* aq[T];
  const int16_t* as16[T];
  const float* ad[T];
  __m256 acc[T];
  for (int t = 0; t < T; ++t) {
    aq[t] = a.q_of(tok0 + t);
    as16[t] = a.isum16_of(tok0 + t);
    ad[t] = a.d_of(tok0 + t);
    acc[t] = _mm256_setzero_ps();
  }
  for (int64_t sb = 0; sb < n_super; ++sb) {
    const uint8_t* blk = row + kBytes * sb;
    if constexpr (kPrefetch) prefetch_ahead<128>(blk);
    __m256i sc16, mn16;
    q2_3_k_scales_mins<kQ3>(blk, &sc16, &mn16);
    const __m256i hm = kQ3 ? load256(blk) : _mm256_setzero_si256();  // Q3_K's high bits
    __m256i hs[2][T];
    for (int h = 0; h < 2; ++h) {
      const __m256i q = load256(blk + kQs + 32 * h);
      __m256i u[4] = {_mm256_and_si256(q, m3), _mm256_and_si256(_mm256_srli_epi16(q, 2), m3),
                      _mm256_and_si256(_mm256_srli_epi16(q, 4), m3),
                      _mm256_and_si256(_mm256_srli_epi16(q, 6), m3)};
      if constexpr (kQ3) {  // bit 4h + c of each hmask byte to bit 2
        const __m256i b2 = _mm256_set1_epi8(0x04);
        if (h == 0) {
          u[0] = _mm256_or_si256(u[0], _mm256_and_si256(_mm256_slli_epi16(hm, 2), b2));
          u[1] = _mm256_or_si256(u[1], _mm256_and_si256(_mm256_slli_epi16(hm, 1), b2));
          u[2] = _mm256_or_si256(u[2], _mm256_and_si256(hm, b2));
          u[3] = _mm256_or_si256(u[3], _mm256_and_si256(_mm256_srli_epi16(hm, 1), b2));
        } else {
          u[0] = _mm256_or_si256(u[0], _mm256_and_si256(_mm256_srli_epi16(hm, 2), b2));
          u[1] = _mm256_or_si256(u[1], _mm256_and_si256(_mm256_srli_epi16(hm, 3), b2));
          u[2] = _mm256_or_si256(u[2], _mm256_and_si256(_mm256_srli_epi16(hm, 4), b2));
          u[3] = _mm256_or_si256(u[3], _mm256_and_si256(_mm256_srli_epi16(hm, 5), b2));
        }
      }
      __m256i s16[4];
      half_scales(sc16, h, sh, s16);
      for (int t = 0; t < T; ++t) hs[h][t] = scaled_half_sums(u, s16, aq[t] + 256 * sb + 128 * h);
    }
    for (int t = 0; t < T; ++t) {
      // Per block: the scales (Q2_K: minimums) times the activation sums of its two 16s.
      const __m256i m = _mm256_madd_epi16(mn16, load256(as16[t] + 16 * sb));
      acc[t] = q2_3_k_accumulate<kQ3>(blk, fold_halves(hs[0][t], hs[1][t]), m,
                                      _mm256_loadu_ps(ad[t] + 8 * sb), acc[t]);
    }
  }
  for (int t = 0; t < T; ++t) out[t * ldo] = reduce_lanes(acc[t], _mm256_setzero_ps());
}

// ---- IQ4_XS --------------------------------------------------------------------------------

// 136-byte super-blocks of 8 sub-blocks of 32: a 6-bit scale ls each (value d * (ls - 32) *
// kIq4nlValues[nibble]); sub-block ib's 16 bytes hold values 0..15 in the low nibbles, 16..31 in
// the high ones. The codebook lookup is one vpshufb; the signed values meet the activations with
// the sign trick (as Q8_0); the scales are float lane scales, once per super-block.
template <int T, bool kPrefetch>
NIBBLE_AVX2_F16C void iq4_xs_row(const uint8_t* row, const Int8Acts& a, int64_t tok0, float* out,
                                 int64_t ldo) {
  const int64_t n_super = a.n / 256;
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const __m256i book = _mm256_broadcastsi128_si256(
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4nlValues)));
  const int8_t* aq[T];
  const float* ad[T];
  __m256 acc[T];
  for (int t = 0; t < T; ++t) {
    aq[t] = a.q_of(tok0 + t);
    ad[t] = a.d_of(tok0 + t);
    acc[t] = _mm256_setzero_ps();
  }
  for (int64_t sb = 0; sb < n_super; ++sb) {
    const uint8_t* blk = row + 136 * sb;
    if constexpr (kPrefetch) prefetch_ahead<192>(blk);
    const __m256 sc8 = iq4_xs_scales(blk);
    __m256i hs[2][T];
    for (int h = 0; h < 2; ++h) {
      __m256i w[4], aw[4];
      for (int k = 0; k < 4; ++k) {
        const __m128i q =
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 8 + 16 * (4 * h + k)));
        const __m256i v = _mm256_and_si256(
            _mm256_inserti128_si256(_mm256_castsi128_si256(q), _mm_srli_epi16(q, 4), 1), m4);
        w[k] = _mm256_shuffle_epi8(book, v);
        aw[k] = _mm256_abs_epi8(w[k]);
      }
      for (int t = 0; t < T; ++t) {
        const int8_t* x = aq[t] + 256 * sb + 128 * h;
        __m256i s[4];
        for (int k = 0; k < 4; ++k) {
          s[k] = widen(_mm256_maddubs_epi16(aw[k], _mm256_sign_epi8(load256(x + 32 * k), w[k])));
        }
        hs[h][t] = _mm256_hadd_epi32(_mm256_hadd_epi32(s[0], s[1]), _mm256_hadd_epi32(s[2], s[3]));
      }
    }
    for (int t = 0; t < T; ++t) {
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(fold_halves(hs[0][t], hs[1][t])),
                               _mm256_mul_ps(sc8, _mm256_loadu_ps(ad[t] + 8 * sb)), acc[t]);
    }
  }
  for (int t = 0; t < T; ++t) out[t * ldo] = reduce_lanes(acc[t], _mm256_setzero_ps());
}

// ---- rows x tokens -------------------------------------------------------------------------

template <template <int, bool> class K, int kTile>
void rows_tokens(const uint8_t* const* rows, int n_rows, const Int8Acts& a, int64_t tok0,
                 int64_t n_tok, float* out, int64_t ldo) {
  if (n_tok == 1) {
    for (int r = 0; r < n_rows; ++r) K<1, true>::run(rows[r], a, tok0, out + r, ldo);
    return;
  }
  int64_t t = 0;
  for (; t + kTile <= n_tok; t += kTile) {
    for (int r = 0; r < n_rows; ++r) K<kTile, false>::run(rows[r], a, tok0 + t, out + t * ldo + r, ldo);
  }
  if constexpr (kTile > 4) {
    for (; t + 4 <= n_tok; t += 4) {
      for (int r = 0; r < n_rows; ++r) K<4, false>::run(rows[r], a, tok0 + t, out + t * ldo + r, ldo);
    }
  }
  const int64_t left = n_tok - t;
  for (int r = 0; r < n_rows; ++r) {
    float* o = out + t * ldo + r;
    if (left == 3) K<3, false>::run(rows[r], a, tok0 + t, o, ldo);
    else if (left == 2) K<2, false>::run(rows[r], a, tok0 + t, o, ldo);
    else if (left == 1) K<1, false>::run(rows[r], a, tok0 + t, o, ldo);
  }
}

// rows_tokens' adapters: Name<T, P>::run calls the row kernel for T tokens, prefetching or not.
#define NIBBLE_ROW_KERNEL(Name, ...)                                                       \
  template <int T, bool P>                                                                 \
  struct Name {                                                                            \
    static void run(const uint8_t* r, const Int8Acts& a, int64_t t, float* o, int64_t l) { \
      __VA_ARGS__(r, a, t, o, l);                                                          \
    }                                                                                      \
  };
NIBBLE_ROW_KERNEL(Q4_0Kernel, q4_0_row<T, P>)
NIBBLE_ROW_KERNEL(Q8_0Kernel, q8_0_row<T, P>)
NIBBLE_ROW_KERNEL(Q6_KKernel, q6_k_row<T, P>)
NIBBLE_ROW_KERNEL(Q4_KKernel, q4_k_row<T, P, false>)
NIBBLE_ROW_KERNEL(Q5_KKernel, q4_k_row<T, P, true>)
NIBBLE_ROW_KERNEL(Q2_KKernel, q2_3_k_row<T, P, false>)
NIBBLE_ROW_KERNEL(Q3_KKernel, q2_3_k_row<T, P, true>)
NIBBLE_ROW_KERNEL(IQ4_XSKernel, iq4_xs_row<T, P>)
#undef NIBBLE_ROW_KERNEL

}  // namespace

bool block_sums_available() {
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                          cpu_has_f16c();
  return yes;
}

bool block_sums_dot_avx2(GgmlType type, const uint8_t* const* rows, int n_rows, const Int8Acts& a,
                         int64_t tok0, int64_t n_tok, float* out, int64_t ldo) {
  switch (type) {
    case GgmlType::Q4_0:
      if (!a.has_q4_0_pair_terms) return false;
      rows_tokens<Q4_0Kernel, 8>(rows, n_rows, a, tok0, n_tok, out, ldo);
      return true;
    case GgmlType::Q8_0:
      rows_tokens<Q8_0Kernel, 8>(rows, n_rows, a, tok0, n_tok, out, ldo);
      return true;
    case GgmlType::Q4_K:
      if (!a.has_sums || a.n % 256 != 0) return false;
      rows_tokens<Q4_KKernel, 8>(rows, n_rows, a, tok0, n_tok, out, ldo);
      return true;
    case GgmlType::Q5_K:
      if (!a.has_sums || a.n % 256 != 0) return false;
      rows_tokens<Q5_KKernel, 8>(rows, n_rows, a, tok0, n_tok, out, ldo);
      return true;
    case GgmlType::Q6_K:
      if (!a.has_isum16 || a.n % 256 != 0) return false;
      rows_tokens<Q6_KKernel, 8>(rows, n_rows, a, tok0, n_tok, out, ldo);
      return true;
    case GgmlType::Q2_K:
      if (!a.has_isum16 || a.n % 256 != 0) return false;
      rows_tokens<Q2_KKernel, 8>(rows, n_rows, a, tok0, n_tok, out, ldo);
      return true;
    case GgmlType::Q3_K:
      if (!a.has_isum16 || a.n % 256 != 0) return false;
      rows_tokens<Q3_KKernel, 8>(rows, n_rows, a, tok0, n_tok, out, ldo);
      return true;
    case GgmlType::IQ4_XS:
      if (a.n % 256 != 0) return false;
      rows_tokens<IQ4_XSKernel, 8>(rows, n_rows, a, tok0, n_tok, out, ldo);
      return true;
    default: return false;
  }
}

}  // namespace nibble::int8_kernels
