// Legacy 32-element formats Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1: dequantizers, reference
// quantizers (spec §3.1) and the importance-matrix variants (spec §3.6). Not here: K-quants.
#include <cfloat>
#include <cmath>
#include <cstring>

#include "quant/blocks.h"
#include "quant/reference/block_io.h"
#include "quant/reference/codecs.h"
#include "quant/reference/float_ops.h"
#include "quant/reference/search.h"
#include "util/fp16.h"

namespace nibble::qref {

namespace {

// C's float -> int8_t/uint8_t conversion as ggml's x86 build performs it: truncate toward zero
// to 32 bits, keep the low byte. The legacy quantizers only pass values in [0, 32) here; the
// guard keeps NaN/inf inputs defined instead of undefined behaviour.
inline int trunc_low_byte(float t) {
  if (!(t > -2147483648.0f && t < 2147483648.0f)) return 0;
  return static_cast<int8_t>(static_cast<int32_t>(t));
}

// Min and max of a block, sequential scan from +FLT_MAX / -FLT_MAX (Q4_1, Q5_1).
void min_max(const float* x, int n, float* mn, float* mx) {
  float lo = FLT_MAX, hi = -FLT_MAX;
  for (int j = 0; j < n; ++j) {
    if (x[j] < lo) lo = x[j];
    if (x[j] > hi) hi = x[j];
  }
  *mn = lo;
  *mx = hi;
}

uint32_t read_qh(const uint8_t* qh) {
  uint32_t v;
  std::memcpy(&v, qh, 4);
  return v;
}

// The importance-matrix weight of §3.6: qw_j * sqrt(sigma2 + x_j^2).
void imatrix_weights(const float* xb, const float* qw, float sigma2, int n, float* w) {
  for (int j = 0; j < n; ++j) w[j] = qw[j] * std::sqrt(sigma2 + xb[j] * xb[j]);
}

// Pack 32 levels (0..31) into qs nibbles and the qh bit mask.
void pack_5bit(const uint8_t* L, uint8_t* qs, uint8_t* qh_bytes) {
  uint32_t qh = 0;
  for (int j = 0; j < 16; ++j) {
    const uint32_t l0 = L[j], l1 = L[j + 16];
    qs[j] = static_cast<uint8_t>((l0 & 0x0F) | ((l1 & 0x0F) << 4));
    qh |= ((l0 & 0x10u) >> 4) << j;
    qh |= ((l1 & 0x10u) >> 4) << (j + 16);
  }
  std::memcpy(qh_bytes, &qh, 4);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Dequantization (spec §2.4-§2.9)

void dequantize_q4_0(const uint8_t* src, float* dst, uint64_t n) {
  for (uint64_t b = 0; b < n / kQK4_0; ++b) {
    const auto blk = load_block<BlockQ4_0>(src, b);
    const float d = f16_to_f32(blk.d);
    float* y = dst + b * kQK4_0;
    for (int j = 0; j < 16; ++j) {
      y[j] = static_cast<float>((blk.qs[j] & 0x0F) - 8) * d;
      y[j + 16] = static_cast<float>((blk.qs[j] >> 4) - 8) * d;
    }
  }
}

void dequantize_q4_1(const uint8_t* src, float* dst, uint64_t n) {
  for (uint64_t b = 0; b < n / kQK4_1; ++b) {
    const auto blk = load_block<BlockQ4_1>(src, b);
    const float d = f16_to_f32(blk.d);
    const float m = f16_to_f32(blk.m);
    float* y = dst + b * kQK4_1;
    for (int j = 0; j < 16; ++j) {
      y[j] = static_cast<float>(blk.qs[j] & 0x0F) * d + m;
      y[j + 16] = static_cast<float>(blk.qs[j] >> 4) * d + m;
    }
  }
}

void dequantize_q5_0(const uint8_t* src, float* dst, uint64_t n) {
  for (uint64_t b = 0; b < n / kQK5_0; ++b) {
    const auto blk = load_block<BlockQ5_0>(src, b);
    const float d = f16_to_f32(blk.d);
    const uint32_t qh = read_qh(blk.qh);
    float* y = dst + b * kQK5_0;
    for (int j = 0; j < 16; ++j) {
      const int h0 = static_cast<int>((qh >> j) & 1u) << 4;
      const int h1 = static_cast<int>((qh >> (j + 16)) & 1u) << 4;
      y[j] = static_cast<float>(((blk.qs[j] & 0x0F) | h0) - 16) * d;
      y[j + 16] = static_cast<float>(((blk.qs[j] >> 4) | h1) - 16) * d;
    }
  }
}

void dequantize_q5_1(const uint8_t* src, float* dst, uint64_t n) {
  for (uint64_t b = 0; b < n / kQK5_1; ++b) {
    const auto blk = load_block<BlockQ5_1>(src, b);
    const float d = f16_to_f32(blk.d);
    const float m = f16_to_f32(blk.m);
    const uint32_t qh = read_qh(blk.qh);
    float* y = dst + b * kQK5_1;
    for (int j = 0; j < 16; ++j) {
      const int h0 = static_cast<int>((qh >> j) & 1u) << 4;
      const int h1 = static_cast<int>((qh >> (j + 16)) & 1u) << 4;
      y[j] = static_cast<float>((blk.qs[j] & 0x0F) | h0) * d + m;
      y[j + 16] = static_cast<float>((blk.qs[j] >> 4) | h1) * d + m;
    }
  }
}

void dequantize_q8_0(const uint8_t* src, float* dst, uint64_t n) {
  for (uint64_t b = 0; b < n / kQK8_0; ++b) {
    const auto blk = load_block<BlockQ8_0>(src, b);
    const float d = f16_to_f32(blk.d);
    for (int j = 0; j < 32; ++j) dst[b * kQK8_0 + j] = static_cast<float>(blk.qs[j]) * d;
  }
}

void dequantize_q8_1(const uint8_t* src, float* dst, uint64_t n) {
  for (uint64_t b = 0; b < n / kQK8_1; ++b) {
    const auto blk = load_block<BlockQ8_1>(src, b);
    const float d = f16_to_f32(blk.d);
    for (int j = 0; j < 32; ++j) dst[b * kQK8_1 + j] = static_cast<float>(blk.qs[j]) * d;
  }
}

// ---------------------------------------------------------------------------------------------
// Reference quantizers (spec §3.1)

void quantize_q4_0(const float* x, uint8_t* dst, uint64_t n) {
  for (uint64_t b = 0; b < n / kQK4_0; ++b) {
    const float* xb = x + b * kQK4_0;
    const float d = abs_max(xb, kQK4_0).max / -8.0f;  // max-|x| element -> quant 0
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    BlockQ4_0 blk;
    blk.d = f32_to_f16(d);  // the quants use the unrounded d
    for (int j = 0; j < 16; ++j) {
      int q0 = trunc_low_byte(xb[j] * id + 8.5f);
      int q1 = trunc_low_byte(xb[j + 16] * id + 8.5f);
      if (q0 > 15) q0 = 15;
      if (q1 > 15) q1 = 15;
      blk.qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
    store_block(dst, b, blk);
  }
}

void quantize_q4_1(const float* x, uint8_t* dst, uint64_t n) {
  for (uint64_t b = 0; b < n / kQK4_1; ++b) {
    const float* xb = x + b * kQK4_1;
    float mn, mx;
    min_max(xb, kQK4_1, &mn, &mx);
    const float d = (mx - mn) / 15.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    BlockQ4_1 blk;
    blk.d = f32_to_f16(d);
    blk.m = f32_to_f16(mn);
    for (int j = 0; j < 16; ++j) {
      int q0 = trunc_low_byte((xb[j] - mn) * id + 0.5f);
      int q1 = trunc_low_byte((xb[j + 16] - mn) * id + 0.5f);
      if (q0 > 15) q0 = 15;
      if (q1 > 15) q1 = 15;
      blk.qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
    store_block(dst, b, blk);
  }
}

void quantize_q5_0(const float* x, uint8_t* dst, uint64_t n) {
  for (uint64_t b = 0; b < n / kQK5_0; ++b) {
    const float* xb = x + b * kQK5_0;
    const float d = abs_max(xb, kQK5_0).max / -16.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    BlockQ5_0 blk;
    blk.d = f32_to_f16(d);
    uint8_t L[32];
    for (int j = 0; j < 32; ++j) {
      int q = trunc_low_byte(xb[j] * id + 16.5f);
      if (q > 31) q = 31;
      L[j] = static_cast<uint8_t>(q);
    }
    pack_5bit(L, blk.qs, blk.qh);
    store_block(dst, b, blk);
  }
}

void quantize_q5_1(const float* x, uint8_t* dst, uint64_t n) {
  for (uint64_t b = 0; b < n / kQK5_1; ++b) {
    const float* xb = x + b * kQK5_1;
    float mn, mx;
    min_max(xb, kQK5_1, &mn, &mx);
    const float d = (mx - mn) / 31.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    BlockQ5_1 blk;
    blk.d = f32_to_f16(d);
    blk.m = f32_to_f16(mn);
    uint8_t L[32];
    // No clamp in the reference: (x - min)*id + 0.5 cannot exceed 31.5.
    for (int j = 0; j < 32; ++j)
      L[j] = static_cast<uint8_t>(trunc_low_byte((xb[j] - mn) * id + 0.5f));
    pack_5bit(L, blk.qs, blk.qh);
    store_block(dst, b, blk);
  }
}

void quantize_q8_0(const float* x, uint8_t* dst, uint64_t n) {
  for (uint64_t b = 0; b < n / kQK8_0; ++b) {
    const float* xb = x + b * kQK8_0;
    float amax = 0.0f;
    for (int j = 0; j < kQK8_0; ++j) amax = std::fmax(amax, std::fabs(xb[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    BlockQ8_0 blk;
    blk.d = f32_to_f16(d);
    // roundf: ties away from zero (the SIMD activation path rounds ties to even; files don't).
    for (int j = 0; j < kQK8_0; ++j)
      blk.qs[j] = static_cast<int8_t>(trunc_low_byte(std::round(xb[j] * id)));
    store_block(dst, b, blk);
  }
}

void quantize_q8_1(const float* x, uint8_t* dst, uint64_t n) {
  for (uint64_t b = 0; b < n / kQK8_1; ++b) {
    const float* xb = x + b * kQK8_1;
    float amax = 0.0f;
    for (int j = 0; j < kQK8_1; ++j) amax = std::fmax(amax, std::fabs(xb[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    BlockQ8_1 blk;
    blk.d = f32_to_f16(d);
    int sum = 0;
    for (int j = 0; j < kQK8_1; ++j) {
      blk.qs[j] = static_cast<int8_t>(trunc_low_byte(std::round(xb[j] * id)));
      sum += blk.qs[j];
    }
    blk.s = f32_to_f16(static_cast<float>(sum) * d);  // unrounded d
    store_block(dst, b, blk);
  }
}

// ---------------------------------------------------------------------------------------------
// Importance-matrix variants (spec §3.6): sigma2 is the mean square of the WHOLE row.

void quantize_q4_0_imatrix(const float* row, uint8_t* dst, uint64_t n, const float* qw) {
  const float sigma2 = sum_sq(row, static_cast<int64_t>(n)) / static_cast<float>(n);
  float w[kQK4_0];
  int8_t L[kQK4_0];
  for (uint64_t b = 0; b < n / kQK4_0; ++b) {
    const float* xb = row + b * kQK4_0;
    imatrix_weights(xb, qw + b * kQK4_0, sigma2, kQK4_0, w);
    const float d = make_qx_quants(kQK4_0, 8, xb, L, 1, w);
    BlockQ4_0 blk;
    blk.d = f32_to_f16(d);
    for (int j = 0; j < 16; ++j) blk.qs[j] = static_cast<uint8_t>(L[j] | (L[j + 16] << 4));
    store_block(dst, b, blk);
  }
}

void quantize_q5_0_imatrix(const float* row, uint8_t* dst, uint64_t n, const float* qw) {
  const float sigma2 = sum_sq(row, static_cast<int64_t>(n)) / static_cast<float>(n);
  float w[kQK5_0];
  int8_t L[kQK5_0];
  for (uint64_t b = 0; b < n / kQK5_0; ++b) {
    const float* xb = row + b * kQK5_0;
    imatrix_weights(xb, qw + b * kQK5_0, sigma2, kQK5_0, w);
    const float d = make_qx_quants(kQK5_0, 16, xb, L, 1, w);
    BlockQ5_0 blk;
    blk.d = f32_to_f16(d);
    uint8_t U[kQK5_0];
    for (int j = 0; j < kQK5_0; ++j) U[j] = static_cast<uint8_t>(L[j]);
    pack_5bit(U, blk.qs, blk.qh);
    store_block(dst, b, blk);
  }
}

void quantize_q4_1_imatrix(const float* row, uint8_t* dst, uint64_t n, const float* qw) {
  const float sigma2 = sum_sq(row, static_cast<int64_t>(n)) / static_cast<float>(n);
  float w[kQK4_1];
  uint8_t L[kQK4_1], Laux[kQK4_1];
  for (uint64_t b = 0; b < n / kQK4_1; ++b) {
    const float* xb = row + b * kQK4_1;
    imatrix_weights(xb, qw + b * kQK4_1, sigma2, kQK4_1, w);
    float the_min = 0.0f;
    const float d = make_qkx3_quants(kQK4_1, 15, xb, w, L, &the_min, Laux, -0.9f, 0.05f, 36, false);
    BlockQ4_1 blk;
    blk.d = f32_to_f16(d);
    blk.m = f32_to_f16(-the_min);
    for (int j = 0; j < 16; ++j) blk.qs[j] = static_cast<uint8_t>(L[j] | (L[j + 16] << 4));
    store_block(dst, b, blk);
  }
}

void quantize_q5_1_imatrix(const float* row, uint8_t* dst, uint64_t n, const float* qw) {
  const float sigma2 = sum_sq(row, static_cast<int64_t>(n)) / static_cast<float>(n);
  float w[kQK5_1];
  uint8_t L[kQK5_1], Laux[kQK5_1];
  for (uint64_t b = 0; b < n / kQK5_1; ++b) {
    const float* xb = row + b * kQK5_1;
    imatrix_weights(xb, qw + b * kQK5_1, sigma2, kQK5_1, w);
    float the_min = 0.0f;
    const float d = make_qkx3_quants(kQK5_1, 31, xb, w, L, &the_min, Laux, -0.9f, 0.05f, 36, false);
    BlockQ5_1 blk;
    blk.d = f32_to_f16(d);
    blk.m = f32_to_f16(-the_min);
    pack_5bit(L, blk.qs, blk.qh);
    store_block(dst, b, blk);
  }
}

}  // namespace nibble::qref
