// K-quants Q2_K..Q6_K and the Q8_K activation format: dequantizers, reference quantizers
// (spec §3.3, §3.4; what llama-quantize runs WITHOUT an imatrix) and the importance-matrix
// quantizers (spec §3.6; ggml's quantize_row_*_K_impl, run only WITH an imatrix). The two are
// different algorithms, not one algorithm with unit weights. Not here: the search helpers
// (reference/search.cpp).
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

// ---- bit packing (spec §2.10-§2.15) ---------------------------------------------------------

// 2-bit planes of Q2_K / Q3_K: element e -> byte 32*(e/128) + e%32, bits 2*((e%128)/32).
void pack_2bit_planes(const uint8_t* L, uint8_t* qs) {
  for (int j = 0; j < kQK_K; j += 128) {
    for (int l = 0; l < 32; ++l) {
      qs[j / 4 + l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) |
                                           (L[j + l + 96] << 6));
    }
  }
}
int unpack_2bit_plane(const uint8_t* qs, int e) {
  const int r = e % 128;
  return (qs[32 * (e / 128) + r % 32] >> (2 * (r / 32))) & 3;
}

// Q3_K 6-bit scales: u (0..63) of sub-block j.
void q3k_set_scale(uint8_t* scales, int j, int u) {
  if (j < 8) {
    scales[j] = static_cast<uint8_t>(scales[j] | (u & 0xF));
  } else {
    scales[j - 8] = static_cast<uint8_t>(scales[j - 8] | ((u & 0xF) << 4));
  }
  scales[8 + j % 4] = static_cast<uint8_t>(scales[8 + j % 4] | ((u >> 4) << (2 * (j / 4))));
}
int q3k_get_scale(const uint8_t* scales, int j) {
  const int low = j < 8 ? (scales[j] & 0xF) : (scales[j - 8] >> 4);
  return low | (((scales[8 + j % 4] >> (2 * (j / 4))) & 3) << 4);
}

// Q4_K / Q5_K 6-bit scale and min of sub-block j (get_scale_min_k4).
void k4_set_scale_min(uint8_t* q, int j, int sc, int m) {
  if (j < 4) {
    q[j] = static_cast<uint8_t>(sc);
    q[j + 4] = static_cast<uint8_t>(m);
  } else {
    q[j + 4] = static_cast<uint8_t>((sc & 0xF) | ((m & 0xF) << 4));
    q[j - 4] = static_cast<uint8_t>(q[j - 4] | ((sc >> 4) << 6));
    q[j] = static_cast<uint8_t>(q[j] | ((m >> 4) << 6));
  }
}
void k4_get_scale_min(const uint8_t* q, int j, int* sc, int* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// ---- shared tails of the quantizers ---------------------------------------------------------

// Q2_K step 4 (also the imatrix path): re-quantize with the stored f16 d/dmin and 4-bit
// scale/min; sub-blocks whose scale decodes to 0 keep the search's L. Then pack.
void q2k_finish(const float* x, uint8_t* L, BlockQ2_K* blk) {
  const float d = f16_to_f32(blk->d);
  const float dmin = f16_to_f32(blk->dmin);
  for (int j = 0; j < 16; ++j) {
    const float dd = d * static_cast<float>(blk->scales[j] & 0xF);
    if (dd == 0.0f) continue;
    const float dm = dmin * static_cast<float>(blk->scales[j] >> 4);
    for (int ii = 0; ii < 16; ++ii) {
      L[16 * j + ii] =
          static_cast<uint8_t>(clamp_int(nearest_int((x[16 * j + ii] + dm) / dd), 0, 3));
    }
  }
  pack_2bit_planes(L, blk->qs);
}

// Q3_K steps 3-4: re-quantize with the stored scales, split the high bit into hmask, pack.
// L holds levels 0..7 on entry.
void q3k_finish(const float* x, int8_t* L, BlockQ3_K* blk) {
  const float d = f16_to_f32(blk->d);
  for (int j = 0; j < 16; ++j) {
    const float dd = d * static_cast<float>(q3k_get_scale(blk->scales, j) - 32);
    if (dd == 0.0f) continue;
    for (int ii = 0; ii < 16; ++ii) {
      L[16 * j + ii] = static_cast<int8_t>(clamp_int(nearest_int(x[16 * j + ii] / dd), -4, 3) + 4);
    }
  }
  std::memset(blk->hmask, 0, sizeof(blk->hmask));
  uint8_t U[kQK_K];
  for (int e = 0; e < kQK_K; ++e) {
    int l = L[e];
    if (l > 3) {
      blk->hmask[e % 32] = static_cast<uint8_t>(blk->hmask[e % 32] | (1u << (e / 32)));
      l -= 4;
    }
    U[e] = static_cast<uint8_t>(l);
  }
  pack_2bit_planes(U, blk->qs);
}

// Q4_K / Q5_K re-quantization with the stored d/dmin and 6-bit scale/min (levels 0..nmax).
void k4_requantize(const float* x, uint8_t* L, const uint8_t* scales, uint16_t d16, uint16_t dmin16,
                   int nmax) {
  const float d = f16_to_f32(d16);
  const float dmin = f16_to_f32(dmin16);
  for (int j = 0; j < 8; ++j) {
    int sc, m;
    k4_get_scale_min(scales, j, &sc, &m);
    const float dd = d * static_cast<float>(sc);
    if (dd == 0.0f) continue;
    const float dm = dmin * static_cast<float>(m);
    for (int ii = 0; ii < 32; ++ii) {
      L[32 * j + ii] =
          static_cast<uint8_t>(clamp_int(nearest_int((x[32 * j + ii] + dm) / dd), 0, nmax));
    }
  }
}

void q4k_pack(const uint8_t* L, BlockQ4_K* blk) {
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) {
      blk->qs[32 * c + l] = static_cast<uint8_t>(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
    }
  }
}

