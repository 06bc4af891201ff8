// Gemma 4 text forward pass (spec §4): scaled embeddings, per-layer embeddings, then per layer
// sandwich-normed attention, the dense GeGLU MLP (in parallel with the MoE block where present),
// the PLE residual and the layer scalar; final norm, tied head, logit soft-cap. Everything is
// float32; mirrors Gemma4TextModel / Gemma4TextDecoderLayer in the reference implementation.
#include "model/gemma4.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "model/blocks/attention_block.h"
#include "model/blocks/geglu_mlp.h"
#include "model/blocks/moe.h"
#include "model/blocks/ple.h"
#include "model/config.h"
#include "model/gemma4_weights.h"
#include "model/trace.h"
#include "ops/activation.h"
#include "ops/matmul.h"
#include "ops/norm.h"
#include "ops/rope.h"
#include "util/check.h"
#include "util/scratch.h"

namespace nibble {

namespace {

// A token reads one row of the per-layer embedding table (E2B: 7 KB of a 1.9 GB table): tell the
// kernel not to read ahead around it, so that only the rows used become resident.
void advise_random(const WeightMatrix& m) {
  if (m.empty()) return;
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = reinterpret_cast<uintptr_t>(m.data) & ~(page - 1);
  const uintptr_t end = reinterpret_cast<uintptr_t>(m.data) + m.row_bytes * static_cast<uint64_t>(m.n_out);
  madvise(reinterpret_cast<void*>(begin), end - begin, MADV_RANDOM);  // advice only: errors are harmless
}

class Gemma4Model final : public Model {
 public:
  Gemma4Model(std::unique_ptr<GgufFile> file, Gemma4Config cfg, Gemma4Weights w)
      : file_(std::move(file)), cfg_(std::move(cfg)), w_(std::move(w)) {
    info_.arch = "gemma4";
    advise_random(w_.per_layer_token_embd);
    info_.n_vocab = w_.n_vocab;
    info_.n_embd = cfg_.n_embd;
    info_.n_layer = cfg_.n_layer;
    info_.n_ctx_train = cfg_.n_ctx_train;
    for (const auto& lc : cfg_.layers) {
      if (lc.is_sliding && inv_freq_swa_.empty()) {
        inv_freq_swa_ = rope_inv_freq(lc.head_dim, lc.rope_base, nullptr);
        d_swa_ = lc.head_dim;
      }
      if (!lc.is_sliding && inv_freq_full_.empty()) {
        inv_freq_full_ = rope_inv_freq(lc.head_dim, lc.rope_base,
                                       w_.rope_freqs.empty() ? nullptr : w_.rope_freqs.data());
        d_full_ = lc.head_dim;
      }
    }
  }

  const ModelInfo& info() const override { return info_; }
  const GgufFile& file() const override { return *file_; }
  void set_activation_observer(ActivationObserver* obs) override { obs_ = obs; }

  std::vector<KvLayerSpec> kv_layout() const override {
    std::vector<KvLayerSpec> out;
    for (const auto& lc : cfg_.layers) {
      out.push_back(
          {lc.kv_source_layer, lc.n_head_kv, lc.head_dim, lc.is_sliding ? cfg_.sliding_window : 0});
    }
    return out;
  }

  void forward(const int32_t* tokens, int64_t n_tokens, int64_t pos0, std::span<const KvView> kv,
               bool all_logits, float* logits) const override;

