// IQ4_NL and IQ4_XS: 4-bit indices into the non-linear codebook kIq4nlValues (spec §2.17,
// §2.18, §3.5). The file-producing path (ntry = 7) is one algorithm with and without an
// importance matrix: without one the weights are x^2, with one qw*sqrt(sigma2 + x^2).
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

constexpr const int8_t* kValues = kIq4nlValues;

// ggml's quantize_row_iq4_nl_impl for one super-block of `sb` values (32 for IQ4_NL, 256 for
// IQ4_XS) in sub-blocks of 32. Writes the f16 d, the packed nibbles q4[sb/2] and, when sb > 32,
// the 6-bit sub-block scales.
void iq4_core(int sb, const float* x, const float* qw, int ntry, uint16_t* d_out, uint8_t* q4,
              uint16_t* scales_h, uint8_t* scales_l) {
  const int nsub = sb / 32;
  float scales[kQK_K / 32];
  uint8_t L[kQK_K];
  float w[32];

  // §3.5 step 1: sum first, then multiply by the f32 constant 2/sb.
  const float sigma2 = sum_sq(x, sb) * (2.0f / static_cast<float>(sb));

  float max_scale = 0.0f, amax_scale = 0.0f;
  for (int ib = 0; ib < nsub; ++ib) {
    const float* xb = x + 32 * ib;
    uint8_t* Lb = L + 32 * ib;
    // Indices of a (near-)zero sub-block are never searched; 8 (K[8] = 1) is nearest to 0.
    std::memset(Lb, 8, 32);
    if (qw != nullptr) {
      const float* qwb = qw + 32 * ib;
      for (int j = 0; j < 32; ++j) w[j] = qwb[j] * std::sqrt(sigma2 + xb[j] * xb[j]);
    } else {
      for (int j = 0; j < 32; ++j) w[j] = xb[j] * xb[j];
    }
    const AbsMax m = abs_max(xb, 32);
    if (m.amax < kGroupMaxEps) {
      scales[ib] = 0.0f;
      continue;
    }
    const float k0 = static_cast<float>(kValues[0]);
    float d = ntry > 0 ? -m.max / k0 : m.max / k0;
    float id = 1.0f / d;
    float sumqx = 0.0f, sumq2 = 0.0f;
    for (int j = 0; j < 32; ++j) {
      const int l = best_index_iq4(kValues, id * xb[j]);
      Lb[j] = static_cast<uint8_t>(l);
      const float q = static_cast<float>(kValues[l]);
      sumqx += (w[j] * q) * xb[j];
      sumq2 += (w[j] * q) * q;
    }
    d = sumq2 > 0.0f ? sumqx / sumq2 : 0.0f;
    float best = d * sumqx;
    for (int itry = -ntry; itry <= ntry; ++itry) {
      id = static_cast<float>(itry + kValues[0]) / m.max;
      sumqx = 0.0f;
      sumq2 = 0.0f;
      for (int j = 0; j < 32; ++j) {
        const float q = static_cast<float>(kValues[best_index_iq4(kValues, id * xb[j])]);
        sumqx += (w[j] * q) * xb[j];
        sumq2 += (w[j] * q) * q;
      }
      if (sumq2 > 0.0f && sumqx * sumqx > best * sumq2) {
        d = sumqx / sumq2;
        best = d * sumqx;
      }
    }
    scales[ib] = d;
    const float abs_d = std::fabs(d);
    if (abs_d > amax_scale) {
      amax_scale = abs_d;
      max_scale = d;
    }
  }

  if (nsub > 1) {  // IQ4_XS: 6-bit sub-block scales under one f16 d
    *scales_h = 0;
    std::memset(scales_l, 0, static_cast<size_t>(nsub / 2));
    const float d = -max_scale / 32.0f;  // -0.0f for an all-zero super-block (f16 0x8000)
    *d_out = f32_to_f16(d);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int ib = 0; ib < nsub; ++ib) {
      const int l = clamp_int(nearest_int(id * scales[ib]), -32, 31);
      const float dl = d * static_cast<float>(l);  // unrounded d
      const float idl = dl != 0.0f ? 1.0f / dl : 0.0f;
      const float* xb = x + 32 * ib;
      for (int j = 0; j < 32; ++j)
        L[32 * ib + j] = static_cast<uint8_t>(best_index_iq4(kValues, idl * xb[j]));
      const int u = l + 32;
      scales_l[ib / 2] = static_cast<uint8_t>(scales_l[ib / 2] | ((u & 0xF) << (4 * (ib % 2))));
      *scales_h = static_cast<uint16_t>(*scales_h | ((u >> 4) << (2 * ib)));
    }
  } else {  // IQ4_NL
    *d_out = f32_to_f16(scales[0]);
    if (ntry > 0) {
      const float id = scales[0] != 0.0f ? 1.0f / scales[0] : 0.0f;  // unrounded scale
      for (int j = 0; j < 32; ++j) L[j] = static_cast<uint8_t>(best_index_iq4(kValues, id * x[j]));
    }
  }

  for (int i = 0; i < nsub; ++i) {
    for (int j = 0; j < 16; ++j)
      q4[16 * i + j] = static_cast<uint8_t>(L[32 * i + j] | (L[32 * i + 16 + j] << 4));
  }
}

