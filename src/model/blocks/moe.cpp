// MoE routing and expert evaluation (float32); buffers are per-thread and reused (no allocation
// once warm). Contributions are added in expert-id order for
// every token, so a token's result does not depend on which other tokens share its batch.
#include "model/blocks/moe.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "model/blocks/geglu_mlp.h"
#include "ops/matmul.h"
#include "ops/norm.h"
#include "ops/softmax.h"

namespace nibble {

void moe_route(const float* router_logits, int64_t n_expert, int64_t k, const float* expert_scale,
               int32_t* ids, float* weights) {
  thread_local std::vector<float> p;
  p.assign(router_logits, router_logits + n_expert);
  softmax(p.data(), n_expert);
  thread_local std::vector<int32_t> order;
  order.resize(static_cast<size_t>(n_expert));
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + k, order.end(),
                    [&](int32_t a, int32_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
  float sum = 0.0f;
  for (int64_t i = 0; i < k; ++i) sum += p[order[i]];
  for (int64_t i = 0; i < k; ++i) {
    ids[i] = order[i];
    weights[i] = p[order[i]] / sum * (expert_scale != nullptr ? expert_scale[order[i]] : 1.0f);
  }
}

void moe_block(const MoeWeights& w, const float* router_in, const float* expert_in,
               int64_t n_tokens, int64_t n_embd, float eps, float* out, ActivationObserver* obs) {
  const int64_t n_exp = w.n_expert, k = w.n_expert_used, n_ff = w.n_ff_exp;
  // Router: rho = RMSNorm_1(r) * router_scale * H^-1/2; logits = W_router rho.
  thread_local std::vector<float> rho, logits, tok_w, xe, ye, wts;
  thread_local std::vector<int32_t> ids;
  thread_local std::vector<int64_t> toks;
  rho.resize(static_cast<size_t>(n_tokens * n_embd));  // [n_tokens, H]
  rms_norm_rows(router_in, nullptr, rho.data(), n_tokens, n_embd, eps);
  const float inv_sqrt_h = 1.0f / std::sqrt(static_cast<float>(n_embd));
  for (int64_t t = 0; t < n_tokens; ++t) {
    float* r = rho.data() + t * n_embd;
    for (int64_t i = 0; i < n_embd; ++i) r[i] = r[i] * w.router_scale[i] * inv_sqrt_h;
  }
  logits.resize(static_cast<size_t>(n_tokens * n_exp));  // [n_tokens, E]
  observe_input(obs, w.router, rho.data(), n_tokens);
  matmul(w.router, rho.data(), n_tokens, logits.data());

  ids.resize(static_cast<size_t>(n_tokens * k));
  wts.resize(static_cast<size_t>(n_tokens * k));
  for (int64_t t = 0; t < n_tokens; ++t) {
    moe_route(logits.data() + t * n_exp, n_exp, k, w.expert_scale, ids.data() + t * k,
              wts.data() + t * k);
  }

  std::fill(out, out + n_tokens * n_embd, 0.0f);
  for (int64_t e = 0; e < n_exp; ++e) {
    toks.clear();
    tok_w.clear();
    for (int64_t t = 0; t < n_tokens; ++t) {
      for (int64_t i = 0; i < k; ++i) {
        if (ids[t * k + i] == e) {
          toks.push_back(t);
          tok_w.push_back(wts[t * k + i]);
        }
      }
    }
    if (toks.empty()) continue;
    const int64_t n = static_cast<int64_t>(toks.size());
    xe.resize(static_cast<size_t>(n * n_embd));  // [n, H]
    ye.resize(static_cast<size_t>(n * n_embd));  // [n, H]
    for (int64_t j = 0; j < n; ++j) {
      std::copy_n(expert_in + toks[j] * n_embd, n_embd, xe.data() + j * n_embd);
    }
    WeightMatrix gate, up;
    if (!w.gate_up.empty()) {  // expert e's rows: [gate (n_ff) | up (n_ff)]
      gate = w.gate_up.rows(e * 2 * n_ff, n_ff).of_expert(e);
      up = w.gate_up.rows(e * 2 * n_ff + n_ff, n_ff).of_expert(e);
    } else {
      gate = w.gate.rows(e * n_ff, n_ff).of_expert(e);
      up = w.up.rows(e * n_ff, n_ff).of_expert(e);
    }
    const WeightMatrix down = w.down.rows(e * n_embd, n_embd).of_expert(e);
    geglu_mlp(gate, up, down, xe.data(), n, ye.data(), obs);
    for (int64_t j = 0; j < n; ++j) {
      float* o = out + toks[j] * n_embd;
      const float* y = ye.data() + j * n_embd;
      for (int64_t i = 0; i < n_embd; ++i) o[i] += tok_w[j] * y[i];
    }
  }
}

}  // namespace nibble
