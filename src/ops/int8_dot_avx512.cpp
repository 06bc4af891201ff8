// int8 dot kernels for AVX-512 with VNNI (vpdpbusd): two 32-value blocks per instruction.
// Activations enter as unsigned bytes (q + 128) and each weight lane's 128 * sum(w) is
// subtracted up front, so every lane holds the exact signed dot product (ops/int8_dot.h).
// GCC 12 reports its own intrinsics headers (undefined upper lanes of casts) as uninitialised.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstring>

#include "ops/int8_dot_kernels.h"
#include "ops/int8_simd.h"

namespace nibble::int8_kernels {

namespace {

#define NIBBLE_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx512dq,avx2,fma,f16c")))

NIBBLE_AVX512 inline float reduce(__m256 e, __m256 o) { return reduce_lanes(e, o); }


template <int R, int T>
NIBBLE_AVX512 void tile(const Int8Row* rows, const Int8Acts& a, int64_t tok0, float* out,
                        int64_t ldo) {
  const int64_t n = a.n, nb = n / 32, np = nb / 2;
  const __m512i zero = _mm512_setzero_si512();
  const __m512i k80 = _mm512_set1_epi8(static_cast<char>(0x80));
  const __m512i pair = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
  const int8_t* aq[T];
  const float* ad[T];
  for (int t = 0; t < T; ++t) {
    aq[t] = a.q_of(tok0 + t);
    ad[t] = a.d_of(tok0 + t);
  }
  __m512 acc[R][T];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_ps();
  for (int64_t p = 0; p < np; ++p) {
    const int64_t e = 64 * p;
    __m512i w[R], nc[R];
    __m512 sc[R];
    for (int r = 0; r < R; ++r) {
      w[r] = _mm512_loadu_si512(rows[r].q + e);
      nc[r] = _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, k80, w[r]));
      sc[r] = _mm512_loadu_ps(rows[r].scale + 16 * p);
    }
    for (int t = 0; t < T; ++t) {
      const __m512i au = _mm512_xor_si512(_mm512_loadu_si512(aq[t] + e), k80);
      const __m128 d2 = _mm_castsi128_ps(
          _mm_loadl_epi64(reinterpret_cast<const __m128i*>(ad[t] + 2 * p)));
      const __m512 dx = _mm512_permutexvar_ps(pair, _mm512_castps128_ps512(d2));
      for (int r = 0; r < R; ++r) {
        const __m512i i = _mm512_dpbusd_epi32(nc[r], au, w[r]);
        acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i), _mm512_mul_ps(sc[r], dx), acc[r][t]);
      }
    }
  }
  const __m256i zero8 = _mm256_setzero_si256();
  const __m256i k80h = _mm256_set1_epi8(static_cast<char>(0x80));
  const bool has_off = rows[0].offset != nullptr;
  float off[R][T];
  if (has_off) offsets<R, T>(rows, a, tok0, off);
  for (int r = 0; r < R; ++r) {
    for (int t = 0; t < T; ++t) {
      __m256 ev = _mm512_castps512_ps256(acc[r][t]);
      const __m256 od = _mm512_extractf32x8_ps(acc[r][t], 1);
      if (nb & 1) {
        const int64_t b = nb - 1, e = 32 * b;
        const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rows[r].q + e));
        const __m256i nc = _mm256_sub_epi32(zero8, _mm256_dpbusd_epi32(zero8, k80h, w));
        const __m256i au = _mm256_xor_si256(
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(aq[t] + e)), k80h);
        const __m256i i = _mm256_dpbusd_epi32(nc, au, w);
        const __m256 pr = _mm256_mul_ps(_mm256_loadu_ps(rows[r].scale + 8 * b),
                                        _mm256_set1_ps(ad[t][b]));
        ev = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i), pr, ev);
      }
      float res = reduce(ev, od);
      if (has_off) res += off[r][t];
      out[t * ldo + r] = res;
    }
  }
}

