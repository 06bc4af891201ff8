// Q4_0 decoding with per-block integer sums (AVX-512 VBMI + VNNI): the fast path of the most
// common 4-bit type, about twice the throughput of the lane-scaled kernel (ops/int8_dot.h).
//
// Q4_0 has one scale per block of 32, so a block's 32 products can be summed as integers before
// any float work, as llama.cpp does. That needs no duplicated nibbles: 4 blocks (72 bytes) are
// two masked loads (36 bytes, then the other 36 merged over the first's upper bytes: overlapping
// 64-byte loads touch twice the lines and cost a third of the out-of-cache speed) and one
// vpermt2b that gathers their 4 x 16 nibble bytes; the low nibbles (values
// 0..15 of each block) and the high ones (16..31) meet activations rearranged once per token
// (Int8Acts::q4_lohi) in two vpdpbusd, whose starting value -8 * sum(a) per lane (q4_corr) turns
// the unsigned nibbles into q - 8. Four such groups (16 blocks) reduce to one sum per block with
// 9 unpack/add instructions; the 16 fp16 weight scales come from the loaded registers with two
// vpermt2w; then one convert, one multiply and one fma per 16 blocks.
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

#include <cstring>

#include "ops/int8_dot_kernels.h"
#include "ops/int8_simd.h"
#include "util/fp16.h"

namespace nibble::int8_kernels {

namespace {

#define NIBBLE_AVX512_VBMI \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx512dq,avx512vbmi,avx2,fma,f16c")))

struct Tables {
  alignas(64) uint8_t nibbles[64];  // vpermt2b: byte 16k + i <- block k's qs[i]
  alignas(64) uint16_t w01[32];     // vpermt2w: word 4k + m <- d of block k of group m (m = 0, 1)
  alignas(64) uint16_t w23[32];     // the same for groups 2, 3 (m = 2, 3)
  Tables() {
    // Group bytes 0..63 come from the first load, 64..71 from the second (which starts at 8).
    for (int k = 0; k < 4; ++k) {
      for (int i = 0; i < 16; ++i) {
        const int s = 18 * k + 2 + i;
        nibbles[16 * k + i] = static_cast<uint8_t>(s < 36 ? s : 64 + s - 8);
      }
    }
    std::memset(w01, 0, sizeof w01);
    std::memset(w23, 0, sizeof w23);
    const uint16_t word[4] = {0, 9, 14, 23};  // d of block k in the merged register
    for (int k = 0; k < 4; ++k) {
      w01[4 * k + 0] = word[k];
      w01[4 * k + 1] = static_cast<uint16_t>(32 + word[k]);
      w23[4 * k + 2] = word[k];
      w23[4 * k + 3] = static_cast<uint16_t>(32 + word[k]);
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

struct Consts {
  __m512i idx, idx01, idx23, m4;
};

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

// One row (rows are read one after another: two interleaved streams would halve what the
// hardware prefetcher does for DRAM-bound decoding).
NIBBLE_AVX512_VBMI inline void row_dot(const uint8_t* row, const Int8Acts& a, const Consts& k4,
                                       float* out) {
  const int64_t nb = a.n / 32, n_groups = nb / 4, n_chunks = (n_groups + 3) / 4;
  const __m512i idx = k4.idx, idx01 = k4.idx01, idx23 = k4.idx23, m4 = k4.m4;
  const __mmask64 m36 = (uint64_t{1} << 36) - 1, hi36 = ~((uint64_t{1} << 28) - 1);
  const int8_t* lohi = a.q4_lohi.data();
  const int32_t* corr = a.q4_corr.data();
  const float* dperm = a.q4_dperm.data();
  __m512 acc = _mm512_setzero_ps();
  for (int64_t c = 0; c < n_chunks; ++c) {
    const uint8_t* chunk = row + 288 * c;
    // The hardware prefetcher alone leaves DRAM-bound decoding at a fraction of the
    // bandwidth: ask for every line of the chunk's 288 bytes kDecodePrefetch ahead.
    for (int l = 0; l < 5; ++l) {
      _mm_prefetch(reinterpret_cast<const char*>(chunk + kDecodePrefetch + 64 * l),
                   _MM_HINT_T0);
    }
    __m512i r[4], z[4];
    for (int m = 0; m < 4; ++m) {
      const int64_t g = 4 * c + m;
      if (g >= n_groups) {  // padding of a last partial chunk: zero sums, zero scales
        r[m] = _mm512_setzero_si512();
        z[m] = _mm512_setzero_si512();
        continue;
      }
      const uint8_t* base = row + 72 * g;
      const __m512i lo36 = _mm512_maskz_loadu_epi8(m36, base);
      z[m] = _mm512_mask_loadu_epi8(lo36, hi36, base + 8);
      const __m512i q = _mm512_permutex2var_epi8(lo36, idx, z[m]);
      const __m512i lo = _mm512_and_si512(q, m4);
      const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), m4);
      const __m512i s = _mm512_dpbusd_epi32(_mm512_loadu_si512(corr + 16 * g), lo,
                                            _mm512_loadu_si512(lohi + 128 * g));
      r[m] = _mm512_dpbusd_epi32(s, hi, _mm512_loadu_si512(lohi + 128 * g + 64));
    }
    // Lanes 4k..4k+3 of r[m] are block 4m + k of the chunk: reduce them to lane 4k + m.
    const __m512i u01 = _mm512_add_epi32(_mm512_unpacklo_epi32(r[0], r[1]),
                                         _mm512_unpackhi_epi32(r[0], r[1]));
    const __m512i u23 = _mm512_add_epi32(_mm512_unpacklo_epi32(r[2], r[3]),
                                         _mm512_unpackhi_epi32(r[2], r[3]));
    const __m512i v = _mm512_add_epi32(_mm512_unpacklo_epi64(u01, u23),
                                       _mm512_unpackhi_epi64(u01, u23));
    const __m512i w =
        _mm512_mask_blend_epi16(0xCCCC, _mm512_permutex2var_epi16(z[0], idx01, z[1]),
                                _mm512_permutex2var_epi16(z[2], idx23, z[3]));
    const __m512 dw = _mm512_cvtph_ps(_mm512_castsi512_si256(w));
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(v),
                          _mm512_mul_ps(dw, _mm512_loadu_ps(dperm + 16 * c)), acc);
  }
  *out = tail(row, a, reduce16(acc));
}

}  // namespace

NIBBLE_AVX512_VBMI void q4_0_decode_rows(const uint8_t* const* rows, int n_rows, const Int8Acts& a,
                                         float* out) {
  const Tables& tb = tables();
  const Consts k4{_mm512_load_si512(tb.nibbles), _mm512_load_si512(tb.w01),
                  _mm512_load_si512(tb.w23), _mm512_set1_epi8(0x0F)};
  for (int r = 0; r < n_rows; ++r) row_dot(rows[r], a, k4, out + r);
}

}  // namespace nibble::int8_kernels
