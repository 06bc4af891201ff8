#include "convert/gemma4_layout.h"

#include <algorithm>

#include "convert/gemma4_converter.h"

namespace nibble {

uint64_t Gemma4TensorSpec::n_elements() const {
  uint64_t n = 1;
  for (uint64_t d : hf_shape) n *= d;
  return n;
}

uint64_t Gemma4TensorSpec::n_bytes() const {
  return ggml_row_size(type, hf_shape.back()) * (n_elements() / hf_shape.back());
}

GgmlType convert_tensor_type(const std::string& gguf_name, const std::vector<uint64_t>& hf_shape,
                             GgmlType want) {
  if (hf_shape.size() <= 1) return GgmlType::F32;
  if (gguf_name.find("ffn_gate_inp.weight") != std::string::npos) return GgmlType::F32;
  if (want == GgmlType::F32 || want == GgmlType::F16 || want == GgmlType::BF16) return want;
  if (gguf_name.find("per_layer_model_proj") != std::string::npos) return GgmlType::F16;
  // The token embedding is also the (tied) output head, the tensor whose precision moves the
  // logits most: on tiny-e a Q8_0 embedding alone costs 2 of 96 top-1 matches against the
  // reference. It stays at 16 bits (llama.cpp's recipes likewise give the output head extra
  // bits); `nibble quantize` offers the llama.cpp recipes for smaller files.
  if (gguf_name == "token_embd.weight" || gguf_name == "output.weight") return GgmlType::BF16;
  if (hf_shape.back() % traits(want).block_size != 0) return GgmlType::F16;
  return want;
}

std::vector<float> gemma4_rope_freqs(const Gemma4HfConfig& cfg) {
  const uint32_t d_f = cfg.full_head_dim();
  const uint32_t n_rot = static_cast<uint32_t>(d_f * cfg.partial_rotary_factor / 2);
  std::vector<float> f(d_f / 2, 1e30f);
  for (uint32_t i = 0; i < n_rot && i < d_f / 2; ++i) f[i] = 1.0f;
  return f;
}

std::vector<Gemma4TensorSpec> gemma4_tensor_layout(const Gemma4HfConfig& cfg, uint64_t n_vocab,
                                                   GgmlType type) {
  std::vector<Gemma4TensorSpec> out;
  auto add = [&](const std::string& hf, const std::string& gguf, std::vector<uint64_t> shape,
                 bool required = true) {
    Gemma4TensorSpec t{gguf, hf, std::move(shape), required, GgmlType::F32};
    t.type = convert_tensor_type(gguf, t.hf_shape, type);
    out.push_back(std::move(t));
  };
  const uint64_t H = cfg.hidden_size, L = cfg.n_layer, P = cfg.hidden_size_per_layer_input;
  if (cfg.rope_full_proportional) add("", "rope_freqs.weight", {cfg.full_head_dim() / 2});
  add("model.embed_tokens.weight", "token_embd.weight", {n_vocab, H});
  if (P > 0) {
    add("model.embed_tokens_per_layer.weight", "per_layer_token_embd.weight", {n_vocab, L * P});
    add("model.per_layer_model_projection.weight", "per_layer_model_proj.weight", {L * P, H});
    add("model.per_layer_projection_norm.weight", "per_layer_proj_norm.weight", {P});
  }
  add("model.norm.weight", "output_norm.weight", {H});
  if (!cfg.tie_word_embeddings) add("lm_head.weight", "output.weight", {n_vocab, H});

  for (uint64_t l = 0; l < L; ++l) {
    const std::string hf = "model.layers." + std::to_string(l) + ".";
    const std::string gg = "blk." + std::to_string(l) + ".";
    const uint64_t d = cfg.layer_head_dim[l], kv = cfg.layer_n_head_kv[l], nh = cfg.n_head;
    add(hf + "input_layernorm.weight", gg + "attn_norm.weight", {H});
    add(hf + "self_attn.q_proj.weight", gg + "attn_q.weight", {nh * d, H});
    add(hf + "self_attn.q_norm.weight", gg + "attn_q_norm.weight", {d});
    add(hf + "self_attn.o_proj.weight", gg + "attn_output.weight", {H, nh * d});
    if (!cfg.is_kv_shared(static_cast<uint32_t>(l))) {
      add(hf + "self_attn.k_proj.weight", gg + "attn_k.weight", {kv * d, H});
      add(hf + "self_attn.k_norm.weight", gg + "attn_k_norm.weight", {d});
      // attention_k_eq_v: full layers have no v_proj; V is the raw K projection.
      if (!(cfg.attention_k_eq_v && !cfg.is_sliding[l])) {
        add(hf + "self_attn.v_proj.weight", gg + "attn_v.weight", {kv * d, H});
      }
    }
    add(hf + "post_attention_layernorm.weight", gg + "post_attention_norm.weight", {H});
    add(hf + "pre_feedforward_layernorm.weight", gg + "ffn_norm.weight", {H});
    const uint64_t F = cfg.layer_n_ff[l];
    add(hf + "mlp.gate_proj.weight", gg + "ffn_gate.weight", {F, H});
    add(hf + "mlp.up_proj.weight", gg + "ffn_up.weight", {F, H});
    add(hf + "mlp.down_proj.weight", gg + "ffn_down.weight", {H, F});
    add(hf + "post_feedforward_layernorm.weight", gg + "post_ffw_norm.weight", {H});
    if (cfg.enable_moe) {
      const uint64_t E = cfg.n_expert, I = cfg.moe_intermediate_size;
      add(hf + "router.proj.weight", gg + "ffn_gate_inp.weight", {E, H});
      add(hf + "router.scale", gg + "ffn_gate_inp.scale", {H});
      add(hf + "router.per_expert_scale", gg + "ffn_down_exps.scale", {E});
      add(hf + "experts.gate_up_proj", gg + "ffn_gate_up_exps.weight", {E, 2 * I, H});
      add(hf + "experts.down_proj", gg + "ffn_down_exps.weight", {E, H, I});
      add(hf + "pre_feedforward_layernorm_2.weight", gg + "pre_ffw_norm_2.weight", {H});
      add(hf + "post_feedforward_layernorm_1.weight", gg + "post_ffw_norm_1.weight", {H});
      add(hf + "post_feedforward_layernorm_2.weight", gg + "post_ffw_norm_2.weight", {H});
    }
    if (P > 0) {
      add(hf + "per_layer_input_gate.weight", gg + "inp_gate.weight", {P, H});
      add(hf + "per_layer_projection.weight", gg + "proj.weight", {H, P});
      add(hf + "post_per_layer_input_norm.weight", gg + "post_norm.weight", {H});
    }
    add(hf + "layer_scalar", gg + "layer_output_scale.weight", {1}, /*required=*/false);
  }
  return out;
}

std::vector<std::string> gemma4_unused_shared_kv_names(const Gemma4HfConfig& cfg) {
  std::vector<std::string> names;
  for (uint32_t l = cfg.first_kv_shared; l < cfg.n_layer; ++l) {
    const std::string hf = "model.layers." + std::to_string(l) + ".self_attn.";
    for (const char* n : {"k_proj.weight", "v_proj.weight", "k_norm.weight"}) names.push_back(hf + n);
  }
  return names;
}

void gemma4_model_metadata(const Gemma4HfConfig& cfg, GgmlType type, const std::string& name,
                           GgufMetadata& md) {
  const std::string a = "gemma4";
  md.set("general.architecture", GgufValue::str(a));
  md.set("general.type", GgufValue::str("model"));
  md.set("general.name", GgufValue::str(name));
  md.set("general.file_type", GgufValue::u32(ftype_for_type(type)));
  md.set("general.quantization_version", GgufValue::u32(2));
  md.set(a + ".context_length", GgufValue::u32(cfg.max_position_embeddings));
  md.set(a + ".embedding_length", GgufValue::u32(cfg.hidden_size));
  md.set(a + ".block_count", GgufValue::u32(cfg.n_layer));
  // Per-layer values are arrays (of INT32, as llama.cpp's Python writer stores ints) only when
  // they vary: feed_forward_length with the double-wide MLP, head_count_kv with global KV heads.
  const bool ff_uniform = std::all_of(cfg.layer_n_ff.begin(), cfg.layer_n_ff.end(),
                                      [&](uint32_t f) { return f == cfg.layer_n_ff[0]; });
  if (ff_uniform && !cfg.use_double_wide_mlp) {
    md.set(a + ".feed_forward_length", GgufValue::u32(cfg.layer_n_ff[0]));
  } else {
    std::vector<int32_t> ff(cfg.layer_n_ff.begin(), cfg.layer_n_ff.end());
    md.set(a + ".feed_forward_length", GgufValue::array(GgufType::kInt32, ff));
  }
  md.set(a + ".attention.head_count", GgufValue::u32(cfg.n_head));
  const bool kv_uniform = std::all_of(cfg.layer_n_head_kv.begin(), cfg.layer_n_head_kv.end(),
                                      [&](uint32_t k) { return k == cfg.layer_n_head_kv[0]; });
  if (kv_uniform) {
    md.set(a + ".attention.head_count_kv", GgufValue::u32(cfg.layer_n_head_kv[0]));
  } else {
    std::vector<int32_t> kv(cfg.layer_n_head_kv.begin(), cfg.layer_n_head_kv.end());
    md.set(a + ".attention.head_count_kv", GgufValue::array(GgufType::kInt32, kv));
  }
  md.set(a + ".attention.key_length", GgufValue::u32(cfg.full_head_dim()));
  md.set(a + ".attention.value_length", GgufValue::u32(cfg.full_head_dim()));
  md.set(a + ".attention.key_length_swa", GgufValue::u32(cfg.head_dim));
  md.set(a + ".attention.value_length_swa", GgufValue::u32(cfg.head_dim));
  md.set(a + ".attention.layer_norm_rms_epsilon", GgufValue::f32(cfg.rms_norm_eps));
  md.set(a + ".attention.sliding_window", GgufValue::u32(cfg.sliding_window));
  md.set(a + ".attention.sliding_window_pattern", GgufValue::bool_array(cfg.is_sliding));
  md.set(a + ".attention.shared_kv_layers", GgufValue::u32(cfg.n_kv_shared_layers));
  md.set(a + ".embedding_length_per_layer_input", GgufValue::u32(cfg.hidden_size_per_layer_input));
  md.set(a + ".rope.freq_base", GgufValue::f32(cfg.rope_theta_full));
  md.set(a + ".rope.freq_base_swa", GgufValue::f32(cfg.rope_theta_sliding));
  md.set(a + ".rope.dimension_count", GgufValue::u32(cfg.full_head_dim()));
  md.set(a + ".rope.dimension_count_swa", GgufValue::u32(cfg.head_dim));
  // Written even when 0: llama.cpp reads a missing key as 30 (spec Appendix C.1).
  md.set(a + ".final_logit_softcapping", GgufValue::f32(cfg.final_logit_softcapping));
  if (cfg.enable_moe) {
    md.set(a + ".expert_count", GgufValue::u32(cfg.n_expert));
    md.set(a + ".expert_used_count", GgufValue::u32(cfg.n_expert_used));
    md.set(a + ".expert_feed_forward_length", GgufValue::u32(cfg.moe_intermediate_size));
  }
}

}  // namespace nibble