template <int R>
void rows_tiles(const Int8Row* rows, const Int8Acts& a, int64_t tok0, int64_t n_tok, float* out,
                int64_t ldo) {
  int64_t t = 0;
  for (; t + 4 <= n_tok; t += 4) tile<R, 4>(rows, a, tok0 + t, out + t * ldo, ldo);
  switch (n_tok - t) {
    case 3: tile<R, 3>(rows, a, tok0 + t, out + t * ldo, ldo); break;
    case 2: tile<R, 2>(rows, a, tok0 + t, out + t * ldo, ldo); break;
    case 1: tile<R, 1>(rows, a, tok0 + t, out + t * ldo, ldo); break;
    default: break;
  }
}


// ---- Decoding straight from Q4_0 / Q8_0 / Q4_K / Q6_K blocks (no unpack buffer): the same
// arithmetic as tile<R, 1> on the unpacked rows, the weights built in registers.

struct Q4_0Src {
  static constexpr int kBlockBytes = 18;
  static constexpr int kPrefetchAhead = 512;
  // 64 values of blocks b and b + 1 as int8, and their scales [d_b x 8, d_b+1 x 8].
  NIBBLE_AVX512 static void pair(const uint8_t* row, int64_t b, __m512i* w, __m512* sc) {
    const uint8_t* b0 = row + b * kBlockBytes;
    const uint8_t* b1 = b0 + kBlockBytes;
    const __m128i r0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b0 + 2));
    const __m128i r1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b1 + 2));
    const __m256i h0 = _mm256_set_m128i(_mm_srli_epi16(r0, 4), r0);
    const __m256i h1 = _mm256_set_m128i(_mm_srli_epi16(r1, 4), r1);
    const __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(h0), h1, 1);
    *w = _mm512_sub_epi8(_mm512_and_si512(v, _mm512_set1_epi8(0x0F)), _mm512_set1_epi8(8));
    *sc = scales(b0, b1);
  }
  NIBBLE_AVX512 static __m256i single(const uint8_t* row, int64_t b, float* d) {
    const uint8_t* b0 = row + b * kBlockBytes;
    const __m128i r0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b0 + 2));
    const __m256i h0 = _mm256_set_m128i(_mm_srli_epi16(r0, 4), r0);
    uint16_t h;
    std::memcpy(&h, b0, 2);
    *d = _cvtsh_ss(h);
    return _mm256_sub_epi8(_mm256_and_si256(h0, _mm256_set1_epi8(0x0F)), _mm256_set1_epi8(8));
  }
  NIBBLE_AVX512 static __m512 scales(const uint8_t* b0, const uint8_t* b1) {
    uint16_t h0, h1;
    std::memcpy(&h0, b0, 2);
    std::memcpy(&h1, b1, 2);
    const __m128 d = _mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(h0 | (uint32_t{h1} << 16))));
    const __m512i pair = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    return _mm512_permutexvar_ps(pair, _mm512_castps128_ps512(d));
  }
};

struct Q8_0Src {
  static constexpr int kBlockBytes = 34;
  // As far ahead as the other decoding kernels: 768 bytes left E2B Q8_0 generation at 16.0
  // tokens/s, 8 KiB gives 17.9 (memory at ~45 GB/s) and 27 (at ~77).
  static constexpr int kPrefetchAhead = kDecodePrefetch;
  NIBBLE_AVX512 static void pair(const uint8_t* row, int64_t b, __m512i* w, __m512* sc) {
    const uint8_t* b0 = row + b * kBlockBytes;
    const uint8_t* b1 = b0 + kBlockBytes;
    const __m256i q0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b0 + 2));
    const __m256i q1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b1 + 2));
    *w = _mm512_inserti64x4(_mm512_castsi256_si512(q0), q1, 1);
    *sc = Q4_0Src::scales(b0, b1);
  }
  NIBBLE_AVX512 static __m256i single(const uint8_t* row, int64_t b, float* d) {
    const uint8_t* b0 = row + b * kBlockBytes;
    uint16_t h;
    std::memcpy(&h, b0, 2);
    *d = _cvtsh_ss(h);
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b0 + 2));
  }
};


