// Activation quantization to int8 blocks of 32 (round half away from zero, as llama.cpp's
// quantize_row_q8_0 reference).
#include "ops/int8_acts.h"

#include <algorithm>
#include <immintrin.h>

#include <cmath>
#include <cstdlib>
#include <cstring>

#include "util/thread_pool.h"

namespace nibble {

#define NIBBLE_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))

// Every q in [-127, 127], NaN to 0: where x * id is not a plain number (infinite or NaN inputs,
// or a block so small that 1 / d overflows) the kernels' sign tricks and int16 pair sums still
// hold, and the fast form gives the same bytes.
inline float clamp_q(float v) {
  if (v != v) return 0.0f;
  return v > 127.0f ? 127.0f : (v < -127.0f ? -127.0f : v);
}

NIBBLE_CLONES
void quantize_act_row(const float* x, int64_t n, int8_t* q, float* d, float* sum16) {
  for (int64_t b = 0; b < n / 32; ++b) {
    const float* xb = x + b * 32;
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(xb[j]));
    const float db = amax / 127.0f;
    const float id = db != 0.0f ? 1.0f / db : 0.0f;
    int8_t* qb = q + b * 32;
    for (int j = 0; j < 32; ++j) qb[j] = static_cast<int8_t>(clamp_q(std::round(xb[j] * id)));
    d[b] = db;
    if (sum16 != nullptr) {
      int s0 = 0, s1 = 0;
      for (int j = 0; j < 16; ++j) s0 += qb[j];
      for (int j = 16; j < 32; ++j) s1 += qb[j];
      sum16[2 * b] = db * static_cast<float>(s0);
      sum16[2 * b + 1] = db * static_cast<float>(s1);
    }
  }
}

namespace {

#define NIBBLE_AVX2 __attribute__((target("avx2,fma")))

NIBBLE_AVX2 inline int hsum(__m256i s) {
  __m128i t = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
  t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0x4E));
  t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0xB1));
  return _mm_cvtsi128_si32(t);
}

// round(v) half away from zero for |v| < 2^23: trunc(v + copysign(0.49999997, v)).
NIBBLE_AVX2 void act_row_avx2(const float* x, int64_t n, int8_t* q, float* d, float* sum16) {
  const __m256 sign = _mm256_set1_ps(-0.0f), half = _mm256_set1_ps(0.49999997f);
  for (int64_t b = 0; b < n / 32; ++b) {
    const float* xb = x + b * 32;
    __m256 v[4];
    __m256 mx = _mm256_setzero_ps();
    for (int k = 0; k < 4; ++k) {
      v[k] = _mm256_loadu_ps(xb + 8 * k);
      mx = _mm256_max_ps(mx, _mm256_andnot_ps(sign, v[k]));
    }
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_shuffle_ps(m4, m4, 1));
    const float amax = _mm_cvtss_f32(m4);
    const float db = amax / 127.0f;
    const float id = db != 0.0f ? 1.0f / db : 0.0f;
    const __m256 idv = _mm256_set1_ps(id);
    __m256i i32[4];
    for (int k = 0; k < 4; ++k) {
      const __m256 p = _mm256_mul_ps(v[k], idv);
      __m256 r = _mm256_add_ps(p, _mm256_or_ps(_mm256_and_ps(p, sign), half));
      r = _mm256_and_ps(r, _mm256_cmp_ps(r, r, _CMP_ORD_Q));  // NaN -> 0 (clamp_q)
      r = _mm256_min_ps(_mm256_max_ps(r, _mm256_set1_ps(-127.0f)), _mm256_set1_ps(127.0f));
      i32[k] = _mm256_cvttps_epi32(r);
    }
    // Pack 32 int32 -> 32 int8 in element order.
    const __m256i p01 = _mm256_packs_epi32(i32[0], i32[1]);  // lanes interleaved per 128
    const __m256i p23 = _mm256_packs_epi32(i32[2], i32[3]);
    __m256i p8 = _mm256_packs_epi16(p01, p23);
    p8 = _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + b * 32), p8);
    d[b] = db;
    if (sum16 != nullptr) {
      const __m256i s0 = _mm256_add_epi32(i32[0], i32[1]);
      const __m256i s1 = _mm256_add_epi32(i32[2], i32[3]);
      sum16[2 * b] = db * static_cast<float>(hsum(s0));
      sum16[2 * b + 1] = db * static_cast<float>(hsum(s1));
    }
  }
}

bool use_avx2() {
  static const bool yes = [] {
    __builtin_cpu_init();
    const char* isa = std::getenv("NIBBLE_ISA");
    if (isa != nullptr && std::strcmp(isa, "generic") == 0) return false;
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return yes;
}

}  // namespace

void quantize_act_row_fast(const float* x, int64_t n, int8_t* q, float* d, float* sum16) {
  if (use_avx2()) {
    act_row_avx2(x, n, q, d, sum16);
  } else {
    quantize_act_row(x, n, q, d, sum16);
  }
}

NIBBLE_CLONES
void add_unsigned_acts(Int8Acts& a) {
  const size_t total = static_cast<size_t>(a.n_tokens * a.n);
  if (a.u.size() < total) a.u.resize(total);
  const int8_t* q = a.q.data();
  uint8_t* u = a.u.data();
  for (size_t i = 0; i < total; ++i) u[i] = static_cast<uint8_t>(q[i]) ^ 0x80u;
}