void q5k_pack(const uint8_t* L, BlockQ5_K* blk) {
  std::memset(blk->qh, 0, sizeof(blk->qh));
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) {
      int l1 = L[64 * c + l];
      int l2 = L[64 * c + 32 + l];
      if (l1 > 15) {
        l1 -= 16;
        blk->qh[l] = static_cast<uint8_t>(blk->qh[l] | (1u << (2 * c)));
      }
      if (l2 > 15) {
        l2 -= 16;
        blk->qh[l] = static_cast<uint8_t>(blk->qh[l] | (2u << (2 * c)));
      }
      blk->qs[32 * c + l] = static_cast<uint8_t>(l1 | (l2 << 4));
    }
  }
}

// Q6_K: one super-block, reference (qw == null: weights x^2) or imatrix (raw qw slice).
void q6k_block(const float* x, const float* qw, BlockQ6_K* blk) {
  int8_t L[kQK_K];
  float scales[16];
  float max_scale = 0.0f, max_abs_scale = 0.0f;
  for (int ib = 0; ib < 16; ++ib) {
    const float scale =
        make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib, 1, qw ? qw + 16 * ib : nullptr);
    scales[ib] = scale;
    const float abs_scale = std::fabs(scale);
    if (abs_scale > max_abs_scale) {
      max_abs_scale = abs_scale;
      max_scale = scale;
    }
  }
  if (max_abs_scale < kGroupMaxEps) {
    std::memset(blk, 0, sizeof(*blk));
    return;
  }
  const float iscale = -128.0f / max_scale;
  blk->d = f32_to_f16(1.0f / iscale);
  for (int ib = 0; ib < 16; ++ib) {
    int l = nearest_int(iscale * scales[ib]);
    if (l > 127) l = 127;
    blk->scales[ib] = static_cast<int8_t>(l);
  }
  const float d = f16_to_f32(blk->d);
  for (int j = 0; j < 16; ++j) {
    const float dd = d * static_cast<float>(blk->scales[j]);
    if (dd == 0.0f) continue;
    for (int ii = 0; ii < 16; ++ii) {
      L[16 * j + ii] =
          static_cast<int8_t>(clamp_int(nearest_int(x[16 * j + ii] / dd), -32, 31) + 32);
    }
  }
  for (int h = 0; h < 2; ++h) {
    const int8_t* Lh = L + 128 * h;
    uint8_t* ql = blk->ql + 64 * h;
    uint8_t* qh = blk->qh + 32 * h;
    for (int l = 0; l < 32; ++l) {
      const int q1 = Lh[l], q2 = Lh[l + 32], q3 = Lh[l + 64], q4 = Lh[l + 96];
      ql[l] = static_cast<uint8_t>((q1 & 0xF) | ((q3 & 0xF) << 4));
      ql[l + 32] = static_cast<uint8_t>((q2 & 0xF) | ((q4 & 0xF) << 4));
      qh[l] =
          static_cast<uint8_t>((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
    }
  }
}

// The §3.6 weight qw_l * sqrt(sigma2 + x_l^2) for n values, and their sequential sum.
float imatrix_weights(const float* x, const float* qw, float sigma2, int n, float* w) {
  float sumw = 0.0f;
  for (int l = 0; l < n; ++l) w[l] = qw[l] * std::sqrt(sigma2 + x[l] * x[l]);
  for (int l = 0; l < n; ++l) sumw += w[l];
  return sumw;
}

// Q4_K / Q5_K imatrix path (spec §3.6): nmax 15 or 31.
template <class Block>
void k4_imatrix_block(const float* x, const float* qw, int nmax, Block* blk) {
  uint8_t L[kQK_K], Laux[32], Ls[8], Lm[8];
  float w[32], sw[8], mins[8], scales[8];
  const float sigma2 = (2.0f * sum_sq(x, kQK_K)) / static_cast<float>(kQK_K);
  for (int j = 0; j < 8; ++j) {
    sw[j] = imatrix_weights(x + 32 * j, qw + 32 * j, sigma2, 32, w);
    scales[j] = make_qkx3_quants(32, nmax, x + 32 * j, w, L + 32 * j, &mins[j], Laux, -0.9f, 0.05f,
                                 36, false);
  }
  const float d_block = make_qp_quants(8, 63, scales, Ls, sw);
  const float m_block = make_qp_quants(8, 63, mins, Lm, sw);
  std::memset(blk->scales, 0, sizeof(blk->scales));
  for (int j = 0; j < 8; ++j) {
    const int ls = Ls[j] < 63 ? Ls[j] : 63;
    const int lm = Lm[j] < 63 ? Lm[j] : 63;
    k4_set_scale_min(blk->scales, j, ls, lm);
  }
  blk->d = f32_to_f16(d_block);
  blk->dmin = f32_to_f16(m_block);
  k4_requantize(x, L, blk->scales, blk->d, blk->dmin, nmax);
  if constexpr (sizeof(Block) == sizeof(BlockQ4_K)) {
    q4k_pack(L, blk);
  } else {
    q5k_pack(L, blk);
  }
}

// Q4_K / Q5_K reference path (spec §3.3).
template <class Block>
void k4_ref_block(const float* x, int nmax, float rmin, int nstep, Block* blk) {
  uint8_t L[kQK_K], Laux[32];
  float w[32], mins[8], scales[8];
  float max_scale = 0.0f, max_min = 0.0f;
  for (int j = 0; j < 8; ++j) {
    const float* xs = x + 32 * j;
    const float av_x = std::sqrt(sum_sq(xs, 32) / 32.0f);
    for (int l = 0; l < 32; ++l) w[l] = av_x + std::fabs(xs[l]);
    scales[j] =
        make_qkx2_quants(32, nmax, xs, w, L + 32 * j, &mins[j], Laux, rmin, 0.1f, nstep, false);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  const float inv_scale = max_scale > 0.0f ? 63.0f / max_scale : 0.0f;
  const float inv_min = max_min > 0.0f ? 63.0f / max_min : 0.0f;
  std::memset(blk->scales, 0, sizeof(blk->scales));
  for (int j = 0; j < 8; ++j) {
    // ggml stores nearest_int into a uint8_t before the min (hence the & 0xFF).
    int ls = nearest_int(inv_scale * scales[j]) & 0xFF;
    int lm = nearest_int(inv_min * mins[j]) & 0xFF;
    if (ls > 63) ls = 63;
    if (lm > 63) lm = 63;
    k4_set_scale_min(blk->scales, j, ls, lm);
  }
  blk->d = f32_to_f16(max_scale / 63.0f);
  blk->dmin = f32_to_f16(max_min / 63.0f);
  k4_requantize(x, L, blk->scales, blk->d, blk->dmin, nmax);
  if constexpr (sizeof(Block) == sizeof(BlockQ4_K)) {
    q4k_pack(L, blk);
  } else {
    q5k_pack(L, blk);
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Dequantization (spec §2.11-§2.16)

void dequantize_q2_K(const uint8_t* src, float* dst, uint64_t n) {
  for (uint64_t b = 0; b < n / kQK_K; ++b) {
    const auto blk = load_block<BlockQ2_K>(src, b);
    const float d = f16_to_f32(blk.d);
    const float dmin = f16_to_f32(blk.dmin);
    float* y = dst + b * kQK_K;
    for (int e = 0; e < kQK_K; ++e) {
      const uint8_t sc = blk.scales[e / 16];
      const float dl = d * static_cast<float>(sc & 0xF);
      const float ml = dmin * static_cast<float>(sc >> 4);
      y[e] = dl * static_cast<float>(unpack_2bit_plane(blk.qs, e)) - ml;
    }
  }
}

void dequantize_q3_K(const uint8_t* src, float* dst, uint64_t n) {
  for (uint64_t b = 0; b < n / kQK_K; ++b) {
    const auto blk = load_block<BlockQ3_K>(src, b);
    const float d = f16_to_f32(blk.d);
    float* y = dst + b * kQK_K;
    for (int e = 0; e < kQK_K; ++e) {
      const float dl = d * static_cast<float>(q3k_get_scale(blk.scales, e / 16) - 32);
      const int hb = (blk.hmask[e % 32] >> (e / 32)) & 1;
      const int q = unpack_2bit_plane(blk.qs, e) - (hb ? 0 : 4);
      y[e] = dl * static_cast<float>(q);
    }
  }
}

void dequantize_q4_K(const uint8_t* src, float* dst, uint64_t n) {
  for (uint64_t b = 0; b < n / kQK_K; ++b) {
    const auto blk = load_block<BlockQ4_K>(src, b);
    const float d = f16_to_f32(blk.d);
    const float dmin = f16_to_f32(blk.dmin);
    float* y = dst + b * kQK_K;
    for (int s = 0; s < 8; ++s) {
      int sc, m;
      k4_get_scale_min(blk.scales, s, &sc, &m);
      const float d1 = d * static_cast<float>(sc);
      const float m1 = dmin * static_cast<float>(m);
      const uint8_t* q = blk.qs + 32 * (s / 2);
      const int shift = (s % 2) * 4;
      for (int l = 0; l < 32; ++l)
        y[32 * s + l] = d1 * static_cast<float>((q[l] >> shift) & 0xF) - m1;
    }
  }
}

void dequantize_q5_K(const uint8_t* src, float* dst, uint64_t n) {
  for (uint64_t b = 0; b < n / kQK_K; ++b) {
    const auto blk = load_block<BlockQ5_K>(src, b);
    const float d = f16_to_f32(blk.d);
    const float dmin = f16_to_f32(blk.dmin);
    float* y = dst + b * kQK_K;
    for (int s = 0; s < 8; ++s) {
      int sc, m;
      k4_get_scale_min(blk.scales, s, &sc, &m);
      const float d1 = d * static_cast<float>(sc);
      const float m1 = dmin * static_cast<float>(m);
      const uint8_t* q = blk.qs + 32 * (s / 2);
      const int shift = (s % 2) * 4;
      for (int l = 0; l < 32; ++l) {
        const int hb = (blk.qh[l] >> s) & 1;  // element 32s+l: bit s of byte l
        y[32 * s + l] = d1 * static_cast<float>(((q[l] >> shift) & 0xF) + 16 * hb) - m1;
      }
    }
  }
}

void dequantize_q6_K(const uint8_t* src, float* dst, uint64_t n) {
  for (uint64_t b = 0; b < n / kQK_K; ++b) {
    const auto blk = load_block<BlockQ6_K>(src, b);
    const float d = f16_to_f32(blk.d);
    float* y = dst + b * kQK_K;
    for (int e = 0; e < kQK_K; ++e) {
      const int h = e / 128, r = e % 128, p = r / 32, l = r % 32;
      const uint8_t lo_byte = blk.ql[64 * h + l + 32 * (p & 1)];
      const int low4 = p < 2 ? (lo_byte & 0xF) : (lo_byte >> 4);
      const int high2 = (blk.qh[32 * h + l] >> (2 * p)) & 3;
      const int q = (low4 | (high2 << 4)) - 32;
      y[e] = (d * static_cast<float>(blk.scales[e / 16])) * static_cast<float>(q);
    }
  }
}

void dequantize_q8_K(const uint8_t* src, float* dst, uint64_t n) {
  for (uint64_t b = 0; b < n / kQK_K; ++b) {
    const auto blk = load_block<BlockQ8_K>(src, b);
    for (int e = 0; e < kQK_K; ++e) dst[b * kQK_K + e] = blk.d * static_cast<float>(blk.qs[e]);
  }
}

// ---------------------------------------------------------------------------------------------
// Reference quantizers (spec §3.3, §3.4)

void quantize_q2_K(const float* src, uint8_t* dst, uint64_t n) {
  for (uint64_t b = 0; b < n / kQK_K; ++b) {
    const float* x = src + b * kQK_K;
    uint8_t L[kQK_K], Laux[16];
    float w[16], mins[16], scales[16];
    float max_scale = 0.0f, max_min = 0.0f;
    for (int j = 0; j < 16; ++j) {
      for (int l = 0; l < 16; ++l) w[l] = std::fabs(x[16 * j + l]);
      scales[j] =
          make_qkx2_quants(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15, true);
      if (scales[j] > max_scale) max_scale = scales[j];
      if (mins[j] > max_min) max_min = mins[j];
    }
    BlockQ2_K blk;
    if (max_scale > 0.0f) {
      const float iscale = 15.0f / max_scale;
      for (int j = 0; j < 16; ++j)
        blk.scales[j] = static_cast<uint8_t>(nearest_int(iscale * scales[j]));
      blk.d = f32_to_f16(max_scale / 15.0f);
    } else {
      for (int j = 0; j < 16; ++j) blk.scales[j] = 0;
      blk.d = f32_to_f16(0.0f);
    }
    if (max_min > 0.0f) {
      const float iscale = 15.0f / max_min;
      for (int j = 0; j < 16; ++j) {
        blk.scales[j] = static_cast<uint8_t>(blk.scales[j] | (nearest_int(iscale * mins[j]) << 4));
      }
      blk.dmin = f32_to_f16(max_min / 15.0f);
    } else {
      blk.dmin = f32_to_f16(0.0f);
    }
    q2k_finish(x, L, &blk);
    store_block(dst, b, blk);
  }
}

void quantize_q3_K(const float* src, uint8_t* dst, uint64_t n) {
  for (uint64_t b = 0; b < n / kQK_K; ++b) {
    const float* x = src + b * kQK_K;
    int8_t L[kQK_K];
    float scales[16];
    float max_scale = 0.0f, amax = 0.0f;
    for (int j = 0; j < 16; ++j) {
      scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j, true);
      const float a = std::fabs(scales[j]);
      if (a > amax) {
        amax = a;
        max_scale = scales[j];
      }
    }
    BlockQ3_K blk;
    std::memset(blk.scales, 0, sizeof(blk.scales));
    if (max_scale != 0.0f) {
      const float iscale = -32.0f / max_scale;
      for (int j = 0; j < 16; ++j) {
        // ggml keeps nearest_int in an int8_t before clamping.
        const int l = static_cast<int8_t>(nearest_int(iscale * scales[j]));
        q3k_set_scale(blk.scales, j, clamp_int(l, -32, 31) + 32);
      }
      blk.d = f32_to_f16(1.0f / iscale);
    } else {
      blk.d = f32_to_f16(0.0f);
    }
    q3k_finish(x, L, &blk);
    store_block(dst, b, blk);
  }
}

void quantize_q4_K(const float* src, uint8_t* dst, uint64_t n) {
  for (uint64_t b = 0; b < n / kQK_K; ++b) {
    BlockQ4_K blk;
    k4_ref_block(src + b * kQK_K, 15, -1.0f, 20, &blk);
    store_block(dst, b, blk);
  }
}

void quantize_q5_K(const float* src, uint8_t* dst, uint64_t n) {
  for (uint64_t b = 0; b < n / kQK_K; ++b) {
    BlockQ5_K blk;
    k4_ref_block(src + b * kQK_K, 31, -0.5f, 15, &blk);
    store_block(dst, b, blk);
  }
}

void quantize_q6_K(const float* src, uint8_t* dst, uint64_t n) {
  for (uint64_t b = 0; b < n / kQK_K; ++b) {
    BlockQ6_K blk;
    q6k_block(src + b * kQK_K, nullptr, &blk);
    store_block(dst, b, blk);
  }
}

void quantize_q8_K(const float* src, uint8_t* dst, uint64_t n) {
  for (uint64_t b = 0; b < n / kQK_K; ++b) {
    const float* x = src + b * kQK_K;
    BlockQ8_K blk;
    std::memset(&blk, 0, sizeof(blk));
    const AbsMax m = abs_max(x, kQK_K);
    if (m.amax != 0.0f) {
      const float iscale = -127.0f / m.max;  // the max-|x| element becomes -127
      for (int j = 0; j < kQK_K; ++j) {
        const int v = nearest_int(iscale * x[j]);
        blk.qs[j] = static_cast<int8_t>(v < 127 ? v : 127);
      }
      for (int k = 0; k < 16; ++k) {
        int sum = 0;
        for (int j = 0; j < 16; ++j) sum += blk.qs[16 * k + j];
        blk.bsums[k] = static_cast<int16_t>(sum);
      }
      blk.d = 1.0f / iscale;
    }
    store_block(dst, b, blk);
  }
}

// ---------------------------------------------------------------------------------------------
// Importance-matrix quantizers (spec §3.6). qw holds one weight per column of the row; super-block
// b uses qw[256*b ...]. sigma2 is per super-block here (not per row as in the legacy types).

void quantize_q2_K_imatrix(const float* row, uint8_t* dst, uint64_t n, const float* qw) {
  for (uint64_t b = 0; b < n / kQK_K; ++b) {
    const float* x = row + b * kQK_K;
    const float* qwb = qw + b * kQK_K;
    uint8_t L[kQK_K], Laux[16], Ls[16], Lm[16];
    float w[16], sw[16], mins[16], scales[16];
    const float sigma2 = sum_sq(x, kQK_K) / static_cast<float>(kQK_K);
    for (int j = 0; j < 16; ++j) {
      sw[j] = imatrix_weights(x + 16 * j, qwb + 16 * j, sigma2, 16, w);
      scales[j] = make_qkx3_quants(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], Laux, -0.9f, 0.05f,
                                   36, false);
    }
    const float dm = make_qp_quants(16, 15, scales, Ls, sw);
    const float mm = make_qp_quants(16, 15, mins, Lm, sw);
    BlockQ2_K blk;
    blk.d = f32_to_f16(dm);
    blk.dmin = f32_to_f16(mm);
    for (int j = 0; j < 16; ++j) blk.scales[j] = static_cast<uint8_t>(Ls[j] | (Lm[j] << 4));
    q2k_finish(x, L, &blk);
    store_block(dst, b, blk);
  }
}

void quantize_q3_K_imatrix(const float* row, uint8_t* dst, uint64_t n, const float* qw) {
  for (uint64_t b = 0; b < n / kQK_K; ++b) {
    const float* x = row + b * kQK_K;
    const float* qwb = qw + b * kQK_K;
    int8_t L[kQK_K], Ls[16];
    float w[16], sw[16], scales[16];
    const float sigma2 = (2.0f * sum_sq(x, kQK_K)) / static_cast<float>(kQK_K);
    for (int j = 0; j < 16; ++j) {
      sw[j] = imatrix_weights(x + 16 * j, qwb + 16 * j, sigma2, 16, w);
      scales[j] = make_qx_quants(16, 4, x + 16 * j, L + 16 * j, 1, w);
    }
    const float d_block = make_qx_quants(16, 32, scales, Ls, 1, sw);  // Ls: the 6-bit scales
    BlockQ3_K blk;
    std::memset(blk.scales, 0, sizeof(blk.scales));
    for (int j = 0; j < 16; ++j) q3k_set_scale(blk.scales, j, Ls[j]);
    blk.d = f32_to_f16(d_block);
    q3k_finish(x, L, &blk);
    store_block(dst, b, blk);
  }
}

void quantize_q4_K_imatrix(const float* row, uint8_t* dst, uint64_t n, const float* qw) {
  for (uint64_t b = 0; b < n / kQK_K; ++b) {
    BlockQ4_K blk;
    k4_imatrix_block(row + b * kQK_K, qw + b * kQK_K, 15, &blk);
    store_block(dst, b, blk);
  }
}

void quantize_q5_K_imatrix(const float* row, uint8_t* dst, uint64_t n, const float* qw) {
  for (uint64_t b = 0; b < n / kQK_K; ++b) {
    BlockQ5_K blk;
    k4_imatrix_block(row + b * kQK_K, qw + b * kQK_K, 31, &blk);
    store_block(dst, b, blk);
  }
}

void quantize_q6_K_imatrix(const float* row, uint8_t* dst, uint64_t n, const float* qw) {
  for (uint64_t b = 0; b < n / kQK_K; ++b) {
    BlockQ6_K blk;
    q6k_block(row + b * kQK_K, qw + b * kQK_K, &blk);
    store_block(dst, b, blk);
  }
}

}  // namespace nibble::qref
