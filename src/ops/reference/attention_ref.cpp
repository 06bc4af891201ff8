// Reference causal (optionally sliding-window) multi-head attention: over whole-sequence K/V
// arrays, and over a KV cache of any type (rows dequantized by the reference codecs).
#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/reference/reference_ops.h"
#include "quant/quant.h"

namespace nibble::ref {

void attention(const float* q, const float* k, const float* v, float* out, int64_t n_tokens,
               int64_t n_head, int64_t n_head_kv, int64_t d, int64_t window, float scale) {
  const int64_t group = n_head / n_head_kv;
  std::vector<double> p(static_cast<size_t>(n_tokens));
  for (int64_t t = 0; t < n_tokens; ++t) {
    const int64_t lo = window > 0 && t - window + 1 > 0 ? t - window + 1 : 0;
    for (int64_t h = 0; h < n_head; ++h) {
      const int64_t g = h / group;
      const float* qh = q + (t * n_head + h) * d;
      double mx = -INFINITY;
      for (int64_t s = lo; s <= t; ++s) {
        const float* ks = k + (s * n_head_kv + g) * d;
        double dot = 0.0;
        for (int64_t i = 0; i < d; ++i) dot += static_cast<double>(qh[i]) * ks[i];
        p[s] = dot * scale;
        mx = p[s] > mx ? p[s] : mx;
      }
      double sum = 0.0;
      for (int64_t s = lo; s <= t; ++s) {
        p[s] = std::exp(p[s] - mx);
        sum += p[s];
      }
      float* oh = out + (t * n_head + h) * d;
      for (int64_t i = 0; i < d; ++i) {
        double acc = 0.0;
        for (int64_t s = lo; s <= t; ++s) acc += p[s] * v[(s * n_head_kv + g) * d + i];
        oh[i] = static_cast<float>(acc / sum);
      }
    }
  }
}

}  // namespace nibble::ref

namespace nibble::ref {

void hadamard(float* x, int64_t n_heads, int64_t head_dim) {
  int64_t n = 1;
  while (n < 512 && head_dim % (2 * n) == 0) n *= 2;
  std::vector<double> y(static_cast<size_t>(n));
  for (int64_t off = 0; off < n_heads * head_dim; off += n) {
    for (int64_t i = 0; i < n; ++i) {
      double acc = 0.0;
      for (int64_t j = 0; j < n; ++j) {
        acc += (__builtin_popcountll(static_cast<uint64_t>(i & j)) % 2 ? -1.0 : 1.0) * x[off + j];
      }
      y[i] = acc / std::sqrt(static_cast<double>(n));
    }
    for (int64_t i = 0; i < n; ++i) x[off + i] = static_cast<float>(y[i]);
  }
}

void attention_kv(const KvView& kv, const float* q, float* out, int64_t n_tokens, int64_t n_head,
                  int64_t pos0, int64_t window, float scale) {
  const int64_t d = kv.head_dim;
  const int64_t group = n_head / kv.n_head_kv;
  const int64_t row = kv.n_head_kv * d;
  // Every cached row the batch can see, dequantized (and un-rotated) once.
  const int64_t first = window > 0 && pos0 - window + 1 > 0 ? pos0 - window + 1 : 0;
  const int64_t last = pos0 + n_tokens - 1;
  std::vector<float> ks(static_cast<size_t>((last - first + 1) * row)), vs(ks.size());
  for (int64_t p = first; p <= last; ++p) {
    for (int64_t g = 0; g < kv.n_head_kv; ++g) {
      float* kr = ks.data() + (p - first) * row + g * d;
      float* vr = vs.data() + (p - first) * row + g * d;
      dequantize_row(kv.type, kv.k_head(p, g), kr, static_cast<uint64_t>(d));
      dequantize_row(kv.type, kv.v_head(p, g), vr, static_cast<uint64_t>(d));
      if (kv.rotate) {
        hadamard(kr, 1, d);
        hadamard(vr, 1, d);
      }
    }
  }
  // Rows from the f16 recent ring (KvView::n_recent), the same way.
  std::vector<float> rks, rvs;
  if (kv.n_recent > 0) {
    rks.resize(ks.size());
    rvs.resize(ks.size());
    const int64_t r_first = std::max(first, pos0 - kv.n_recent + 1);
    for (int64_t p = r_first; p <= last; ++p) {
      for (int64_t g = 0; g < kv.n_head_kv; ++g) {
        float* kr = rks.data() + (p - first) * row + g * d;
        float* vr = rvs.data() + (p - first) * row + g * d;
        dequantize_row(GgmlType::F16, kv.rk_head(p, g), kr, static_cast<uint64_t>(d));
        dequantize_row(GgmlType::F16, kv.rv_head(p, g), vr, static_cast<uint64_t>(d));
        if (kv.rotate) {
          hadamard(kr, 1, d);
          hadamard(vr, 1, d);
        }
      }
    }
  }
  for (int64_t t = 0; t < n_tokens; ++t) {
    const int64_t pos = pos0 + t;
    const int64_t lo = window > 0 && pos - window + 1 > 0 ? pos - window + 1 : 0;
    const int64_t n_keys = pos - lo + 1;
    auto k_of = [&](int64_t s) {
      return (kv.use_recent(pos, lo + s) ? rks : ks).data() + (lo + s - first) * row;
    };
    auto v_of = [&](int64_t s) {
      return (kv.use_recent(pos, lo + s) ? rvs : vs).data() + (lo + s - first) * row;
    };
    std::vector<double> p(static_cast<size_t>(n_keys)), acc(static_cast<size_t>(d));
    for (int64_t h = 0; h < n_head; ++h) {
      const int64_t g = h / group;
      const float* qh = q + (t * n_head + h) * d;
      double mx = -INFINITY;
      for (int64_t s = 0; s < n_keys; ++s) {
        const float* kr = k_of(s) + g * d;
        double dot = 0.0;
        for (int64_t i = 0; i < d; ++i) dot += static_cast<double>(qh[i]) * kr[i];
        p[s] = dot * scale;
        mx = p[s] > mx ? p[s] : mx;
      }
      double sum = 0.0;
      for (int64_t s = 0; s < n_keys; ++s) {
        p[s] = std::exp(p[s] - mx);
        sum += p[s];
      }
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t s = 0; s < n_keys; ++s) {
        const float* vr = v_of(s) + g * d;
        for (int64_t i = 0; i < d; ++i) acc[i] += p[s] * vr[i];
      }
      float* oh = out + (t * n_head + h) * d;
      for (int64_t i = 0; i < d; ++i) oh[i] = static_cast<float>(acc[i] / sum);
    }
  }
}

}  // namespace nibble::ref
