// Dispatch of the int8 dot kernels, the generic implementation (the arithmetic every ISA
// reproduces) and the shared offset term.
#include "ops/int8_dot.h"

#include <cmath>
#include <cstdlib>
#include <cstring>

#include "ops/int8_dot_kernels.h"
#include "util/cpu_features.h"

namespace nibble {

namespace int8_kernels {

#define NIBBLE_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))

NIBBLE_CLONES
float offset_term(const float* offset, const float* sum16, int64_t n_groups) {
  float m[8] = {};
  const int64_t g8 = n_groups & ~int64_t{7};
  for (int64_t g = 0; g < g8; g += 8) {
    for (int l = 0; l < 8; ++l) m[l] = std::fmaf(offset[g + l], sum16[g + l], m[l]);
  }
  float r = ((m[0] + m[4]) + (m[2] + m[6])) + ((m[1] + m[5]) + (m[3] + m[7]));
  for (int64_t g = g8; g < n_groups; ++g) r = std::fmaf(offset[g], sum16[g], r);
  return r;
}

void dot_generic(const Int8Row* rows, int n_rows, const Int8Acts& a, int64_t tok0, int64_t n_tok,
                 float* out, int64_t ldo) {
  const int64_t n = a.n, nb = n / 32;
  for (int64_t t = 0; t < n_tok; ++t) {
    const int8_t* aq = a.q_of(tok0 + t);
    const float* ad = a.d_of(tok0 + t);
    for (int r = 0; r < n_rows; ++r) {
      const Int8Row& w = rows[r];
      float acc[2][8] = {};
      for (int64_t b = 0; b < nb; ++b) {
        float* ac = acc[b & 1];
        for (int j = 0; j < 8; ++j) {
          const int64_t e = 32 * b + 4 * j;
          int32_t i = 0;
          for (int k = 0; k < 4; ++k) i += int32_t{w.q[e + k]} * int32_t{aq[e + k]};
          const float p = w.scale[8 * b + j] * ad[b];
          ac[j] = std::fmaf(static_cast<float>(i), p, ac[j]);
        }
      }
      float s[8];
      for (int j = 0; j < 8; ++j) s[j] = acc[0][j] + acc[1][j];
      float res = ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
      if (w.offset != nullptr) res += offset_term(w.offset, a.sum16_of(tok0 + t), n / 16);
      out[t * ldo + r] = res;
    }
  }
}

}  // namespace int8_kernels

namespace {

struct Choice {
  const char* name;
  int8_kernels::DotFn fn;
};

bool cpu_has(const char* isa) {
  __builtin_cpu_init();
  if (std::strcmp(isa, "avx512-vnni") == 0) {
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni") &&
           __builtin_cpu_supports("avx512dq");
  }
  if (std::strcmp(isa, "avx2") == 0) {
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }
  return std::strcmp(isa, "generic") == 0;
}

int8_kernels::DotFn fn_of(const char* isa) {
  if (std::strcmp(isa, "avx512-vnni") == 0) return int8_kernels::dot_avx512;
  if (std::strcmp(isa, "avx2") == 0) return int8_kernels::dot_avx2;
  return int8_kernels::dot_generic;
}

Choice choose() {
  static const char* const kOrder[] = {"avx512-vnni", "avx2", "generic"};
  const char* forced = std::getenv("NIBBLE_ISA");
  bool allowed = forced == nullptr || *forced == '\0';
  for (const char* isa : kOrder) {
    if (!allowed && std::strcmp(isa, forced) == 0) allowed = true;
    if (allowed && cpu_has(isa)) return {isa, fn_of(isa)};
  }
  return {"generic", int8_kernels::dot_generic};
}

const Choice& chosen() {
  static const Choice c = choose();
  return c;
}

// The types AVX-512 CPUs decode on the AVX2 block sums (no AVX-512 decoder of their own; those
// beat unpacking: E2B Q5_K_M generation 13.1 -> 25 tokens/s).
bool decodes_on_block_sums(GgmlType type) {
  return type == GgmlType::Q5_K || type == GgmlType::Q2_K || type == GgmlType::Q3_K ||
         type == GgmlType::IQ4_XS;
}

}  // namespace

void int8_dot(const Int8Row* rows, int n_rows, const Int8Acts& a, int64_t tok0, int64_t n_tok,
              float* out, int64_t ldo) {
  chosen().fn(rows, n_rows, a, tok0, n_tok, out, ldo);
}

const char* int8_dot_isa() { return chosen().name; }

bool int8_dot_direct(GgmlType type, const uint8_t* const* rows, int n_rows, const Int8Acts& a,
                     int64_t tok, float* out) {
  if (chosen().fn == int8_kernels::dot_avx512) {
    if (int8_kernels::direct_dot_avx512(type, rows, n_rows, a, tok, out)) return true;
    // Q2_K, Q3_K and IQ4_XS: the AVX2 block sums' arithmetic at twice the width (same bits).
    if (int8_kernels::low_bit_decode_rows(type, rows, n_rows, a, out)) return true;
    // Q5_K (and the above where that declines): the AVX2 block sums.
    return decodes_on_block_sums(type) && int8_block_sums_dot(type, rows, n_rows, a, tok, 1, out, 1);
  }
  if (int8_block_sums(type)) return int8_block_sums_dot(type, rows, n_rows, a, tok, 1, out, 1);
  return false;
}

bool int8_block_sums(GgmlType type) {
  static const bool avx2 =
      chosen().fn == int8_kernels::dot_avx2 && int8_kernels::block_sums_available();
  return avx2 && (type == GgmlType::Q4_0 || type == GgmlType::Q8_0 || type == GgmlType::Q4_K ||
                  type == GgmlType::Q5_K || type == GgmlType::Q6_K || type == GgmlType::Q2_K ||
                  type == GgmlType::Q3_K || type == GgmlType::IQ4_XS);
}

Int8Terms int8_terms(GgmlType type, int64_t n_tokens, bool block_sums) {
  Int8Terms t;
  if (block_sums) {
    t.q4_0_pair = type == GgmlType::Q4_0;
    t.isum16 = type == GgmlType::Q6_K || type == GgmlType::Q2_K || type == GgmlType::Q3_K;
    return t;
  }
  if (chosen().fn != int8_kernels::dot_avx512 || n_tokens != 1) return t;
  switch (type) {  // int8_dot_direct's AVX-512 decoders
    case GgmlType::Q2_K:
    case GgmlType::Q3_K:
    case GgmlType::IQ4_XS: t.isum16 = true; break;
    case GgmlType::Q4_0:
      if (int8_kernels::q4_0_decode_available()) {
        t.q4_0_decode = true;
      } else {
        t.decode = true;
      }
      break;
    case GgmlType::Q4_K:
    case GgmlType::Q6_K: t.decode = true; break;
    default: break;
  }
  return t;
}

bool int8_block_sums_dot(GgmlType type, const uint8_t* const* rows, int n_rows, const Int8Acts& a,
                         int64_t tok0, int64_t n_tok, float* out, int64_t ldo) {
  if (!int8_kernels::block_sums_available()) return false;
  return int8_kernels::block_sums_dot_avx2(type, rows, n_rows, a, tok0, n_tok, out, ldo);
}

bool int8_dot_direct_with(const char* isa, GgmlType type, const uint8_t* const* rows, int n_rows,
                          const Int8Acts& a, int64_t tok, float* out) {
  if (!cpu_has(isa)) return false;
  if (std::strcmp(isa, "avx512-vnni") == 0)
    return int8_kernels::direct_dot_avx512(type, rows, n_rows, a, tok, out);
  return false;  // AVX2 decodes with the block-sum kernels (int8_block_sums_dot)
}

bool int8_decode_matches_batch(GgmlType type) {
  if (chosen().fn == int8_kernels::dot_avx512 && decodes_on_block_sums(type))
    return !int8_kernels::block_sums_available();
  return !(type == GgmlType::Q4_0 && chosen().fn == int8_kernels::dot_avx512 &&
           int8_kernels::q4_0_decode_available());
}

bool int8_dot_with(const char* isa, const Int8Row* rows, int n_rows, const Int8Acts& a,
                   int64_t tok0, int64_t n_tok, float* out, int64_t ldo) {
  if (!cpu_has(isa)) return false;
  fn_of(isa)(rows, n_rows, a, tok0, n_tok, out, ldo);
  return true;
}

}  // namespace nibble