template <typename Src, int R>
NIBBLE_AVX512 void direct_rows(const uint8_t* const* rows, const Int8Acts& a, int64_t tok,
                               float* out) {
  const int64_t n = a.n, nb = n / 32, np = nb / 2;
  const __m512i zero = _mm512_setzero_si512();
  const __m512i k80 = _mm512_set1_epi8(static_cast<char>(0x80));
  const __m512i pair = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
  const int8_t* aq = a.q_of(tok);
  const float* ad = a.d_of(tok);
  __m512 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  for (int64_t p = 0; p < np; ++p) {
    const __m512i au = _mm512_xor_si512(_mm512_loadu_si512(aq + 64 * p), k80);
    const __m128 d2 = _mm_castsi128_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(ad + 2 * p)));
    const __m512 dx = _mm512_permutexvar_ps(pair, _mm512_castps128_ps512(d2));
    for (int r = 0; r < R; ++r) {
      // The hardware prefetcher alone leaves DRAM-bound decoding at a fraction of the
      // bandwidth with several rows in flight: ask for the data a few hundred bytes ahead.
      _mm_prefetch(reinterpret_cast<const char*>(rows[r] + Src::kPrefetchAhead +
                                                 2 * p * Src::kBlockBytes),
                   _MM_HINT_T0);
      __m512i w;
      __m512 sc;
      Src::pair(rows[r], 2 * p, &w, &sc);
      const __m512i nc = _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, k80, w));
      const __m512i i = _mm512_dpbusd_epi32(nc, au, w);
      acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i), _mm512_mul_ps(sc, dx), acc[r]);
    }
  }
  const __m256i zero8 = _mm256_setzero_si256();
  const __m256i k80h = _mm256_set1_epi8(static_cast<char>(0x80));
  for (int r = 0; r < R; ++r) {
    __m256 ev = _mm512_castps512_ps256(acc[r]);
    const __m256 od = _mm512_extractf32x8_ps(acc[r], 1);
    if (nb & 1) {
      const int64_t b = nb - 1;
      float d;
      const __m256i w = Src::single(rows[r], b, &d);
      const __m256i nc = _mm256_sub_epi32(zero8, _mm256_dpbusd_epi32(zero8, k80h, w));
      const __m256i au = _mm256_xor_si256(
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(aq + 32 * b)), k80h);
      const __m256i i = _mm256_dpbusd_epi32(nc, au, w);
      const __m256 pr = _mm256_mul_ps(_mm256_set1_ps(d), _mm256_set1_ps(ad[b]));
      ev = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i), pr, ev);
    }
    out[r] = reduce(ev, od);
  }
}


