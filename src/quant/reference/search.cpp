// Scale-search helpers (spec §3.2, §3.5 best_index). Written from the spec's step lists; the
// step numbers in the comments refer to its subsections. Integers that enter float expressions
// are converted first (`w*l` is `w * (float)l`), products are left-associative.
#include "quant/reference/search.h"

#include <cmath>
#include <cstring>

#include "quant/reference/float_ops.h"

namespace nibble::qref {

namespace {

float rmse_weight(int rmse_type, const float* qw, const float* x, int i) {
  if (qw != nullptr) return qw[i];
  switch (rmse_type) {
    case 1:
      return x[i] * x[i];
    case 2:
      return 1.0f;
    case 3:
      return std::fabs(x[i]);
    default:
      return std::sqrt(std::fabs(x[i]));
  }
}

}  // namespace

// §3.2.1
float make_qx_quants(int n, int nmax, const float* x, int8_t* L, int rmse_type, const float* qw) {
  const AbsMax m = abs_max(x, n);
  if (m.amax < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.0f;
  }
  float iscale = static_cast<float>(-nmax) / m.max;
  if (rmse_type == 0) {
    for (int i = 0; i < n; ++i) {
      const int l = clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1);
      L[i] = static_cast<int8_t>(nmax + l);
    }
    return 1.0f / iscale;
  }
  float sumlx = 0.0f, suml2 = 0.0f;
  for (int i = 0; i < n; ++i) {
    const int l = clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1);
    L[i] = static_cast<int8_t>(l + nmax);
    const float w = rmse_weight(rmse_type, qw, x, i);
    const float fl = static_cast<float>(l);
    sumlx += (w * x[i]) * fl;
    suml2 += (w * fl) * fl;
  }
  float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(static_cast<float>(nmax) + 0.1f * static_cast<float>(is)) / m.max;
    sumlx = 0.0f;
    suml2 = 0.0f;
    for (int i = 0; i < n; ++i) {
      const int l = clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1);
      const float w = rmse_weight(rmse_type, qw, x, i);
      const float fl = static_cast<float>(l);
      sumlx += (w * x[i]) * fl;
      suml2 += (w * fl) * fl;
    }
    if (suml2 > 0.0f && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) {
        const int l = clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = static_cast<int8_t>(nmax + l);
      }
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// §3.2.2
float make_q3_quants(int n, int nmax, const float* x, int8_t* L, bool do_rmse) {
  const AbsMax m = abs_max(x, n);
  if (m.amax < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.0f;
  }
  const float iscale = static_cast<float>(-nmax) / m.max;
  if (!do_rmse) {
    for (int i = 0; i < n; ++i) {
      const int l = clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1);
      L[i] = static_cast<int8_t>(l + nmax);
    }
    return 1.0f / iscale;
  }
  float sumlx = 0.0f, suml2 = 0.0f;
  for (int i = 0; i < n; ++i) {
    const int l = clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1);
    L[i] = static_cast<int8_t>(l);
    const float w = x[i] * x[i];
    const float fl = static_cast<float>(l);
    sumlx += (w * x[i]) * fl;
    suml2 += (w * fl) * fl;
  }
  for (int itry = 0; itry < 5; ++itry) {
    int n_changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      const float li = static_cast<float>(L[i]);
      float slx = sumlx - (w * x[i]) * li;
      if (slx > 0.0f) {
        float sl2 = suml2 - (w * li) * li;
        const int new_l = clamp_int(nearest_int((x[i] * sl2) / slx), -nmax, nmax - 1);
        if (new_l != L[i]) {
          const float fl = static_cast<float>(new_l);
          slx += (w * x[i]) * fl;
          sl2 += (w * fl) * fl;
          if (sl2 > 0.0f && (slx * slx) * suml2 > (sumlx * sumlx) * sl2) {
            L[i] = static_cast<int8_t>(new_l);
            sumlx = slx;
            suml2 = sl2;
            ++n_changed;
          }
        }
      }
    }
    if (n_changed == 0) break;
  }
  for (int i = 0; i < n; ++i) L[i] = static_cast<int8_t>(L[i] + nmax);
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