 private:
  std::unique_ptr<GgufFile> file_;
  Gemma4Config cfg_;
  Gemma4Weights w_;
  ModelInfo info_;
  std::vector<double> inv_freq_swa_, inv_freq_full_;
  int64_t d_swa_ = 0, d_full_ = 0;
  ActivationObserver* obs_ = nullptr;
};

void add(float* h, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) h[i] += x[i];
}

void Gemma4Model::forward(const int32_t* tokens, int64_t n_tokens, int64_t pos0,
                          std::span<const KvView> kv, bool all_logits, float* logits) const {
  NIBBLE_CHECK(n_tokens > 0, "gemma4 forward: empty batch");
  NIBBLE_CHECK(static_cast<int64_t>(kv.size()) == cfg_.n_layer,
               "gemma4 forward: one KvView per layer");
  const int64_t T = n_tokens, H = cfg_.n_embd, L = cfg_.n_layer, P = cfg_.n_embd_per_layer;
  const float eps = cfg_.eps;

  // Scaled token embeddings e = E[x] * √H.  [T, H]
  thread_local ScratchBuffer<float> h_buf, u_buf, rope_buf, x_buf, a_buf, m2_buf;
  thread_local ScratchBuffer<int64_t> pos_buf;
  float* h = h_buf.get(static_cast<size_t>(T * H));
  const float emb_scale = std::sqrt(static_cast<float>(H));
  for (int64_t t = 0; t < T; ++t) {
    NIBBLE_CHECK(tokens[t] >= 0 && tokens[t] < w_.n_vocab, "gemma4 forward: token id out of range");
    float* ht = h + t * H;
    weight_row(w_.token_embd, tokens[t], ht);
    for (int64_t i = 0; i < H; ++i) ht[i] *= emb_scale;
  }
  trace(h, T, H, "inp_scaled");

  // Per-layer inputs u.  [T, L, P]
  float* u = nullptr;
  if (P > 0) {
    u = u_buf.get(static_cast<size_t>(T * L * P));
    const PleGlobalWeights pw{w_.per_layer_token_embd, w_.per_layer_model_proj,
                              w_.per_layer_proj_norm.data()};
    per_layer_inputs(pw, tokens, h, T, H, L, P, eps, u, obs_);
    trace(u, T, L * P, "per_layer_inputs");
  }

  // RoPE tables for both layer types.  [T, d/2]
  int64_t* pos = pos_buf.get(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) pos[t] = pos0 + t;
  const size_t n_swa = static_cast<size_t>(T * (d_swa_ / 2)), n_full = static_cast<size_t>(T * (d_full_ / 2));
  float* cos_swa = rope_buf.get(2 * (n_swa + n_full));
  float* sin_swa = cos_swa + n_swa;
  float* cos_full = sin_swa + n_swa;
  float* sin_full = cos_full + n_full;
  if (d_swa_ > 0) rope_table(inv_freq_swa_, pos, T, cos_swa, sin_swa);
  if (d_full_ > 0) rope_table(inv_freq_full_, pos, T, cos_full, sin_full);

  float* x = x_buf.get(static_cast<size_t>(T * H));  // normed input of a block  [T, H]
  float* a = a_buf.get(static_cast<size_t>(T * H));  // block output            [T, H]
  float* m2 = nullptr;                               // MoE branch              [T, H]
  for (int64_t l = 0; l < L; ++l) {
    const Gemma4LayerConfig& lc = cfg_.layers[l];
    const Gemma4LayerWeights& lw = w_.layers[l];
    const int il = static_cast<int>(l);

    // Attention: h = h + post_attention_norm(Attn(attn_norm(h))).
    rms_norm_rows(h, lw.attn_norm.data(), x, T, H, eps);
    trace(x, T, H, "attn_norm", il);
    AttentionWeights aw{lw.attn_q,
                        lw.attn_k,
                        lw.attn_v,
                        lw.attn_output,
                        lw.attn_q_norm.data(),
                        lw.attn_k_norm.data()};
    AttentionParams ap;
    ap.n_head = cfg_.n_head;
    ap.n_head_kv = lc.n_head_kv;
    ap.head_dim = lc.head_dim;
    ap.window = lc.is_sliding ? cfg_.sliding_window : 0;
    ap.owns_kv = lc.owns_kv(il);
    ap.eps = eps;
    ap.scale = 1.0f;
    ap.rope_cos = lc.is_sliding ? cos_swa : cos_full;
    ap.rope_sin = lc.is_sliding ? sin_swa : sin_full;
    ap.layer = il;
    ap.observer = obs_;
    attention_block(aw, ap, kv[l], x, T, pos0, a);
    trace(a, T, H, "attn_out", il);
    rms_norm_rows(a, lw.post_attention_norm.data(), a, T, H, eps);
    add(h, a, T * H);
    trace(h, T, H, "attn_residual", il);

    // FFN: dense GeGLU, in parallel with the MoE block where present.
    rms_norm_rows(h, lw.ffn_norm.data(), x, T, H, eps);
    geglu_mlp(lw.ffn_gate, lw.ffn_up, lw.ffn_down, x, T, a, obs_);
    trace(a, T, H, "ffn_out", il);
    if (lw.has_moe) {
      rms_norm_rows(a, lw.post_ffw_norm_1.data(), a, T, H, eps);
      MoeWeights mw;
      mw.router = lw.ffn_gate_inp;
      mw.router_scale = lw.ffn_gate_inp_scale.data();
      mw.expert_scale = lw.ffn_down_exps_scale.data();
      mw.gate_up = lw.ffn_gate_up_exps;
      mw.gate = lw.ffn_gate_exps;
      mw.up = lw.ffn_up_exps;
      mw.down = lw.ffn_down_exps;
      mw.n_expert = cfg_.n_expert;
      mw.n_expert_used = cfg_.n_expert_used;
      mw.n_ff_exp = cfg_.n_ff_exp;
      rms_norm_rows(h, lw.pre_ffw_norm_2.data(), x, T, H, eps);
      m2 = m2_buf.get(static_cast<size_t>(T * H));
      moe_block(mw, h, x, T, H, eps, m2, obs_);
      trace(m2, T, H, "moe_out", il);
      rms_norm_rows(m2, lw.post_ffw_norm_2.data(), m2, T, H, eps);
      add(a, m2, T * H);
    }
    rms_norm_rows(a, lw.post_ffw_norm.data(), a, T, H, eps);
    add(h, a, T * H);

    if (P > 0) {
      const PleLayerWeights pw{lw.inp_gate, lw.proj, lw.post_norm.data()};
      ple_inject(pw, u, l, L, P, T, H, eps, h, obs_);
    }
    for (int64_t i = 0; i < T * H; ++i) h[i] *= lw.layer_output_scale;
    trace(h, T, H, "l_out", il);
  }

  // Final norm, tied head, soft-cap.  logits [n_out, V]
  const int64_t n_out = all_logits ? T : 1;
  const float* last = h + (T - n_out) * H;
  rms_norm_rows(last, w_.output_norm.data(), x, n_out, H, eps);
  trace(x, n_out, H, "result_norm");
  matmul(w_.output, x, n_out, logits);
  softcap(logits, n_out * w_.n_vocab, cfg_.final_logit_softcap);
}

}  // namespace

Result<std::unique_ptr<Model>> load_gemma4(std::unique_ptr<GgufFile> file) {
  NIBBLE_ASSIGN_OR_RETURN(Gemma4Config cfg, Gemma4Config::from_gguf(file->metadata()));
  NIBBLE_ASSIGN_OR_RETURN(Gemma4Weights w, Gemma4Weights::bind(*file, cfg));
  return std::unique_ptr<Model>(new Gemma4Model(std::move(file), std::move(cfg), std::move(w)));
}

}  // namespace nibble