// Q4_K decoding from its 144-byte super-blocks (256 values: d, dmin, 12 bytes of 6-bit scales
// and mins, 128 bytes of nibbles; the low nibbles of bytes 32k..32k+31 are sub-block 2k, the high
// ones sub-block 2k + 1). The nibbles are unsigned, so they are vpdpbusd's unsigned operand and
// the signed activations the other. Lane scales d * sc and offsets -(dmin * m) are the floats
// the unpacker writes; the offset term runs in offsets<>'s order. Same bits as tile<1, 1> on the
// unpacked row (tested).
NIBBLE_AVX512 float q4_k_row(const uint8_t* row, const Int8Acts& a) {
  const int64_t n_super = a.n / 256;
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  const __m512i shifts = _mm512_set_epi64(4, 4, 4, 4, 0, 0, 0, 0);
  const __m512i dup = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
  const __m512 sign = _mm512_set1_ps(-0.0f);
  const int8_t* aq = a.q_of(0);
  const float* s16 = a.sum16_of(0);
  __m512 acc = _mm512_setzero_ps();
  __m256 moff = _mm256_setzero_ps();
  for (int64_t sb = 0; sb < n_super; ++sb) {
    const uint8_t* blk = row + 144 * sb;
    _mm_prefetch(reinterpret_cast<const char*>(blk + kDecodePrefetch), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(blk + kDecodePrefetch + 64), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(blk + kDecodePrefetch + 128), _MM_HINT_T0);
    uint16_t hd, hm;
    std::memcpy(&hd, blk, 2);
    std::memcpy(&hm, blk + 2, 2);
    // The 6-bit scales (bytes 0..7 of u) and minimums (bytes 8..15).
    uint8_t u[16];
    k4_scales_mins(blk + 4, u);
    const __m128i sm = _mm_loadu_si128(reinterpret_cast<const __m128i*>(u));
    const __m256 sc8 = _mm256_mul_ps(_mm256_set1_ps(_cvtsh_ss(hd)),
                                     _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(sm)));
    const __m256 mn8 = _mm256_mul_ps(_mm256_set1_ps(_cvtsh_ss(hm)),
                                     _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(sm, 8))));
    // Offsets per 16 values: -(dmin * m) twice per sub-block, 16 groups in two chunks of 8.
    const __m512 off = _mm512_xor_ps(_mm512_permutexvar_ps(dup, _mm512_castps256_ps512(mn8)), sign);
    moff = _mm256_fmadd_ps(_mm512_castps512_ps256(off), _mm256_loadu_ps(s16 + 16 * sb), moff);
    moff = _mm256_fmadd_ps(_mm512_extractf32x8_ps(off, 1), _mm256_loadu_ps(s16 + 16 * sb + 8), moff);
    const __m512 sc16 = _mm512_castps256_ps512(sc8);
    for (int k = 0; k < 4; ++k) {
      const int64_t p = 4 * sb + k;  // pair of 32-blocks
      const __m512i v = _mm512_broadcast_i64x4(
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 16 + 32 * k)));
      const __m512i q = _mm512_and_si512(_mm512_srlv_epi64(v, shifts), m4);
      const __m512i i = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q,
                                            _mm512_loadu_si512(aq + 64 * p));
      const __m512i pick = _mm512_set_epi32(2 * k + 1, 2 * k + 1, 2 * k + 1, 2 * k + 1,
                                            2 * k + 1, 2 * k + 1, 2 * k + 1, 2 * k + 1, 2 * k,
                                            2 * k, 2 * k, 2 * k, 2 * k, 2 * k, 2 * k, 2 * k);
      const __m512 sc = _mm512_permutexvar_ps(pick, sc16);
      acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i),
                            _mm512_mul_ps(sc, _mm512_loadu_ps(a.dlane.data() + 16 * p)), acc);
    }
  }
  const float off = reduce_offset_lanes(moff);
  return reduce(_mm512_castps512_ps256(acc), _mm512_extractf32x8_ps(acc, 1)) + off;
}

// Q6_K decoding from its 210-byte super-blocks (ql[128] low nibbles, qh[64] high 2 bits,
// scales[16], d). Values are q - 32 with q in 0..63 unsigned: q is vpdpbusd's unsigned operand
// and -32 * sum(a) per lane (4 * Int8Acts::neg8sum4) its starting value. Per 128-value half n:
// ql[64n..64n+63] in one load, qh[32n..32n+31] in both 256-bit halves; the pair of values 0..63
// takes the low nibbles and qh bits 0-1 / 2-3, the pair 64..127 the high nibbles and bits 4-5 /
// 6-7. Lane scales d * scales[j] (16 values = 4 lanes each). Same bits as tile<1, 1> on the
// unpacked row (tested).
NIBBLE_AVX512 float q6_k_row(const uint8_t* row, const Int8Acts& a) {
  const int64_t n_super = a.n / 256;
  const __m512i m0f = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
  const __m512i lshift = _mm512_set_epi64(2, 2, 2, 2, 4, 4, 4, 4);  // qh bits 2-3 | 0-1 -> 4-5
  const __m512i rshift = _mm512_set_epi64(2, 2, 2, 2, 0, 0, 0, 0);  // qh bits 6-7 | 4-5 -> 4-5
  const int8_t* aq = a.q_of(0);
  __m512 acc = _mm512_setzero_ps();
  // Two super-blocks per iteration (the same sums in the same order): E2B's Q6_K output head
  // 64-66 -> 67-69 GB/s with the machine's memory at ~75 GB/s (`nibble bench --profile`).
#pragma GCC unroll 2
  for (int64_t sb = 0; sb < n_super; ++sb) {
    const uint8_t* blk = row + 210 * sb;
    _mm_prefetch(reinterpret_cast<const char*>(blk + kDecodePrefetch), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(blk + kDecodePrefetch + 64), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(blk + kDecodePrefetch + 128), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(blk + kDecodePrefetch + 192), _MM_HINT_T0);
    uint16_t hd;
    std::memcpy(&hd, blk + 208, 2);
    const __m512 sc16 = _mm512_mul_ps(
        _mm512_set1_ps(_cvtsh_ss(hd)),
        _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 192)))));
    for (int h = 0; h < 2; ++h) {
      const __m512i ql = _mm512_loadu_si512(blk + 64 * h);
      const __m512i qh = _mm512_broadcast_i64x4(
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 128 + 32 * h)));
      const __m512i q0 = _mm512_ternarylogic_epi32(_mm512_and_si512(ql, m0f),
                                                   _mm512_sllv_epi64(qh, lshift), m30, 0xF8);
      const __m512i q1 =
          _mm512_ternarylogic_epi32(_mm512_and_si512(_mm512_srli_epi64(ql, 4), m0f),
                                    _mm512_srlv_epi64(qh, rshift), m30, 0xF8);
      for (int k = 0; k < 2; ++k) {
        const int64_t p = 4 * sb + 2 * h + k;  // pair of 32-blocks
        const int j = 8 * h + 4 * k;            // first 16-value sub-block of the pair
        const __m512i nc = _mm512_slli_epi32(_mm512_loadu_si512(a.neg8sum4.data() + 16 * p), 2);
        const __m512i i = _mm512_dpbusd_epi32(nc, k == 0 ? q0 : q1,
                                              _mm512_loadu_si512(aq + 64 * p));
        const __m512i pick = _mm512_set_epi32(j + 3, j + 3, j + 3, j + 3, j + 2, j + 2, j + 2,
                                              j + 2, j + 1, j + 1, j + 1, j + 1, j, j, j, j);
        const __m512 sc = _mm512_permutexvar_ps(pick, sc16);
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i),
                              _mm512_mul_ps(sc, _mm512_loadu_ps(a.dlane.data() + 16 * p)), acc);
      }
    }
  }
  return reduce(_mm512_castps512_ps256(acc), _mm512_extractf32x8_ps(acc, 1));
}