namespace {

// Shared body of §3.2.3 / §3.2.4. `robust_levels` selects ggml's make_qkx3 level computation
// (v <= 0 -> 0, else RNE(min(v, nmax))), identical to clamp(RNE(v), 0, nmax) for finite v in
// nearest_int's range but well defined when a near-degenerate min makes v huge or NaN.
float make_qkx_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L,
                      float* the_min, uint8_t* Laux, float rmin, float rdelta, int nstep,
                      bool use_mad, bool robust_levels) {
  auto w_at = [&](int i) { return weights != nullptr ? weights[i] : x[i] * x[i]; };
  float min = x[0];
  float max = x[0];
  float sum_w = w_at(0);
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    const float w = w_at(i);
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0.0f) min = 0.0f;
  if (!(max > min)) {  // max == min (max < min cannot happen)
    std::memset(L, 0, static_cast<size_t>(n));
    *the_min = -min;
    return 0.0f;
  }
  const float fnmax = static_cast<float>(nmax);
  float iscale = fnmax / (max - min);
  float scale = 1.0f / iscale;
  float best_error = 0.0f;
  for (int i = 0; i < n; ++i) {
    const int l = clamp_int(nearest_int(iscale * (x[i] - min)), 0, nmax);
    L[i] = static_cast<uint8_t>(l);
    float diff = ((scale * static_cast<float>(l)) + min) - x[i];
    diff = use_mad ? std::fabs(diff) : diff * diff;
    best_error += w_at(i) * diff;
  }
  if (nstep < 1) {
    *the_min = -min;
    return scale;
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = ((rmin + rdelta * static_cast<float>(is)) + fnmax) / (max - min);
    float sum_l = 0.0f, sum_l2 = 0.0f, sum_xl = 0.0f;
    for (int i = 0; i < n; ++i) {
      const float v = iscale * (x[i] - min);
      int l;
      if (robust_levels) {
        l = v > 0.0f ? nearest_int(v < fnmax ? v : fnmax) : 0;
      } else {
        l = clamp_int(nearest_int(v), 0, nmax);
      }
      Laux[i] = static_cast<uint8_t>(l);
      const float w = w_at(i);
      const float fl = static_cast<float>(l);
      sum_l += w * fl;
      sum_l2 += (w * fl) * fl;
      sum_xl += (w * fl) * x[i];
    }
    const float D = (sum_w * sum_l2) - (sum_l * sum_l);
    if (D > 0.0f) {
      float this_scale = ((sum_w * sum_xl) - (sum_x * sum_l)) / D;
      float this_min = ((sum_l2 * sum_x) - (sum_l * sum_xl)) / D;
      if (this_min > 0.0f) {
        this_min = 0.0f;
        this_scale = sum_xl / sum_l2;
      }
      float cur_error = 0.0f;
      for (int i = 0; i < n; ++i) {
        float diff = ((this_scale * static_cast<float>(Laux[i])) + this_min) - x[i];
        diff = use_mad ? std::fabs(diff) : diff * diff;
        cur_error += w_at(i) * diff;
      }
      if (cur_error < best_error) {
        std::memcpy(L, Laux, static_cast<size_t>(n));
        best_error = cur_error;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *the_min = -min;
  return scale;
}

}  // namespace

// §3.2.3
float make_qkx2_quants(int n, int nmax, const float* x, const float* w, uint8_t* L, float* the_min,
                       uint8_t* Laux, float rmin, float rdelta, int nstep, bool use_mad) {
  return make_qkx_quants(n, nmax, x, w, L, the_min, Laux, rmin, rdelta, nstep, use_mad, false);
}

// §3.2.4
float make_qkx3_quants(int n, int nmax, const float* x, const float* w, uint8_t* L, float* the_min,
                       uint8_t* Laux, float rmin, float rdelta, int nstep, bool use_mad) {
  return make_qkx_quants(n, nmax, x, w, L, the_min, Laux, rmin, rdelta, nstep, use_mad, true);
}

// §3.2.5
float make_qp_quants(int n, int nmax, const float* x, uint8_t* L, const float* qw) {
  float max = 0.0f;
  for (int i = 0; i < n; ++i) max = max > x[i] ? max : x[i];
  if (max < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.0f;
  }
  const float fnmax = static_cast<float>(nmax);
  float iscale = fnmax / max;
  for (int i = 0; i < n; ++i) L[i] = static_cast<uint8_t>(nearest_int(iscale * x[i]));
  const float scale = 1.0f / iscale;
  float best_mse = 0.0f;
  for (int i = 0; i < n; ++i) {
    const float diff = x[i] - scale * static_cast<float>(L[i]);
    best_mse += (qw[i] * diff) * diff;
  }
  for (int is = -4; is <= 4; ++is) {
    if (is == 0) continue;
    const float iscale_is = ((0.1f * static_cast<float>(is)) + fnmax) / max;
    const float scale_is = 1.0f / iscale_is;
    float mse = 0.0f;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale_is * x[i]);
      if (l > nmax) l = nmax;
      const float diff = x[i] - scale_is * static_cast<float>(l);
      mse += (qw[i] * diff) * diff;
    }
    if (mse < best_mse) {
      best_mse = mse;
      iscale = iscale_is;
    }
  }
  float sumlx = 0.0f, suml2 = 0.0f;
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * x[i]);
    if (l > nmax) l = nmax;
    L[i] = static_cast<uint8_t>(l);
    const float fl = static_cast<float>(l);
    sumlx += (qw[i] * x[i]) * fl;
    suml2 += (qw[i] * fl) * fl;
  }
  for (int itry = 0; itry < 5; ++itry) {
    int n_changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = qw[i];
      const float li = static_cast<float>(L[i]);
      float slx = sumlx - (w * x[i]) * li;
      float sl2 = suml2 - (w * li) * li;
      if (slx > 0.0f && sl2 > 0.0f) {
        int new_l = nearest_int((x[i] * sl2) / slx);
        if (new_l > nmax) new_l = nmax;
        if (new_l != L[i]) {
          const float fl = static_cast<float>(new_l);
          slx += (w * x[i]) * fl;
          sl2 += (w * fl) * fl;
          if ((slx * slx) * suml2 > (sumlx * sumlx) * sl2) {
            L[i] = static_cast<uint8_t>(new_l);
            sumlx = slx;
            suml2 = sl2;
            ++n_changed;
          }
        }
      }
    }
    if (n_changed == 0) break;
  }
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// §3.5 best_index
int best_index_iq4(const int8_t* values, float v) {
  if (v <= static_cast<float>(values[0])) return 0;
  if (v >= static_cast<float>(values[15])) return 15;
  int lo = 0, hi = 15;
  while (hi - lo > 1) {
    const int mid = (lo + hi) / 2;
    if (v < static_cast<float>(values[mid])) {
      hi = mid;
    } else {
      lo = mid;
    }
  }
  return (v - static_cast<float>(values[hi - 1]) < static_cast<float>(values[hi]) - v) ? hi - 1
                                                                                       : hi;
}

}  // namespace nibble::qref
