// GELU-tanh, GeGLU and soft-cap over a vectorised tanh. tanh is computed the same way in the
// AVX2 code and the scalar code (same operations, same order, explicit fused multiply-adds),
// so every ISA and every batch size gives the same bits:
//   |x| < 0.625: odd polynomial (Cephes tanhf);  else 1 - 2 / (exp(2|x|) + 1) with the sign of x,
//   exp by range reduction x = n ln2 + r and a degree-6 polynomial (Cephes expf); |x| >= 10: ±1.
// Accurate to a few ulp (tests: against std::tanh).
#include "ops/activation.h"

#include <immintrin.h>

#include <cmath>
#include <cstring>

#include "util/thread_pool.h"

namespace nibble {

namespace {

constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
constexpr float kE0 = 1.9875691500e-4f, kE1 = 1.3981999507e-3f, kE2 = 8.3334519073e-3f,
                kE3 = 4.1665795894e-2f, kE4 = 1.6666665459e-1f, kE5 = 5.0000001201e-1f;
constexpr float kT0 = -5.70498872745e-3f, kT1 = 2.06390887954e-2f, kT2 = -5.37397155531e-2f,
                kT3 = 1.33314422036e-1f, kT4 = -3.33332819422e-1f;
constexpr float kSmall = 0.625f, kBig = 10.0f;

float tanh_scalar(float x) {
  const float ax = std::fabs(x);
  float r;
  if (ax < kSmall) {
    const float z = x * x;
    float p = std::fmaf(kT0, z, kT1);
    p = std::fmaf(p, z, kT2);
    p = std::fmaf(p, z, kT3);
    p = std::fmaf(p, z, kT4);
    return std::fmaf(p * z, x, x);
  }
  const float a = std::fmin(ax, kBig) * 2.0f;
  const float n = std::nearbyint(a * kLog2e);
  float t = std::fmaf(-n, kLn2Hi, a);
  t = std::fmaf(-n, kLn2Lo, t);
  float p = std::fmaf(kE0, t, kE1);
  p = std::fmaf(p, t, kE2);
  p = std::fmaf(p, t, kE3);
  p = std::fmaf(p, t, kE4);
  p = std::fmaf(p, t, kE5);
  float e = std::fmaf(p, t * t, t) + 1.0f;
  uint32_t bits;
  const int32_t ni = static_cast<int32_t>(n);
  bits = static_cast<uint32_t>(ni + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, 4);
  e = e * scale;
  r = 1.0f - 2.0f / (e + 1.0f);
  return std::copysign(r, x);
}

__attribute__((target("avx2,fma"))) __m256 tanh8(__m256 x) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256 ax = _mm256_andnot_ps(sign, x);
  // small branch
  const __m256 z = _mm256_mul_ps(x, x);
  __m256 p = _mm256_fmadd_ps(_mm256_set1_ps(kT0), z, _mm256_set1_ps(kT1));
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(kT2));
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(kT3));
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(kT4));
  const __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(p, z), x, x);
  // large branch
  const __m256 a = _mm256_mul_ps(_mm256_min_ps(ax, _mm256_set1_ps(kBig)), _mm256_set1_ps(2.0f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(a, _mm256_set1_ps(kLog2e)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 t = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Hi), a);
  t = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Lo), t);
  __m256 q = _mm256_fmadd_ps(_mm256_set1_ps(kE0), t, _mm256_set1_ps(kE1));
  q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(kE2));
  q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(kE3));
  q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(kE4));
  q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(kE5));
  __m256 e = _mm256_add_ps(_mm256_fmadd_ps(q, _mm256_mul_ps(t, t), t), _mm256_set1_ps(1.0f));
  const __m256i bits =
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  e = _mm256_mul_ps(e, _mm256_castsi256_ps(bits));
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 large = _mm256_sub_ps(one, _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(e, one)));
  const __m256 large_signed = _mm256_or_ps(large, _mm256_and_ps(x, sign));
  const __m256 is_small = _mm256_cmp_ps(ax, _mm256_set1_ps(kSmall), _CMP_LT_OQ);
  return _mm256_blendv_ps(large_signed, small, is_small);
}

constexpr float kSqrt2OverPi = 0.7978845608028654f;

// The tanh argument of GELU, computed identically in both paths.
inline float gelu_arg(float x) { return kSqrt2OverPi * (x + 0.044715f * x * x * x); }

__attribute__((target("avx2,fma"))) void geglu_avx2(float* gate, const float* up, int64_t n) {
  const __m256 c = _mm256_set1_ps(kSqrt2OverPi), k = _mm256_set1_ps(0.044715f),
               half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 x = _mm256_loadu_ps(gate + i);
    const __m256 x3 = _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(k, x), x), x);
    const __m256 th = tanh8(_mm256_mul_ps(c, _mm256_add_ps(x, x3)));
    const __m256 g = _mm256_mul_ps(_mm256_mul_ps(half, x), _mm256_add_ps(one, th));
    _mm256_storeu_ps(gate + i, _mm256_mul_ps(g, _mm256_loadu_ps(up + i)));
  }
  for (; i < n; ++i) gate[i] = gelu(gate[i]) * up[i];
}

__attribute__((target("avx2,fma"))) void softcap_avx2(float* x, int64_t n, float cap) {
  const __m256 c = _mm256_set1_ps(cap);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_div_ps(_mm256_loadu_ps(x + i), c);
    _mm256_storeu_ps(x + i, _mm256_mul_ps(c, tanh8(v)));
  }
  for (; i < n; ++i) x[i] = cap * tanh_scalar(x[i] / cap);
}

bool have_avx2() {
  static const bool yes = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return yes;
}

// Splits [0, n) in chunks over the pool when there is enough work.
template <typename Fn>
void chunked(int64_t n, const Fn& fn) {
  constexpr int64_t kChunk = 16384;
  if (n < 4 * kChunk) {
    fn(0, n);
    return;
  }
  parallel_for((n + kChunk - 1) / kChunk, [&](int64_t c) {
    const int64_t lo = c * kChunk;
    fn(lo, std::min(n, lo + kChunk) - lo);
  });
}

}  // namespace

float tanh_fast(float x) { return tanh_scalar(x); }

float gelu(float x) { return 0.5f * x * (1.0f + tanh_scalar(gelu_arg(x))); }

void geglu(float* gate, const float* up, int64_t n) {
  chunked(n, [&](int64_t lo, int64_t len) {
    if (have_avx2()) {
      geglu_avx2(gate + lo, up + lo, len);
    } else {
      for (int64_t i = lo; i < lo + len; ++i) gate[i] = gelu(gate[i]) * up[i];
    }
  });
}

void softcap(float* x, int64_t n, float cap) {
  if (cap <= 0.0f) return;
  chunked(n, [&](int64_t lo, int64_t len) {
    if (have_avx2()) {
      softcap_avx2(x + lo, len, cap);
    } else {
      for (int64_t i = lo; i < lo + len; ++i) x[i] = cap * tanh_scalar(x[i] / cap);
    }
  });
}

}  // namespace nibble