// One row at a time: the weights stream through memory strictly in order (rows are adjacent),
// which DRAM-bound decoding needs more than it needs the activations reused from registers.
template <typename Src>
void direct(const uint8_t* const* rows, int n_rows, const Int8Acts& a, int64_t tok, float* out) {
  for (int r = 0; r < n_rows; ++r) direct_rows<Src, 1>(rows + r, a, tok, out + r);
}

}  // namespace

bool q4_0_decode_available() {
  static const bool yes = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512vbmi") != 0 && __builtin_cpu_supports("avx512vnni") != 0 &&
           __builtin_cpu_supports("gfni") != 0;
  }();
  return yes;
}

bool direct_dot_avx512(GgmlType type, const uint8_t* const* rows, int n_rows, const Int8Acts& a,
                       int64_t tok, float* out) {
  switch (type) {
    case GgmlType::Q4_0:
      if (tok == 0 && a.has_q4_0_terms && q4_0_decode_available()) {
        q4_0_decode_rows(rows, n_rows, a, out);
      } else {
        direct<Q4_0Src>(rows, n_rows, a, tok, out);
      }
      return true;
    case GgmlType::Q4_K:
      if (tok != 0 || !a.has_decode_terms || !a.has_sums || a.n % 256 != 0) return false;
      for (int r = 0; r < n_rows; ++r) out[r] = q4_k_row(rows[r], a);
      return true;
    case GgmlType::Q8_0: direct<Q8_0Src>(rows, n_rows, a, tok, out); return true;
    case GgmlType::Q6_K:
      if (tok != 0 || !a.has_decode_terms || a.n % 256 != 0) return false;
      for (int r = 0; r < n_rows; ++r) out[r] = q6_k_row(rows[r], a);
      return true;
    default: return false;
  }
}

void dot_avx512(const Int8Row* rows, int n_rows, const Int8Acts& a, int64_t tok0, int64_t n_tok,
                float* out, int64_t ldo) {
  switch (n_rows) {
    case 4: return rows_tiles<4>(rows, a, tok0, n_tok, out, ldo);
    case 3: return rows_tiles<3>(rows, a, tok0, n_tok, out, ldo);
    case 2: return rows_tiles<2>(rows, a, tok0, n_tok, out, ldo);
    case 1: return rows_tiles<1>(rows, a, tok0, n_tok, out, ldo);
    default: return;
  }
}

}  // namespace nibble::int8_kernels
