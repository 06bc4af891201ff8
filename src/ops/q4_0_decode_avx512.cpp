// Q4_0 decoding with per-block integer sums (AVX-512 VBMI + VNNI + GFNI): the fast path of the most
// common 4-bit type, about twice the throughput of the lane-scaled kernel (ops/int8_dot.h).
//
// Q4_0 has one scale per block of 32, so a block's 32 products can be summed as integers before
// any float work, as llama.cpp does. A chunk of 16 blocks (288 bytes) is read with four plain
// 64-byte loads and one 32-byte load, each line once and in order: masked loads, which would
// fit the 18-byte blocks more neatly, do not train the hardware prefetcher and stream from DRAM
// at less than half the speed (30 against 72 GB/s on two Zen 5 cores). Group m of 4 blocks
// (72 bytes at 72m) lies within loads m and m + 1, so one vpermt2b per group gathers its
// 4 x 16 nibble bytes; the low nibbles (values 0..15 of each block; one and) and the high ones
// (16..31; one gf2p8affineqb shifts every byte right by 4) meet activations rearranged once per token (Int8Acts::q4_lohi) in two vpdpbusd. Four groups
// reduce to one sum per block with 9 unpack/add instructions, plus -8 * sum(a) per block
// (q4_bcorr) to turn the unsigned nibbles into q - 8; the 16 fp16 weight scales come from the
// loaded registers with three merge-masked vpermi2w; then one convert, one multiply and one fma per chunk.
// A last partial chunk (fewer than 4 groups) ends with one masked load that stays inside the row.
//
// The arithmetic (bit for bit; tests/ops carry an independent scalar version):
//   chunk c of 16 blocks (a last partial chunk is padded with zero blocks), lane p = 4k + m holds
//   block 16c + 4m + k: acc[p] = fma(float(isum), d_w * d_a, acc[p]) over the chunks in order;
//   r = ((s0+s4)+(s2+s6)) + ((s1+s5)+(s3+s7)) with s[j] = acc[j] + acc[8 + j];
//   then the nb % 4 blocks left: r = fma(float(isum_b), d_w * d_a, r) in order.
// It rounds differently from the lane-scaled form that prompt batches use (float sums per 4
// values), so a Q4_0 token decoded here differs from the same token in a batch by float
// rounding (~1e-7 relative), not more.
//
// GCC 12 reports its own intrinsics headers (undefined upper lanes of casts) as uninitialised.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "ops/int8_dot_kernels.h"
#include "ops/int8_simd.h"
#include "util/fp16.h"

