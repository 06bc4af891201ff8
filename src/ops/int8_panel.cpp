// Panel packing, the generic panel arithmetic (the oracle of the AVX-512 kernel) and dispatch.
#include "ops/int8_panel.h"

#include <cmath>
#include <cstring>

namespace nibble {

namespace panel_kernels {
void dot_avx512(const Int8Panel& p, const Int8Acts& a, int64_t tok0, int64_t n_tok, float* out,
                int64_t ldo);
}

int panel_group(GgmlType type) {
  switch (type) {
    case GgmlType::Q2_K:
    case GgmlType::Q3_K:
    case GgmlType::Q6_K:
      return 16;
    default:
      return 32;
  }
}

Int8Panel Int8PanelBuffer::pack(const Int8Row* rows, int n_rows, int64_t n, int group) {
  const int64_t n_chunks = n / 4, n_groups = n / group, n16 = n / 16;
  const bool has_off = n_rows > 0 && rows[0].offset != nullptr;
  q_.resize(static_cast<size_t>(n * kPanelRows));
  scale_.resize(static_cast<size_t>(n_groups * kPanelRows));
  corr_.resize(static_cast<size_t>(n_groups * kPanelRows));
  if (has_off) offset_.resize(static_cast<size_t>(n16 * kPanelRows));
  uint32_t* q32 = reinterpret_cast<uint32_t*>(q_.data());
  for (int r = 0; r < kPanelRows; ++r) {
    if (r < n_rows) {
      const int8_t* src = rows[r].q;
      for (int64_t c = 0; c < n_chunks; ++c) std::memcpy(&q32[c * kPanelRows + r], src + 4 * c, 4);
      for (int64_t s = 0; s < n_groups; ++s) {
        int32_t sum = 0;
        for (int e = 0; e < group; ++e) sum += src[s * group + e];
        corr_[s * kPanelRows + r] = -128 * sum;
        scale_[s * kPanelRows + r] = rows[r].scale[s * group / 4];
      }
      if (has_off) {
        for (int64_t g = 0; g < n16; ++g) offset_[g * kPanelRows + r] = rows[r].offset[g];
      }
    } else {
      for (int64_t c = 0; c < n_chunks; ++c) q32[c * kPanelRows + r] = 0;
      for (int64_t s = 0; s < n_groups; ++s) {
        corr_[s * kPanelRows + r] = 0;
        scale_[s * kPanelRows + r] = 0.0f;
      }
      if (has_off) {
        for (int64_t g = 0; g < n16; ++g) offset_[g * kPanelRows + r] = 0.0f;
      }
    }
  }
  Int8Panel p;
  p.n = n;
  p.group = group;
  p.rows = n_rows;
  p.q = q_.data();
  p.scale = scale_.data();
  p.corr = corr_.data();
  p.offset = has_off ? offset_.data() : nullptr;
  return p;
}

void panel_dot_generic(const Int8Panel& p, const Int8Acts& a, int64_t tok0, int64_t n_tok,
                       float* out, int64_t ldo) {
  const int64_t n = p.n, G = p.group, n_groups = n / G;
  for (int64_t t = 0; t < n_tok; ++t) {
    const int8_t* aq = a.q_of(tok0 + t);
    const float* ad = a.d_of(tok0 + t);
    for (int r = 0; r < p.rows; ++r) {
      float acc = 0.0f;
      for (int64_t s = 0; s < n_groups; ++s) {
        int32_t isum = 0;
        for (int64_t e = s * G; e < (s + 1) * G; ++e) {
          const int8_t w = p.q[((e / 4) * kPanelRows + r) * 4 + e % 4];
          isum += int32_t{w} * int32_t{aq[e]};
        }
        const float prod = p.scale[s * kPanelRows + r] * ad[s * G / 32];
        acc = std::fmaf(static_cast<float>(isum), prod, acc);
      }
      float m = 0.0f;
      if (p.offset != nullptr) {
        const float* s16 = a.sum16_of(tok0 + t);
        for (int64_t g = 0; g < n / 16; ++g) m = std::fmaf(p.offset[g * kPanelRows + r], s16[g], m);
      }
      out[t * ldo + r] = acc + m;
    }
  }
}

bool panel_kernel_available() {
  static const bool yes = [] {
    if (std::strcmp(int8_dot_isa(), "avx512-vnni") != 0) return false;  // honours $NIBBLE_ISA
    return true;
  }();
  return yes;
}

void panel_dot(const Int8Panel& p, const Int8Acts& a, int64_t tok0, int64_t n_tok, float* out,
               int64_t ldo) {
  if (panel_kernel_available()) {
    panel_kernels::dot_avx512(p, a, tok0, n_tok, out, ldo);
  } else {
    panel_dot_generic(p, a, tok0, n_tok, out, ldo);
  }
}

bool panel_dot_avx512_checked(const Int8Panel& p, const Int8Acts& a, int64_t tok0, int64_t n_tok,
                              float* out, int64_t ldo) {
  if (!panel_kernel_available()) return false;
  panel_kernels::dot_avx512(p, a, tok0, n_tok, out, ldo);
  return true;
}

}  // namespace nibble
