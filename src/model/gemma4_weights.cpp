// Gemma 4 tensor list with expected shapes (spec §3.2), llama.cpp names.
#include "model/gemma4_weights.h"

#include <string>

#include "model/weight_binder.h"

namespace nibble {

namespace {

std::string blk(int64_t l, const char* name) { return "blk." + std::to_string(l) + "." + name; }

}  // namespace

Result<Gemma4Weights> Gemma4Weights::bind(const GgufFile& file, const Gemma4Config& c) {
  WeightBinder b(file);
  Gemma4Weights w;
  const int64_t H = c.n_embd, L = c.n_layer, P = c.n_embd_per_layer;

  const GgufTensorInfo* te = file.find_tensor("token_embd.weight");
  if (te == nullptr) {
    return make_error(ErrorCode::kNotFound, "model: tensor 'token_embd.weight' is missing from %s",
                      file.path().c_str());
  }
  w.n_vocab = static_cast<int64_t>(te->ne(1));
  if (w.n_vocab < 1 || w.n_vocab > (1 << 30)) {
    return make_error(ErrorCode::kFormat, "model: token_embd.weight has %lld rows",
                      static_cast<long long>(w.n_vocab));
  }
  const int64_t V = w.n_vocab;
  NIBBLE_ASSIGN_OR_RETURN(w.token_embd, b.matrix("token_embd.weight", {H, V}));
  if (b.has("output.weight")) {
    NIBBLE_ASSIGN_OR_RETURN(w.output, b.matrix("output.weight", {H, V}));
  } else {
    w.output = w.token_embd;
  }
  NIBBLE_ASSIGN_OR_RETURN(w.output_norm, b.vector("output_norm.weight", H));

  int64_t d_full = 0;
  for (const auto& lc : c.layers) {
    if (!lc.is_sliding) d_full = lc.head_dim;
  }
  if (d_full > 0) {  // proportional partial RoPE of full layers lives in these factors
    NIBBLE_ASSIGN_OR_RETURN(w.rope_freqs, b.vector("rope_freqs.weight", d_full / 2));
    for (float f : w.rope_freqs) {
      if (!(f > 0.0f)) {
        return make_error(ErrorCode::kFormat,
                          "model: rope_freqs.weight has a non-positive factor %g",
                          static_cast<double>(f));
      }
    }
  }
  if (P > 0) {
    NIBBLE_ASSIGN_OR_RETURN(w.per_layer_token_embd,
                            b.matrix("per_layer_token_embd.weight", {L * P, V}));
    NIBBLE_ASSIGN_OR_RETURN(w.per_layer_model_proj,
                            b.matrix("per_layer_model_proj.weight", {H, L * P}));
    NIBBLE_ASSIGN_OR_RETURN(w.per_layer_proj_norm, b.vector("per_layer_proj_norm.weight", P));
  }

  w.layers.resize(static_cast<size_t>(L));
  for (int64_t l = 0; l < L; ++l) {
    const Gemma4LayerConfig& lc = c.layers[l];
    Gemma4LayerWeights& lw = w.layers[l];
    const int64_t d = lc.head_dim, kv = lc.n_head_kv, F = lc.n_ff;
    NIBBLE_ASSIGN_OR_RETURN(lw.attn_norm, b.vector(blk(l, "attn_norm.weight"), H));
    NIBBLE_ASSIGN_OR_RETURN(lw.attn_q, b.matrix(blk(l, "attn_q.weight"), {H, c.n_head * d}));
    NIBBLE_ASSIGN_OR_RETURN(lw.attn_q_norm, b.vector(blk(l, "attn_q_norm.weight"), d));
    NIBBLE_ASSIGN_OR_RETURN(lw.attn_output,
                            b.matrix(blk(l, "attn_output.weight"), {c.n_head * d, H}));
    if (lc.owns_kv(static_cast<int>(l))) {
      NIBBLE_ASSIGN_OR_RETURN(lw.attn_k, b.matrix(blk(l, "attn_k.weight"), {H, kv * d}));
      NIBBLE_ASSIGN_OR_RETURN(lw.attn_k_norm, b.vector(blk(l, "attn_k_norm.weight"), d));
      if (b.has(blk(l, "attn_v.weight"))) {
        NIBBLE_ASSIGN_OR_RETURN(lw.attn_v, b.matrix(blk(l, "attn_v.weight"), {H, kv * d}));
      }
    }
    NIBBLE_ASSIGN_OR_RETURN(lw.post_attention_norm,
                            b.vector(blk(l, "post_attention_norm.weight"), H));
    NIBBLE_ASSIGN_OR_RETURN(lw.ffn_norm, b.vector(blk(l, "ffn_norm.weight"), H));
    NIBBLE_ASSIGN_OR_RETURN(lw.ffn_gate, b.matrix(blk(l, "ffn_gate.weight"), {H, F}));
    NIBBLE_ASSIGN_OR_RETURN(lw.ffn_up, b.matrix(blk(l, "ffn_up.weight"), {H, F}));
    NIBBLE_ASSIGN_OR_RETURN(lw.ffn_down, b.matrix(blk(l, "ffn_down.weight"), {F, H}));
    NIBBLE_ASSIGN_OR_RETURN(lw.post_ffw_norm, b.vector(blk(l, "post_ffw_norm.weight"), H));
    if (b.has(blk(l, "layer_output_scale.weight"))) {
      NIBBLE_ASSIGN_OR_RETURN(auto s, b.vector(blk(l, "layer_output_scale.weight"), 1));
      lw.layer_output_scale = s[0];
    }

    lw.has_moe = b.has(blk(l, "ffn_gate_inp.weight"));
    if (lw.has_moe) {
      const int64_t E = c.n_expert, I = c.n_ff_exp;
      if (E == 0) {
        return make_error(ErrorCode::kFormat,
                          "model: layer %lld has MoE tensors but gemma4.expert_count is absent",
                          static_cast<long long>(l));
      }
      NIBBLE_ASSIGN_OR_RETURN(lw.ffn_gate_inp, b.matrix(blk(l, "ffn_gate_inp.weight"), {H, E}));
      NIBBLE_ASSIGN_OR_RETURN(lw.ffn_gate_inp_scale, b.vector(blk(l, "ffn_gate_inp.scale"), H));
      NIBBLE_ASSIGN_OR_RETURN(lw.ffn_down_exps_scale, b.vector(blk(l, "ffn_down_exps.scale"), E));
      if (b.has(blk(l, "ffn_gate_up_exps.weight"))) {
        NIBBLE_ASSIGN_OR_RETURN(lw.ffn_gate_up_exps,
                                b.matrix(blk(l, "ffn_gate_up_exps.weight"), {H, 2 * I, E}));
      } else {
        NIBBLE_ASSIGN_OR_RETURN(lw.ffn_gate_exps,
                                b.matrix(blk(l, "ffn_gate_exps.weight"), {H, I, E}));
        NIBBLE_ASSIGN_OR_RETURN(lw.ffn_up_exps, b.matrix(blk(l, "ffn_up_exps.weight"), {H, I, E}));
      }
      NIBBLE_ASSIGN_OR_RETURN(lw.ffn_down_exps,
                              b.matrix(blk(l, "ffn_down_exps.weight"), {I, H, E}));
      NIBBLE_ASSIGN_OR_RETURN(lw.pre_ffw_norm_2, b.vector(blk(l, "pre_ffw_norm_2.weight"), H));
      NIBBLE_ASSIGN_OR_RETURN(lw.post_ffw_norm_1, b.vector(blk(l, "post_ffw_norm_1.weight"), H));
      NIBBLE_ASSIGN_OR_RETURN(lw.post_ffw_norm_2, b.vector(blk(l, "post_ffw_norm_2.weight"), H));
    }
    if (P > 0) {
      NIBBLE_ASSIGN_OR_RETURN(lw.inp_gate, b.matrix(blk(l, "inp_gate.weight"), {H, P}));
      NIBBLE_ASSIGN_OR_RETURN(lw.proj, b.matrix(blk(l, "proj.weight"), {P, H}));
      NIBBLE_ASSIGN_OR_RETURN(lw.post_norm, b.vector(blk(l, "post_norm.weight"), H));
    }
  }
  return w;
}

}  // namespace nibble