namespace nibble::int8_kernels {

namespace {

#define NIBBLE_AVX512_VBMI                                                                   \
  __attribute__((target(                                                                   \
      "avx512f,avx512bw,avx512vl,avx512vnni,avx512dq,avx512vbmi,gfni,avx2,fma,f16c")))

struct Tables {
  // Whole chunks: group m's nibble bytes from the register pair (load m, load m + 1): byte
  // 16k + i <- pair byte 8m + 18k + 2 + i (block k's qs[i]).
  alignas(64) uint8_t nibbles[4][64];
  // The d of block b = 4m + k (chunk byte 18b, word 9b) to word lane 4k + m: blocks 0..7 from
  // loads (0, 1), 8..10 from (2, 3), 11..15 from (3, 4); one index register for all three
  // (masked vpermi2w leave the other lanes' indices in place for the next one).
  alignas(64) uint16_t d_index[32];
  __mmask32 from01 = 0, from23 = 0, from34 = 0;
  Tables() {
    for (int m = 0; m < 4; ++m) {
      for (int k = 0; k < 4; ++k) {
        for (int i = 0; i < 16; ++i) {
          nibbles[m][16 * k + i] = static_cast<uint8_t>(8 * m + 18 * k + 2 + i);
        }
      }
    }
    std::memset(d_index, 0, sizeof d_index);
    for (int m = 0; m < 4; ++m) {
      for (int k = 0; k < 4; ++k) {
        const int b = 4 * m + k, lane = 4 * k + m, word = 9 * b;
        if (b < 8) {
          d_index[lane] = static_cast<uint16_t>(word);
          from01 |= __mmask32{1} << lane;
        } else if (b < 11) {
          d_index[lane] = static_cast<uint16_t>(word - 64);
          from23 |= __mmask32{1} << lane;
        } else {
          d_index[lane] = static_cast<uint16_t>(word - 96);
          from34 |= __mmask32{1} << lane;
        }
      }
    }
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

NIBBLE_AVX512_VBMI inline float reduce16(__m512 acc) {
  return reduce_lanes(_mm512_castps512_ps256(acc), _mm512_extractf32x8_ps(acc, 1));
}

// The blocks past the last group of 4 (nb % 4 of them), in order.
inline float tail(const uint8_t* row, const Int8Acts& a, float res) {
  const int64_t nb = a.n / 32;
  const int8_t* aq = a.q_of(0);
  const float* ad = a.d_of(0);
  for (int64_t b = nb / 4 * 4; b < nb; ++b) {
    const uint8_t* blk = row + 18 * b;
    uint16_t h;
    std::memcpy(&h, blk, 2);
    int32_t isum = 0;
    for (int i = 0; i < 16; ++i) {
      isum += ((blk[2 + i] & 0x0F) - 8) * int32_t{aq[32 * b + i]};
      isum += ((blk[2 + i] >> 4) - 8) * int32_t{aq[32 * b + 16 + i]};
    }
    res = __builtin_fmaf(static_cast<float>(isum), f16_to_f32(h) * ad[b], res);
  }
  return res;
}

// The 4 x 16 nibble bytes q of a group against its rearranged activations: lanes 4k..4k+3 hold
// the unsigned sums of block k.
[[gnu::always_inline]] NIBBLE_AVX512_VBMI inline __m512i group_sums(__m512i q, const int8_t* lohi) {
  const __m512i lo = _mm512_and_si512(q, _mm512_set1_epi8(0x0F));
  // q >> 4 per byte in one instruction: the bit matrix whose row for output bit i (byte 7 - i)
  // selects input bit i + 4.
  const __m512i hi = _mm512_gf2p8affine_epi64_epi8(q, _mm512_set1_epi64(0x1020408000000000ll), 0);
  const __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, _mm512_loadu_si512(lohi));
  return _mm512_dpbusd_epi32(s, hi, _mm512_loadu_si512(lohi + 64));
}

// Lanes 4k..4k+3 of r[m] are block 4m + k of the chunk: one sum per block in lane 4k + m, plus
// the blocks' -8 * sum(a); times the scales w (fp16, word lane p) into acc.
[[gnu::always_inline]] NIBBLE_AVX512_VBMI inline __m512 accumulate(const __m512i r[4], __m512i w, const int32_t* bcorr,
                                            const float* dperm, __m512 acc) {
  const __m512i u01 = _mm512_add_epi32(_mm512_unpacklo_epi32(r[0], r[1]),
                                       _mm512_unpackhi_epi32(r[0], r[1]));
  const __m512i u23 = _mm512_add_epi32(_mm512_unpacklo_epi32(r[2], r[3]),
                                       _mm512_unpackhi_epi32(r[2], r[3]));
  const __m512i v = _mm512_add_epi32(
      _mm512_add_epi32(_mm512_unpacklo_epi64(u01, u23), _mm512_unpackhi_epi64(u01, u23)),
      _mm512_loadu_si512(bcorr));
  const __m512 dw = _mm512_cvtph_ps(_mm512_castsi512_si256(w));
  return _mm512_fmadd_ps(_mm512_cvtepi32_ps(v), _mm512_mul_ps(dw, _mm512_loadu_ps(dperm)), acc);
}

// The chunk of 16 blocks at `chunk`; n_groups < 4 for a last partial chunk, whose bytes end
// with one masked load (nothing past the row is read) and whose missing groups are zeros.
template <bool kWhole>
[[gnu::always_inline]] NIBBLE_AVX512_VBMI inline __m512 chunk_dot(const uint8_t* chunk, int n_groups, const Tables& tb,
                                           const int8_t* lohi, const int32_t* bcorr,
                                           const float* dperm, __m512 acc) {
  __m512i l[5];
  if constexpr (kWhole) {
    for (int i = 0; i < 4; ++i) l[i] = _mm512_loadu_si512(chunk + 64 * i);
    l[4] = _mm512_zextsi256_si512(
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(chunk + 256)));
  } else {
    const int n_bytes = 72 * n_groups;
    for (int i = 0; i < 5; ++i) {
      const int left = n_bytes - 64 * i;
      l[i] = left >= 64 ? _mm512_loadu_si512(chunk + 64 * i)
             : left > 0 ? _mm512_maskz_loadu_epi8((uint64_t{1} << left) - 1, chunk + 64 * i)
                        : _mm512_setzero_si512();
    }
  }
  __m512i r[4];
  for (int m = 0; m < 4; ++m) {
    if (!kWhole && m >= n_groups) {  // padding (no activations there): zero sums
      r[m] = _mm512_setzero_si512();
      continue;
    }
    const __m512i q =
        _mm512_permutex2var_epi8(l[m], _mm512_load_si512(tb.nibbles[m]), l[m + 1]);
    r[m] = group_sums(q, lohi + 128 * m);
  }
  // Scales of padding blocks come from zero bytes: 0, like their sums and activation scales.
  __m512i w = _mm512_load_si512(tb.d_index);
  w = _mm512_mask2_permutex2var_epi16(l[0], w, tb.from01, l[1]);
  w = _mm512_mask2_permutex2var_epi16(l[2], w, tb.from23, l[3]);
  w = _mm512_mask2_permutex2var_epi16(l[3], w, tb.from34, l[4]);
  return accumulate(r, w, bcorr, dperm, acc);
}

// One row, its chunks in order: one sequential stream with its prefetches (rows are adjacent,
// so a task's rows are one stream too).
NIBBLE_AVX512_VBMI inline float row_dot(const uint8_t* row, const Int8Acts& a, const Tables& tb) {
  const int64_t nb = a.n / 32, n_groups = nb / 4, n_whole = n_groups / 4;
  const int8_t* lohi = a.q4_lohi.data();
  const int32_t* bcorr = a.q4_bcorr.data();
  const float* dperm = a.q4_dperm.data();
  __m512 acc = _mm512_setzero_ps();
  // Two chunks per iteration (the same sums in the same order). With the machine's memory at
  // ~75 GB/s this took E2B Q4_0 generation from 33 to 36-37 tokens/s: FFN down projections
  // (12288-wide rows) 40 -> 46-48 GB/s, gate/up 55 -> 60-62 (`nibble bench --profile`). How the
  // compiler orders one chunk's instructions moves this loop by up to 25% from DRAM while it
  // computes as fast from L2; two chunks side by side give the scheduler independent work.
#pragma GCC unroll 2
  for (int64_t c = 0; c < n_whole; ++c) {
    const uint8_t* chunk = row + 288 * c;
    // Software prefetches on top of the hardware's keep more lines in flight.
    for (int l = 0; l < 5; ++l) {
      _mm_prefetch(reinterpret_cast<const char*>(chunk + kDecodePrefetch + 64 * l),
                   _MM_HINT_T0);
    }
    acc = chunk_dot<true>(chunk, 4, tb, lohi + 512 * c, bcorr + 16 * c, dperm + 16 * c, acc);
  }
  if (n_groups % 4 != 0) {
    const int64_t c = n_whole;
    // Short rows (E2B's 256-wide per-layer projection: 144 bytes) have only this partial chunk.
    for (int64_t o = 0; o < 72 * (n_groups % 4); o += 64) {
      _mm_prefetch(reinterpret_cast<const char*>(row + 288 * c + kDecodePrefetch + o), _MM_HINT_T0);
    }
    acc = chunk_dot<false>(row + 288 * c, static_cast<int>(n_groups % 4), tb, lohi + 512 * c,
                           bcorr + 16 * c, dperm + 16 * c, acc);
  }
  return tail(row, a, reduce16(acc));
}

}  // namespace

NIBBLE_AVX512_VBMI void q4_0_decode_rows(const uint8_t* const* rows, int n_rows, const Int8Acts& a,
                                         float* out) {
  const Tables& tb = tables();
  // One row after another: R rows side by side (activations read once for R rows) run ~10%
  // faster from the caches but 30% slower from DRAM, whose prefetchers want one stream per core.
  for (int r = 0; r < n_rows; ++r) out[r] = row_dot(rows[r], a, tb);
}

}  // namespace nibble::int8_kernels
