#include "convert/gemma4_converter.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <vector>

#include "convert/gemma4_chat_template.h"
#include "convert/hf_config.h"
#include "convert/safetensors.h"
#include "gguf/gguf_writer.h"
#include "quant/quant.h"
#include "tokenizer/vocab.h"
#include "util/mapped_file.h"

namespace nibble {

namespace fs = std::filesystem;
using ull = unsigned long long;

bool convert_type_supported(GgmlType type) {
  return type == GgmlType::F32 || type == GgmlType::F16 || type == GgmlType::BF16 ||
         type == GgmlType::Q8_0 || type == GgmlType::Q4_0;
}

uint32_t ftype_for_type(GgmlType type) {
  switch (type) {
    case GgmlType::F32: return 0;
    case GgmlType::F16: return 1;
    case GgmlType::Q4_0: return 2;
    case GgmlType::Q8_0: return 7;
    case GgmlType::BF16: return 32;
    default: return 0;
  }
}

namespace {

// One output tensor: where its values come from and how they are stored.
struct PlannedTensor {
  std::string gguf_name;
  const StTensor* src = nullptr;       // null for generated tensors
  std::vector<float> generated;        // rope_freqs
  std::vector<uint64_t> hf_shape;      // expected HF shape [outer, ..., inner]
  uint64_t keep_rows = 0;              // >0: only the first rows (vocab truncation)
  GgmlType type = GgmlType::F32;
};

bool is_tower(const std::string& name) {
  static const char* kPrefixes[] = {"model.vision_tower.", "model.audio_tower.",
                                    "model.embed_vision.", "model.embed_audio.",
                                    "model.multi_modal_projector.", "vision_tower.",
                                    "audio_tower.", "multi_modal_projector."};
  for (const char* p : kPrefixes) {
    if (name.rfind(p, 0) == 0) return true;
  }
  return false;
}

// Type for a tensor of the requested file type (1-D and the router stay F32; tensors llama.cpp
// never quantizes or whose rows do not split into 32-blocks fall back to F16).
GgmlType choose_type(const std::string& gguf_name, const std::vector<uint64_t>& hf_shape,
                     GgmlType want) {
  if (hf_shape.size() <= 1) return GgmlType::F32;
  if (gguf_name.find("ffn_gate_inp.weight") != std::string::npos) return GgmlType::F32;
  if (want == GgmlType::F32 || want == GgmlType::F16 || want == GgmlType::BF16) return want;
  if (gguf_name.find("per_layer_model_proj") != std::string::npos) return GgmlType::F16;
  if (hf_shape.back() % traits(want).block_size != 0) return GgmlType::F16;
  return want;
}

std::string shape_str(const std::vector<uint64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

Result<std::string> find_chat_template(const std::string& dir) {
  if (fs::exists(dir + "/chat_template.jinja")) {
    return read_file_to_string(dir + "/chat_template.jinja", 4ull << 20);
  }
  const std::string tc = dir + "/tokenizer_config.json";
  if (fs::exists(tc)) {
    NIBBLE_ASSIGN_OR_RETURN(std::string text, read_file_to_string(tc, 64ull << 20));
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      return make_error(ErrorCode::kFormat, "%s: invalid JSON: %s", tc.c_str(), e.what());
    }
    if (j.is_object() && j.contains("chat_template")) {
      const auto& t = j["chat_template"];
      if (t.is_string()) return t.get<std::string>();
      if (t.is_array()) {
        for (const auto& e : t) {
          if (e.is_object() && e.value("name", "") == "default" && e.contains("template") &&
              e["template"].is_string()) {
            return e["template"].get<std::string>();
          }
        }
      }
    }
  }
  return std::string();
}

// general.name: the checkpoint folder's name ("tiny-e" for tiny-e/hf: a folder called "hf" is
// named after its parent).
std::string checkpoint_name(const std::string& dir) {
  fs::path p = fs::absolute(fs::path(dir)).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  if (p.filename() == "hf" && p.has_parent_path()) p = p.parent_path();
  return p.filename().string();
}

}  // namespace

Result<ConvertSummary> convert_gemma4_checkpoint(const ConvertOptions& opt) {
  auto note = [&](const std::string& s) {
    if (opt.note) opt.note(s);
  };
  if (!convert_type_supported(opt.type)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "convert: --type %s is not supported (f32, f16, bf16, q8_0, q4_0 are)",
                      ggml_type_name(opt.type));
  }
  const std::string& dir = opt.hf_dir;
  if (!fs::is_directory(dir)) {
    return make_error(ErrorCode::kNotFound, "%s: not a directory", dir.c_str());
  }
  NIBBLE_ASSIGN_OR_RETURN(Gemma4HfConfig cfg, load_gemma4_hf_config(dir + "/config.json"));

