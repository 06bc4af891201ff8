// int8 dot kernels for AVX2 + FMA: one 32-value block at a time with the sign trick
// (vpmaddubsw of |w| and sign(a, w), then vpmaddwd), exact int32 lanes (ops/int8_dot.h).
#include <immintrin.h>

#include "ops/int8_dot_kernels.h"
#include "ops/int8_simd.h"

namespace nibble::int8_kernels {

namespace {

#define NIBBLE_AVX2 __attribute__((target("avx2,fma")))

NIBBLE_AVX2 inline float reduce(__m256 e, __m256 o) { return reduce_lanes(e, o); }


template <int R, int T>
NIBBLE_AVX2 void tile(const Int8Row* rows, const Int8Acts& a, int64_t tok0, float* out,
                      int64_t ldo) {
  const int64_t n = a.n, nb = n / 32;
  const __m256i ones = _mm256_set1_epi16(1);
  const int8_t* aq[T];
  const float* ad[T];
  for (int t = 0; t < T; ++t) {
    aq[t] = a.q_of(tok0 + t);
    ad[t] = a.d_of(tok0 + t);
  }
  __m256 acc[2][R][T];
  for (int h = 0; h < 2; ++h)
    for (int r = 0; r < R; ++r)
      for (int t = 0; t < T; ++t) acc[h][r][t] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t e = 32 * b;
    const int h = static_cast<int>(b & 1);
    __m256i w[R], aw[R];
    __m256 sc[R];
    for (int r = 0; r < R; ++r) {
      w[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rows[r].q + e));
      aw[r] = _mm256_abs_epi8(w[r]);
      sc[r] = _mm256_loadu_ps(rows[r].scale + 8 * b);
    }
    for (int t = 0; t < T; ++t) {
      const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(aq[t] + e));
      const __m256 dx = _mm256_set1_ps(ad[t][b]);
      for (int r = 0; r < R; ++r) {
        const __m256i p16 = _mm256_maddubs_epi16(aw[r], _mm256_sign_epi8(av, w[r]));
        const __m256i i = _mm256_madd_epi16(p16, ones);
        acc[h][r][t] =
            _mm256_fmadd_ps(_mm256_cvtepi32_ps(i), _mm256_mul_ps(sc[r], dx), acc[h][r][t]);
      }
    }
  }
  const bool has_off = rows[0].offset != nullptr;
  float off[R][T];
  if (has_off) offsets<R, T>(rows, a, tok0, off);
  for (int r = 0; r < R; ++r) {
    for (int t = 0; t < T; ++t) {
      float res = reduce(acc[0][r][t], acc[1][r][t]);
      if (has_off) res += off[r][t];
      out[t * ldo + r] = res;
    }
  }
}

template <int R>
void rows_tiles(const Int8Row* rows, const Int8Acts& a, int64_t tok0, int64_t n_tok, float* out,
                int64_t ldo) {
  int64_t t = 0;
  for (; t + 2 <= n_tok; t += 2) tile<R, 2>(rows, a, tok0 + t, out + t * ldo, ldo);
  if (t < n_tok) tile<R, 1>(rows, a, tok0 + t, out + t * ldo, ldo);
}

}  // namespace

void dot_avx2(const Int8Row* rows, int n_rows, const Int8Acts& a, int64_t tok0, int64_t n_tok,
              float* out, int64_t ldo) {
  // Two rows at a time keeps the 16 ymm registers enough.
  int r = 0;
  for (; r + 2 <= n_rows; r += 2) rows_tiles<2>(rows + r, a, tok0, n_tok, out + r, ldo);
  if (r < n_rows) rows_tiles<1>(rows + r, a, tok0, n_tok, out + r, ldo);
}

}  // namespace nibble::int8_kernels
