// The AVX-512 VNNI panel kernel (ops/int8_panel.h): per scale group, one vpdpbusd per 4 values
// of 16 rows and each token (activation bytes broadcast), then one convert-scale-accumulate per
// 16 rows and token.
// GCC 12 reports its own intrinsics headers (undefined upper lanes of casts) as uninitialised.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstring>

#include "ops/int8_panel.h"

namespace nibble::panel_kernels {

namespace {

#define NIBBLE_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx512dq,avx2,fma")))

NIBBLE_AVX512 inline __m512i bcast4(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

template <int T, int G, bool OFF>
NIBBLE_AVX512 void tile(const Int8Panel& p, const Int8Acts& a, int64_t tok0, float* out,
                        int64_t ldo) {
  constexpr int kChunks = G / 4;
  const int64_t n = p.n, n_groups = n / G;
  const uint8_t* au[T];
  const float* ad[T];
  for (int t = 0; t < T; ++t) {
    au[t] = a.u_of(tok0 + t);
    ad[t] = a.d_of(tok0 + t);
  }
  __m512 acc[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm512_setzero_ps();
  for (int64_t s = 0; s < n_groups; ++s) {
    const __m512i corr = _mm512_loadu_si512(p.corr + s * kPanelRows);
    __m512i is[T];
    for (int t = 0; t < T; ++t) is[t] = corr;
    const int8_t* wq = p.q + s * kChunks * 64;
    const int64_t e0 = s * G;
    for (int c = 0; c < kChunks; ++c) {
      const __m512i w = _mm512_loadu_si512(wq + c * 64);
      for (int t = 0; t < T; ++t) is[t] = _mm512_dpbusd_epi32(is[t], bcast4(au[t] + e0 + 4 * c), w);
    }
    const __m512 sc = _mm512_loadu_ps(p.scale + s * kPanelRows);
    for (int t = 0; t < T; ++t) {
      const __m512 prod = _mm512_mul_ps(sc, _mm512_set1_ps(ad[t][e0 / 32]));
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is[t]), prod, acc[t]);
    }
  }
  if constexpr (OFF) {
    __m512 m[T];
    for (int t = 0; t < T; ++t) m[t] = _mm512_setzero_ps();
    const float* s16[T];
    for (int t = 0; t < T; ++t) s16[t] = a.sum16_of(tok0 + t);
    for (int64_t g = 0; g < n / 16; ++g) {
      const __m512 o = _mm512_loadu_ps(p.offset + g * kPanelRows);
      for (int t = 0; t < T; ++t) m[t] = _mm512_fmadd_ps(o, _mm512_set1_ps(s16[t][g]), m[t]);
    }
    for (int t = 0; t < T; ++t) acc[t] = _mm512_add_ps(acc[t], m[t]);
  } else {
    // out = acc + m with m = 0 (as the generic code: +0.0 turns a -0.0 sum into +0.0).
    for (int t = 0; t < T; ++t) acc[t] = _mm512_add_ps(acc[t], _mm512_setzero_ps());
  }
  const __mmask16 mask = static_cast<__mmask16>((1u << p.rows) - 1u);
  for (int t = 0; t < T; ++t) _mm512_mask_storeu_ps(out + t * ldo, mask, acc[t]);
}

template <int G, bool OFF>
void tiles(const Int8Panel& p, const Int8Acts& a, int64_t tok0, int64_t n_tok, float* out,
           int64_t ldo) {
  int64_t t = 0;
  for (; t + 8 <= n_tok; t += 8) tile<8, G, OFF>(p, a, tok0 + t, out + t * ldo, ldo);
  if (t + 4 <= n_tok) {
    tile<4, G, OFF>(p, a, tok0 + t, out + t * ldo, ldo);
    t += 4;
  }
  if (t + 2 <= n_tok) {
    tile<2, G, OFF>(p, a, tok0 + t, out + t * ldo, ldo);
    t += 2;
  }
  if (t < n_tok) tile<1, G, OFF>(p, a, tok0 + t, out + t * ldo, ldo);
}

}  // namespace

void dot_avx512(const Int8Panel& p, const Int8Acts& a, int64_t tok0, int64_t n_tok, float* out,
                int64_t ldo) {
  const bool off = p.offset != nullptr;
  if (p.group == 16) {
    off ? tiles<16, true>(p, a, tok0, n_tok, out, ldo) : tiles<16, false>(p, a, tok0, n_tok, out, ldo);
  } else {
    off ? tiles<32, true>(p, a, tok0, n_tok, out, ldo) : tiles<32, false>(p, a, tok0, n_tok, out, ldo);
  }
}

}  // namespace nibble::panel_kernels