NIBBLE_CLONES
void add_decode_terms(Int8Acts& a) {
  const int64_t lanes = a.n / 4;
  if (a.neg8sum4.size() < static_cast<size_t>(lanes)) {
    a.neg8sum4.resize(static_cast<size_t>(lanes));
    a.dlane.resize(static_cast<size_t>(lanes));
  }
  const int8_t* q = a.q.data();
  for (int64_t l = 0; l < lanes; ++l) {
    a.neg8sum4[l] = -8 * (int32_t{q[4 * l]} + q[4 * l + 1] + q[4 * l + 2] + q[4 * l + 3]);
    a.dlane[l] = a.d[l / 8];
  }
  a.has_decode_terms = true;
}

void add_q4_0_decode_terms(Int8Acts& a) {
  const int64_t nb = a.n / 32, n_groups = nb / 4, n_chunks = (n_groups + 3) / 4;
  a.q4_lohi.resize(static_cast<size_t>(128 * n_groups));
  a.q4_bcorr.assign(static_cast<size_t>(16 * n_chunks), 0);
  a.q4_dperm.assign(static_cast<size_t>(16 * n_chunks), 0.0f);
  const int8_t* q = a.q.data();
  for (int64_t g = 0; g < n_groups; ++g) {
    int8_t* lo = a.q4_lohi.data() + 128 * g;
    const int64_t c = g / 4, m = g % 4;
    for (int k = 0; k < 4; ++k) {
      const int8_t* blk = q + 32 * (4 * g + k);
      std::memcpy(lo + 16 * k, blk, 16);
      std::memcpy(lo + 64 + 16 * k, blk + 16, 16);
      int32_t s = 0;
      for (int i = 0; i < 32; ++i) s += blk[i];
      const auto lane = static_cast<size_t>(16 * c + 4 * k + m);
      a.q4_bcorr[lane] = -8 * s;
      a.q4_dperm[lane] = a.d[4 * g + k];
    }
  }
  a.has_q4_0_terms = true;
}

void add_q4_0_pair_terms(Int8Acts& a) {
  const int64_t n = a.n, nb = n / 32, n_groups = nb / 8;
  const auto total = static_cast<size_t>(a.n_tokens * n);
  if (a.q4p.size() < total) a.q4p.resize(total);
  if (a.q4p_corr.size() < total / 32) a.q4p_corr.resize(total / 32);
  if (a.q4p_d.size() < total / 32) a.q4p_d.resize(total / 32);
  auto one = [&](int64_t t) {
    const int8_t* q = a.q_of(t);
    const float* d = a.d_of(t);
    int8_t* p = a.q4p.data() + t * n;
    int32_t* corr = a.q4p_corr.data() + t * nb;
    float* dp = a.q4p_d.data() + t * nb;
    for (int64_t g = 0; g < n_groups; ++g) {
      for (int j = 0; j < 4; ++j) {
        const int8_t* b0 = q + 32 * (8 * g + 2 * j);
        int8_t* dst = p + 256 * g + 64 * j;
        std::memcpy(dst, b0, 16);
        std::memcpy(dst + 16, b0 + 32, 16);
        std::memcpy(dst + 32, b0 + 16, 16);
        std::memcpy(dst + 48, b0 + 48, 16);
      }
      for (int k = 0; k < 8; ++k) {
        const int8_t* blk = q + 32 * (8 * g + k);
        int32_t s = 0;
        for (int i = 0; i < 32; ++i) s += blk[i];
        corr[8 * g + kQ4PairLane[k]] = -8 * s;
        dp[8 * g + kQ4PairLane[k]] = d[8 * g + k];
      }
    }
  };
  if (a.n_tokens >= 8 && a.n_tokens * n >= (int64_t{1} << 16)) {
    parallel_for(a.n_tokens, one);
  } else {
    for (int64_t t = 0; t < a.n_tokens; ++t) one(t);
  }
  a.has_q4_0_pair_terms = true;
}

void add_isum16(Int8Acts& a) {
  const auto total = static_cast<size_t>(a.n_tokens * a.n);
  if (a.isum16.size() < total / 16) a.isum16.resize(total / 16);
  for (size_t g = 0; g < total / 16; ++g) {
    int32_t s = 0;
    for (int i = 0; i < 16; ++i) s += a.q[16 * g + static_cast<size_t>(i)];
    a.isum16[g] = static_cast<int16_t>(s);  // |s| <= 16 * 127
  }
  a.has_isum16 = true;
}

void quantize_acts(const float* x, int64_t n_tokens, int64_t n, bool with_sums, Int8Acts& out) {
  out.n = n;
  out.n_tokens = n_tokens;
  out.has_sums = with_sums;
  out.has_decode_terms = false;
  out.has_q4_0_terms = false;
  out.has_q4_0_pair_terms = false;
  out.has_isum16 = false;
  const size_t total = static_cast<size_t>(n_tokens * n);
  if (out.q.size() < total) out.q.resize(total);
  if (out.d.size() < total / 32) out.d.resize(total / 32);
  if (with_sums && out.sum16.size() < total / 16) out.sum16.resize(total / 16);
  auto one = [&](int64_t t) {
    quantize_act_row_fast(x + t * n, n, out.q.data() + t * n, out.d.data() + t * (n / 32),
                     with_sums ? out.sum16.data() + t * (n / 16) : nullptr);
  };
  if (n_tokens >= 8 && n_tokens * n >= (int64_t{1} << 16)) {
    parallel_for(n_tokens, one);
  } else {
    for (int64_t t = 0; t < n_tokens; ++t) one(t);
  }
}

}  // namespace nibble