constexpr int kFileNtry = 7;

void iq4_nl_row(const float* x, uint8_t* dst, uint64_t n, const float* qw, int ntry) {
  for (uint64_t b = 0; b < n / kQK4_NL; ++b) {
    BlockIQ4_NL blk;
    uint16_t unused_h = 0;
    iq4_core(kQK4_NL, x + b * kQK4_NL, qw ? qw + b * kQK4_NL : nullptr, ntry, &blk.d, blk.qs,
             &unused_h, nullptr);
    store_block(dst, b, blk);
  }
}

void iq4_xs_row(const float* x, uint8_t* dst, uint64_t n, const float* qw) {
  for (uint64_t b = 0; b < n / kQK_K; ++b) {
    BlockIQ4_XS blk;
    iq4_core(kQK_K, x + b * kQK_K, qw ? qw + b * kQK_K : nullptr, kFileNtry, &blk.d, blk.qs,
             &blk.scales_h, blk.scales_l);
    store_block(dst, b, blk);
  }
}

}  // namespace

void dequantize_iq4_nl(const uint8_t* src, float* dst, uint64_t n) {
  for (uint64_t b = 0; b < n / kQK4_NL; ++b) {
    const auto blk = load_block<BlockIQ4_NL>(src, b);
    const float d = f16_to_f32(blk.d);
    float* y = dst + b * kQK4_NL;
    for (int j = 0; j < 16; ++j) {
      y[j] = d * static_cast<float>(kValues[blk.qs[j] & 0xF]);
      y[j + 16] = d * static_cast<float>(kValues[blk.qs[j] >> 4]);
    }
  }
}

void dequantize_iq4_xs(const uint8_t* src, float* dst, uint64_t n) {
  for (uint64_t b = 0; b < n / kQK_K; ++b) {
    const auto blk = load_block<BlockIQ4_XS>(src, b);
    const float d = f16_to_f32(blk.d);
    float* y = dst + b * kQK_K;
    for (int ib = 0; ib < 8; ++ib) {
      const int ls = ((blk.scales_l[ib / 2] >> (4 * (ib % 2))) & 0xF) |
                     (((blk.scales_h >> (2 * ib)) & 3) << 4);
      const float dl = d * static_cast<float>(ls - 32);
      const uint8_t* qs = blk.qs + 16 * ib;
      for (int j = 0; j < 16; ++j) {
        y[32 * ib + j] = dl * static_cast<float>(kValues[qs[j] & 0xF]);
        y[32 * ib + j + 16] = dl * static_cast<float>(kValues[qs[j] >> 4]);
      }
    }
  }
}

void quantize_iq4_nl(const float* src, uint8_t* dst, uint64_t n) {
  iq4_nl_row(src, dst, n, nullptr, kFileNtry);
}
void quantize_iq4_xs(const float* src, uint8_t* dst, uint64_t n) {
  iq4_xs_row(src, dst, n, nullptr);
}
void quantize_iq4_nl_imatrix(const float* row, uint8_t* dst, uint64_t n, const float* qw) {
  iq4_nl_row(row, dst, n, qw, kFileNtry);
}
void quantize_iq4_xs_imatrix(const float* row, uint8_t* dst, uint64_t n, const float* qw) {
  iq4_xs_row(row, dst, n, qw);
}
void quantize_iq4_nl_kv(const float* src, uint8_t* dst, uint64_t n) {
  iq4_nl_row(src, dst, n, nullptr, -1);
}

}  // namespace nibble::qref