  // Tokenizer.
  Vocab vocab;
  if (fs::exists(dir + "/tokenizer.model")) {
    NIBBLE_ASSIGN_OR_RETURN(vocab, vocab_from_sentencepiece_model(dir + "/tokenizer.model"));
  } else if (fs::exists(dir + "/tokenizer.json")) {
    NIBBLE_ASSIGN_OR_RETURN(vocab, vocab_from_tokenizer_json(dir + "/tokenizer.json"));
  } else {
    return make_error(ErrorCode::kNotFound, "%s: no tokenizer.model or tokenizer.json",
                      dir.c_str());
  }
  const uint64_t n_vocab = vocab.tokens.size();
  if (n_vocab > cfg.vocab_size) {
    return make_error(ErrorCode::kFormat,
                      "%s: the tokenizer has %llu tokens but config.json's vocab_size is %u",
                      dir.c_str(), static_cast<ull>(n_vocab), cfg.vocab_size);
  }

  NIBBLE_ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsCheckpoint> ck,
                          SafetensorsCheckpoint::open_dir(dir));

  // Normalise names: multimodal checkpoints put the text model under model.language_model.
  std::map<std::string, const StTensor*> by_name;
  uint64_t tower_bytes = 0;
  ConvertSummary summary;
  for (const auto& [name, t] : ck->tensors()) {
    if (is_tower(name)) {
      ++summary.n_skipped_towers;
      tower_bytes += t.n_bytes;
      continue;
    }
    std::string n = name;
    if (n.rfind("model.language_model.", 0) == 0) n = "model." + n.substr(21);
    if (by_name.count(n) != 0) {
      return make_error(ErrorCode::kFormat, "%s: tensor '%s' is present twice (with and without language_model.)",
                        dir.c_str(), n.c_str());
    }
    by_name[n] = &t;
  }
  if (summary.n_skipped_towers > 0) {
    note("skipping " + std::to_string(summary.n_skipped_towers) + " vision/audio tensors (" +
         std::to_string(tower_bytes >> 20) + " MiB): nibble converts the text model only");
  }

  std::set<std::string> used;
  std::vector<PlannedTensor> plan;
  const uint64_t H = cfg.hidden_size, L = cfg.n_layer, P = cfg.hidden_size_per_layer_input;
  const uint64_t V = cfg.vocab_size;

  auto take = [&](const std::string& hf, const std::string& gguf,
                  std::vector<uint64_t> shape, bool required, uint64_t keep_rows = 0) -> Status {
    auto it = by_name.find(hf);
    if (it == by_name.end()) {
      if (!required) return ok_status();
      return make_error(ErrorCode::kFormat, "%s: tensor '%s' (for %s) is missing", dir.c_str(),
                        hf.c_str(), gguf.c_str());
    }
    const StTensor* t = it->second;
    if (t->dtype != StDtype::kF32 && t->dtype != StDtype::kF16 && t->dtype != StDtype::kBF16) {
      return make_error(ErrorCode::kUnsupported, "%s: tensor '%s' has dtype %s; F32, F16 or BF16 expected",
                        t->file.c_str(), hf.c_str(), st_dtype_name(t->dtype));
    }
    if (t->shape != shape) {
      return make_error(ErrorCode::kFormat, "%s: tensor '%s' has shape %s, config.json implies %s",
                        t->file.c_str(), hf.c_str(), shape_str(t->shape).c_str(),
                        shape_str(shape).c_str());
    }
    used.insert(hf);
    PlannedTensor p;
    p.gguf_name = gguf;
    p.src = t;
    p.hf_shape = shape;
    p.keep_rows = keep_rows;
    if (keep_rows > 0) p.hf_shape[0] = keep_rows;
    p.type = choose_type(gguf, p.hf_shape, opt.type);
    plan.push_back(std::move(p));
    return ok_status();
  };

  // rope_freqs: 1 for the rotated pairs of the proportional RoPE, 1e30 (= unrotated) for the rest.
  if (cfg.rope_full_proportional) {
    const uint32_t d_f = cfg.full_head_dim();
    const uint32_t n_rot = static_cast<uint32_t>(d_f * cfg.partial_rotary_factor / 2);
    PlannedTensor p;
    p.gguf_name = "rope_freqs.weight";
    p.generated.assign(d_f / 2, 1e30f);
    for (uint32_t i = 0; i < n_rot && i < d_f / 2; ++i) p.generated[i] = 1.0f;
    p.hf_shape = {d_f / 2};
    p.type = GgmlType::F32;
    plan.push_back(std::move(p));
  }
  const uint64_t keep = n_vocab < V ? n_vocab : 0;
  if (keep) {
    note("token embeddings truncated from " + std::to_string(V) + " to the tokenizer's " +
         std::to_string(n_vocab) + " rows");
  }
  NIBBLE_TRY(take("model.embed_tokens.weight", "token_embd.weight", {V, H}, true, keep));
  if (P > 0) {
    NIBBLE_TRY(take("model.embed_tokens_per_layer.weight", "per_layer_token_embd.weight",
                    {V, L * P}, true, keep));
    NIBBLE_TRY(take("model.per_layer_model_projection.weight", "per_layer_model_proj.weight",
                    {L * P, H}, true));
    NIBBLE_TRY(take("model.per_layer_projection_norm.weight", "per_layer_proj_norm.weight", {P}, true));
  }
  NIBBLE_TRY(take("model.norm.weight", "output_norm.weight", {H}, true));
  if (!cfg.tie_word_embeddings) {
    NIBBLE_TRY(take("lm_head.weight", "output.weight", {V, H}, true, keep));
  } else if (by_name.count("lm_head.weight")) {
    used.insert("lm_head.weight");  // tied: the embedding is the output head
  }

  for (uint64_t l = 0; l < L; ++l) {
    const std::string hf = "model.layers." + std::to_string(l) + ".";
    const std::string gg = "blk." + std::to_string(l) + ".";
    const uint64_t d = cfg.layer_head_dim[l], kv = cfg.layer_n_head_kv[l], nh = cfg.n_head;
    const bool shared = cfg.is_kv_shared(static_cast<uint32_t>(l));
    NIBBLE_TRY(take(hf + "input_layernorm.weight", gg + "attn_norm.weight", {H}, true));
    NIBBLE_TRY(take(hf + "self_attn.q_proj.weight", gg + "attn_q.weight", {nh * d, H}, true));
    NIBBLE_TRY(take(hf + "self_attn.q_norm.weight", gg + "attn_q_norm.weight", {d}, true));
    NIBBLE_TRY(take(hf + "self_attn.o_proj.weight", gg + "attn_output.weight", {H, nh * d}, true));
    if (!shared) {
      NIBBLE_TRY(take(hf + "self_attn.k_proj.weight", gg + "attn_k.weight", {kv * d, H}, true));
      NIBBLE_TRY(take(hf + "self_attn.k_norm.weight", gg + "attn_k_norm.weight", {d}, true));
      const bool v_from_k = cfg.attention_k_eq_v && !cfg.is_sliding[l];
      NIBBLE_TRY(take(hf + "self_attn.v_proj.weight", gg + "attn_v.weight", {kv * d, H}, !v_from_k));
    } else {
      // KV-shared layers never use their own K/V: drop the redundant copies when present.
      for (const char* n : {"self_attn.k_proj.weight", "self_attn.v_proj.weight", "self_attn.k_norm.weight"}) {
        if (by_name.count(hf + n)) {
          used.insert(hf + n);
          ++summary.n_dropped_shared_kv;
        }
      }
    }
    NIBBLE_TRY(take(hf + "post_attention_layernorm.weight", gg + "post_attention_norm.weight", {H}, true));
    NIBBLE_TRY(take(hf + "pre_feedforward_layernorm.weight", gg + "ffn_norm.weight", {H}, true));
    const uint64_t F = cfg.layer_n_ff[l];
    NIBBLE_TRY(take(hf + "mlp.gate_proj.weight", gg + "ffn_gate.weight", {F, H}, true));
    NIBBLE_TRY(take(hf + "mlp.up_proj.weight", gg + "ffn_up.weight", {F, H}, true));
    NIBBLE_TRY(take(hf + "mlp.down_proj.weight", gg + "ffn_down.weight", {H, F}, true));
    NIBBLE_TRY(take(hf + "post_feedforward_layernorm.weight", gg + "post_ffw_norm.weight", {H}, true));
    if (cfg.enable_moe) {
      const uint64_t E = cfg.n_expert, I = cfg.moe_intermediate_size;
      NIBBLE_TRY(take(hf + "router.proj.weight", gg + "ffn_gate_inp.weight", {E, H}, true));
      NIBBLE_TRY(take(hf + "router.scale", gg + "ffn_gate_inp.scale", {H}, true));
      NIBBLE_TRY(take(hf + "router.per_expert_scale", gg + "ffn_down_exps.scale", {E}, true));
      NIBBLE_TRY(take(hf + "experts.gate_up_proj", gg + "ffn_gate_up_exps.weight", {E, 2 * I, H}, true));
      NIBBLE_TRY(take(hf + "experts.down_proj", gg + "ffn_down_exps.weight", {E, H, I}, true));
      NIBBLE_TRY(take(hf + "pre_feedforward_layernorm_2.weight", gg + "pre_ffw_norm_2.weight", {H}, true));
      NIBBLE_TRY(take(hf + "post_feedforward_layernorm_1.weight", gg + "post_ffw_norm_1.weight", {H}, true));
      NIBBLE_TRY(take(hf + "post_feedforward_layernorm_2.weight", gg + "post_ffw_norm_2.weight", {H}, true));
    }
    if (P > 0) {
      NIBBLE_TRY(take(hf + "per_layer_input_gate.weight", gg + "inp_gate.weight", {P, H}, true));
      NIBBLE_TRY(take(hf + "per_layer_projection.weight", gg + "proj.weight", {H, P}, true));
      NIBBLE_TRY(take(hf + "post_per_layer_input_norm.weight", gg + "post_norm.weight", {H}, true));
    }
    NIBBLE_TRY(take(hf + "layer_scalar", gg + "layer_output_scale.weight", {1}, false));
  }
  for (const auto& [name, t] : by_name) {
    if (used.count(name) == 0) {
      return make_error(ErrorCode::kFormat,
                        "%s: unexpected tensor '%s' %s for a Gemma 4 model with this config.json",
                        t->file.c_str(), name.c_str(), shape_str(t->shape).c_str());
    }
  }
  if (summary.n_dropped_shared_kv > 0) {
    note("dropped " + std::to_string(summary.n_dropped_shared_kv) +
         " unused K/V tensors of KV-shared layers");
  }

  // Metadata, in llama.cpp's key names and types (spec §2.2).
  GgufWriter w;
  GgufMetadata& md = w.metadata();
  const std::string arch = "gemma4";
  md.set("general.architecture", GgufValue::str(arch));
  md.set("general.type", GgufValue::str("model"));
  md.set("general.name", GgufValue::str(checkpoint_name(dir)));
  md.set("general.file_type", GgufValue::u32(ftype_for_type(opt.type)));
  md.set("general.quantization_version", GgufValue::u32(2));
  md.set(arch + ".context_length", GgufValue::u32(cfg.max_position_embeddings));
  md.set(arch + ".embedding_length", GgufValue::u32(cfg.hidden_size));
  md.set(arch + ".block_count", GgufValue::u32(cfg.n_layer));
  bool ff_uniform = std::all_of(cfg.layer_n_ff.begin(), cfg.layer_n_ff.end(),
                                [&](uint32_t f) { return f == cfg.layer_n_ff[0]; });
  if (ff_uniform && !cfg.use_double_wide_mlp) {
    md.set(arch + ".feed_forward_length", GgufValue::u32(cfg.layer_n_ff[0]));
  } else {
    std::vector<int32_t> ff(cfg.layer_n_ff.begin(), cfg.layer_n_ff.end());
    md.set(arch + ".feed_forward_length", GgufValue::array(GgufType::kInt32, ff));
  }
  md.set(arch + ".attention.head_count", GgufValue::u32(cfg.n_head));
  bool kv_uniform = std::all_of(cfg.layer_n_head_kv.begin(), cfg.layer_n_head_kv.end(),
                                [&](uint32_t k) { return k == cfg.layer_n_head_kv[0]; });
  if (kv_uniform) {
    md.set(arch + ".attention.head_count_kv", GgufValue::u32(cfg.layer_n_head_kv[0]));
  } else {
    std::vector<int32_t> kv(cfg.layer_n_head_kv.begin(), cfg.layer_n_head_kv.end());
    md.set(arch + ".attention.head_count_kv", GgufValue::array(GgufType::kInt32, kv));
  }
  md.set(arch + ".attention.key_length", GgufValue::u32(cfg.full_head_dim()));
  md.set(arch + ".attention.value_length", GgufValue::u32(cfg.full_head_dim()));
  md.set(arch + ".attention.key_length_swa", GgufValue::u32(cfg.head_dim));
  md.set(arch + ".attention.value_length_swa", GgufValue::u32(cfg.head_dim));
  md.set(arch + ".attention.layer_norm_rms_epsilon", GgufValue::f32(cfg.rms_norm_eps));
  md.set(arch + ".attention.sliding_window", GgufValue::u32(cfg.sliding_window));
  md.set(arch + ".attention.sliding_window_pattern", GgufValue::bool_array(cfg.is_sliding));
  md.set(arch + ".attention.shared_kv_layers", GgufValue::u32(cfg.n_kv_shared_layers));
  md.set(arch + ".embedding_length_per_layer_input", GgufValue::u32(cfg.hidden_size_per_layer_input));
  md.set(arch + ".rope.freq_base", GgufValue::f32(cfg.rope_theta_full));
  md.set(arch + ".rope.freq_base_swa", GgufValue::f32(cfg.rope_theta_sliding));
  md.set(arch + ".rope.dimension_count", GgufValue::u32(cfg.full_head_dim()));
  md.set(arch + ".rope.dimension_count_swa", GgufValue::u32(cfg.head_dim));
  // Written even when 0: llama.cpp treats a missing key as 30 (spec Appendix C.1).
  md.set(arch + ".final_logit_softcapping", GgufValue::f32(cfg.final_logit_softcapping));
  if (cfg.enable_moe) {
    md.set(arch + ".expert_count", GgufValue::u32(cfg.n_expert));
    md.set(arch + ".expert_used_count", GgufValue::u32(cfg.n_expert_used));
    md.set(arch + ".expert_feed_forward_length", GgufValue::u32(cfg.moe_intermediate_size));
  }
  vocab.bos_id = cfg.bos_id < static_cast<int32_t>(n_vocab) ? cfg.bos_id : vocab.bos_id;
  vocab.eos_id = cfg.eos_id < static_cast<int32_t>(n_vocab) ? cfg.eos_id : vocab.eos_id;
  vocab.pad_id = cfg.pad_id < static_cast<int32_t>(n_vocab) ? cfg.pad_id : vocab.pad_id;
  vocab_to_gguf(vocab, md);
  NIBBLE_ASSIGN_OR_RETURN(std::string tmpl, find_chat_template(dir));
  if (tmpl.empty()) {
    const bool large = cfg.attention_k_eq_v || cfg.enable_moe;
    tmpl = gemma4_default_chat_template(large);
    note(std::string("no chat template in the checkpoint: using Gemma 4's ") +
         (large ? "26B/31B" : "E2B/E4B") + " template");
  }
  md.set("tokenizer.chat_template", GgufValue::str(tmpl));

  // Tensors.
  uint64_t total_bytes = 0;
  for (auto& p : plan) {
    std::vector<uint64_t> ne(p.hf_shape.rbegin(), p.hf_shape.rend());
    uint64_t n_el = 1;
    for (uint64_t x : p.hf_shape) n_el *= x;
    summary.n_params += n_el;
    const uint64_t row = ne[0];
    const GgmlType type = p.type;
    const PlannedTensor* pp = &p;
    GgufWriter::Producer produce = [pp, n_el, row, type](std::vector<uint8_t>& out) {
      const uint64_t n_rows = n_el / row;
      const uint64_t row_bytes = ggml_row_size(type, row);
      out.resize(n_rows * row_bytes);
      if (pp->src == nullptr) {
        quantize_row(type, pp->generated.data(), out.data(), n_el);
        return ok_status();
      }
      const StTensor& s = *pp->src;
      const bool same = (type == GgmlType::F32 && s.dtype == StDtype::kF32) ||
                        (type == GgmlType::F16 && s.dtype == StDtype::kF16) ||
                        (type == GgmlType::BF16 && s.dtype == StDtype::kBF16);
      if (same) {
        std::copy(s.data, s.data + out.size(), out.data());
        return ok_status();
      }
      #pragma omp parallel
      {
        std::vector<float> buf(row);
        #pragma omp for schedule(static)
        for (int64_t r = 0; r < static_cast<int64_t>(n_rows); ++r) {
          st_to_f32(s, static_cast<uint64_t>(r) * row, row, buf.data());
          quantize_row(type, buf.data(), out.data() + static_cast<uint64_t>(r) * row_bytes, row);
        }
      }
      return ok_status();
    };
    NIBBLE_TRY(w.add_tensor(p.gguf_name, type, ne, std::move(produce)));
    total_bytes += ggml_row_size(type, row) * (n_el / row);
  }
  summary.n_tensors = plan.size();
  summary.n_bytes = total_bytes;
  uint64_t done = 0;
  std::vector<uint64_t> sizes;
  for (auto& p : plan) {
    uint64_t n_el = 1;
    for (uint64_t x : p.hf_shape) n_el *= x;
    sizes.push_back(ggml_row_size(p.type, p.hf_shape.back()) * (n_el / p.hf_shape.back()));
  }
  w.set_progress([&](size_t i, size_t, const std::string&) {
    done += sizes[i];
    if (opt.progress) opt.progress(done, total_bytes);
  });
  NIBBLE_TRY(w.write(opt.out_path));
  return summary;
}

}  // namespace nibble
