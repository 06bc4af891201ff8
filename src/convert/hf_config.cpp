#include "convert/hf_config.h"

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "util/json_brief.h"
#include "util/text.h"

#include "util/mapped_file.h"

namespace nibble {

using json = nlohmann::json;

namespace {

constexpr uint64_t kMaxConfigBytes = 16ull << 20;
constexpr uint32_t kMaxLayers = 4096;
constexpr uint32_t kMaxDim = 1u << 20;


struct Reader {
  const json& j;
  const std::string& name;

  bool has(const char* key) const { return j.contains(key) && !j[key].is_null(); }

  Status u32(const char* key, uint32_t* out, bool required, uint32_t max = kMaxDim) const {
    if (!has(key)) {
      if (required) return make_error(ErrorCode::kFormat, "%s: '%s' is missing", name.c_str(), key);
      return ok_status();
    }
    const json& v = j[key];
    if (!v.is_number_unsigned() || v.get<uint64_t>() > max) {
      return make_error(ErrorCode::kFormat, "%s: '%s' = %s is not an integer in 0..%u",
                        name.c_str(), key, json_brief(v).c_str(), max);
    }
    *out = static_cast<uint32_t>(v.get<uint64_t>());
    return ok_status();
  }
  Status f32(const char* key, float* out) const {
    if (!has(key)) return ok_status();
    if (!j[key].is_number()) {
      return make_error(ErrorCode::kFormat, "%s: '%s' = %s is not a number", name.c_str(), key,
                        json_brief(j[key]).c_str());
    }
    *out = j[key].get<float>();
    return ok_status();
  }
  Status boolean(const char* key, bool* out) const {
    if (!has(key)) return ok_status();
    if (!j[key].is_boolean()) {
      return make_error(ErrorCode::kFormat, "%s: '%s' = %s is not true/false", name.c_str(), key,
                        json_brief(j[key]).c_str());
    }
    *out = j[key].get<bool>();
    return ok_status();
  }
};

Status read_token_id(const json& j, const char* key, int32_t* out, const std::string& name) {
  if (!j.contains(key) || j[key].is_null()) return ok_status();
  const json* v = &j[key];
  if (v->is_array()) {
    if (v->empty()) return ok_status();
    v = &(*v)[0];  // e.g. eos_token_id: [1, 106]: the first is the tokenizer's EOS
  }
  if (!v->is_number_unsigned() || v->get<uint64_t>() > (1u << 30)) {
    return make_error(ErrorCode::kFormat, "%s: '%s' = %s is not a token id", name.c_str(), key,
                      json_brief(j[key]).c_str());
  }
  *out = static_cast<int32_t>(v->get<uint64_t>());
  return ok_status();
}

}  // namespace

uint32_t Gemma4HfConfig::full_head_dim() const {
  for (uint32_t l = 0; l < n_layer; ++l) {
    if (!is_sliding[l]) return layer_head_dim[l];
  }
  return head_dim;
}

Result<Gemma4HfConfig> load_gemma4_hf_config(const std::string& path) {
  NIBBLE_ASSIGN_OR_RETURN(std::string text, read_file_to_string(path, kMaxConfigBytes));
  return parse_gemma4_hf_config(text, path);
}

Result<Gemma4HfConfig> parse_gemma4_hf_config(const std::string& text, const std::string& name) {
  json root;
  try {
    root = json::parse(text);
  } catch (const json::exception& e) {
    return make_error(ErrorCode::kFormat, "%s: invalid JSON: %s", name.c_str(), printable(e.what(), 200).c_str());
  }
  if (!root.is_object()) return make_error(ErrorCode::kFormat, "%s: not a JSON object", name.c_str());
  Gemma4HfConfig c;
  const json* jp = &root;
  if (root.contains("text_config") && root["text_config"].is_object()) {
    jp = &root["text_config"];
    c.multimodal = true;
  }
  const json& j = *jp;
  std::string model_type = j.contains("model_type") && j["model_type"].is_string()
                               ? j["model_type"].get<std::string>()
                               : "";
  if (model_type != "gemma4_text" && model_type != "gemma4") {
    return make_error(ErrorCode::kUnsupported,
                      "%s: model_type is '%s'; nibble converts Gemma 4 ('gemma4_text' / 'gemma4')",
                      name.c_str(), printable(model_type).c_str());
  }
  Reader r{j, name};
  NIBBLE_TRY(r.u32("hidden_size", &c.hidden_size, true));
  NIBBLE_TRY(r.u32("num_hidden_layers", &c.n_layer, true, kMaxLayers));
  NIBBLE_TRY(r.u32("num_attention_heads", &c.n_head, true));
  NIBBLE_TRY(r.u32("num_key_value_heads", &c.n_head_kv, true));
  c.head_dim = 256;
  NIBBLE_TRY(r.u32("head_dim", &c.head_dim, false));
  NIBBLE_TRY(r.u32("intermediate_size", &c.intermediate_size, true));
  NIBBLE_TRY(r.u32("vocab_size", &c.vocab_size, true, 1u << 24));
  c.max_position_embeddings = 131072;
  NIBBLE_TRY(r.u32("max_position_embeddings", &c.max_position_embeddings, false, 1u << 30));
  c.sliding_window = 512;
  NIBBLE_TRY(r.u32("sliding_window", &c.sliding_window, false, 1u << 30));
  NIBBLE_TRY(r.u32("num_kv_shared_layers", &c.n_kv_shared_layers, false, kMaxLayers));
  NIBBLE_TRY(r.u32("hidden_size_per_layer_input", &c.hidden_size_per_layer_input, false));
  c.vocab_size_per_layer_input = c.vocab_size;
  NIBBLE_TRY(r.u32("vocab_size_per_layer_input", &c.vocab_size_per_layer_input, false, 1u << 24));
  NIBBLE_TRY(r.boolean("attention_k_eq_v", &c.attention_k_eq_v));
  NIBBLE_TRY(r.boolean("use_double_wide_mlp", &c.use_double_wide_mlp));
  NIBBLE_TRY(r.boolean("tie_word_embeddings", &c.tie_word_embeddings));
  NIBBLE_TRY(r.boolean("enable_moe_block", &c.enable_moe));
  NIBBLE_TRY(r.f32("rms_norm_eps", &c.rms_norm_eps));
  c.final_logit_softcapping = 0.0f;
  NIBBLE_TRY(r.f32("final_logit_softcapping", &c.final_logit_softcapping));
  NIBBLE_TRY(read_token_id(j, "bos_token_id", &c.bos_id, name));
  NIBBLE_TRY(read_token_id(j, "eos_token_id", &c.eos_id, name));
  NIBBLE_TRY(read_token_id(j, "pad_token_id", &c.pad_id, name));
  if (r.has("hidden_activation") && j["hidden_activation"] != "gelu_pytorch_tanh") {
    return make_error(ErrorCode::kUnsupported, "%s: hidden_activation %s is not gelu_pytorch_tanh",
                      name.c_str(), json_brief(j["hidden_activation"]).c_str());
  }
  if (c.hidden_size == 0 || c.n_layer == 0 || c.n_head == 0 || c.n_head_kv == 0 ||
      c.head_dim == 0 || c.vocab_size == 0 || c.intermediate_size == 0) {
    return make_error(ErrorCode::kFormat,
                      "%s: hidden_size, num_hidden_layers, num_attention_heads, "
                      "num_key_value_heads, head_dim, intermediate_size and vocab_size must be > 0",
                      name.c_str());
  }
  if (c.enable_moe) {
    NIBBLE_TRY(r.u32("num_experts", &c.n_expert, true, 1u << 16));
    NIBBLE_TRY(r.u32("top_k_experts", &c.n_expert_used, true, 1u << 16));
    NIBBLE_TRY(r.u32("moe_intermediate_size", &c.moe_intermediate_size, true));
    if (c.n_expert == 0 || c.n_expert_used == 0 || c.n_expert_used > c.n_expert ||
        c.moe_intermediate_size == 0) {
      return make_error(ErrorCode::kFormat,
                        "%s: MoE needs 0 < top_k_experts (%u) <= num_experts (%u) and "
                        "moe_intermediate_size > 0 (%u)",
                        name.c_str(), c.n_expert_used, c.n_expert, c.moe_intermediate_size);
    }
  }

  // Layer types.
  const uint32_t L = c.n_layer;
  c.is_sliding.assign(L, true);
  if (r.has("layer_types")) {
    const json& lt = j["layer_types"];
    if (!lt.is_array() || lt.size() != L) {
      return make_error(ErrorCode::kFormat, "%s: layer_types must list %u layers, it has %s",
                        name.c_str(), L, lt.is_array() ? std::to_string(lt.size()).c_str() : "none");
    }
    for (uint32_t l = 0; l < L; ++l) {
      if (lt[l] == "sliding_attention") c.is_sliding[l] = true;
      else if (lt[l] == "full_attention") c.is_sliding[l] = false;
      else {
        return make_error(ErrorCode::kFormat, "%s: layer_types[%u] = %s is not sliding_attention/full_attention",
                          name.c_str(), l, json_brief(lt[l]).c_str());
      }
    }
  } else {
    uint32_t pattern = 0;
    NIBBLE_TRY(r.u32("sliding_window_pattern", &pattern, false, kMaxLayers));
    if (pattern == 0) {
      return make_error(ErrorCode::kFormat, "%s: neither layer_types nor sliding_window_pattern is given",
                        name.c_str());
    }
    for (uint32_t l = 0; l < L; ++l) c.is_sliding[l] = (l + 1) % pattern != 0;
    c.is_sliding[L - 1] = false;  // as transformers does
  }

  // RoPE.
  if (r.has("rope_parameters") && j["rope_parameters"].is_object()) {
    const json& rp = j["rope_parameters"];
    auto theta = [&](const char* type, float* out) -> Status {
      if (!rp.contains(type)) return ok_status();
      const json& t = rp[type];
      if (!t.is_object()) return make_error(ErrorCode::kFormat, "%s: rope_parameters.%s is not an object", name.c_str(), type);
      if (t.contains("rope_theta")) {
        if (!t["rope_theta"].is_number()) return make_error(ErrorCode::kFormat, "%s: rope_parameters.%s.rope_theta is not a number", name.c_str(), type);
        *out = t["rope_theta"].get<float>();
      }
      return ok_status();
    };
    NIBBLE_TRY(theta("sliding_attention", &c.rope_theta_sliding));
    NIBBLE_TRY(theta("full_attention", &c.rope_theta_full));
    if (rp.contains("full_attention") && rp["full_attention"].is_object()) {
      const json& f = rp["full_attention"];
      std::string type = f.contains("rope_type") && f["rope_type"].is_string() ? f["rope_type"].get<std::string>() : "default";
      if (type == "proportional") {
        c.rope_full_proportional = true;
        if (f.contains("partial_rotary_factor")) {
          if (!f["partial_rotary_factor"].is_number()) return make_error(ErrorCode::kFormat, "%s: partial_rotary_factor is not a number", name.c_str());
          c.partial_rotary_factor = f["partial_rotary_factor"].get<float>();
        }
        if (!(c.partial_rotary_factor > 0.0f && c.partial_rotary_factor <= 1.0f)) {
          return make_error(ErrorCode::kFormat, "%s: partial_rotary_factor %g is not in (0, 1]",
                            name.c_str(), c.partial_rotary_factor);
        }
      } else if (type != "default") {
        return make_error(ErrorCode::kUnsupported, "%s: full-attention rope_type '%s' is not supported",
                          name.c_str(), type.c_str());
      }
    }
  }

  // Per-layer head dims and KV heads: global_head_dim / num_global_key_value_heads, or a
  // per_layer_config map (both spellings are in the wild, spec §7 Q13).
  uint32_t global_head_dim = 512;
  NIBBLE_TRY(r.u32("global_head_dim", &global_head_dim, false));
  uint32_t n_global_kv = 0;
  NIBBLE_TRY(r.u32("num_global_key_value_heads", &n_global_kv, false));
  c.layer_head_dim.assign(L, 0);
  c.layer_n_head_kv.assign(L, 0);
  for (uint32_t l = 0; l < L; ++l) {
    if (c.is_sliding[l]) {
      c.layer_head_dim[l] = c.head_dim;
      c.layer_n_head_kv[l] = c.n_head_kv;
    } else {
      c.layer_head_dim[l] = global_head_dim;
      c.layer_n_head_kv[l] = (c.attention_k_eq_v && n_global_kv > 0) ? n_global_kv : c.n_head_kv;
    }
  }
  if (r.has("per_layer_config")) {
    const json& plc = j["per_layer_config"];
    if (!plc.is_object()) return make_error(ErrorCode::kFormat, "%s: per_layer_config is not an object", name.c_str());
    for (auto it = plc.begin(); it != plc.end(); ++it) {
      char* end = nullptr;
      unsigned long l = std::strtoul(it.key().c_str(), &end, 10);
      if (it.key().empty() || *end != '\0' || l >= L) {
        return make_error(ErrorCode::kFormat, "%s: per_layer_config key '%s' is not a layer index below %u",
                          name.c_str(), printable(it.key()).c_str(), L);
      }
      if (!it.value().is_object()) return make_error(ErrorCode::kFormat, "%s: per_layer_config['%s'] is not an object", name.c_str(), printable(it.key()).c_str());
      Reader pr{it.value(), name};
      NIBBLE_TRY(pr.u32("head_dim", &c.layer_head_dim[l], false));
      NIBBLE_TRY(pr.u32("num_key_value_heads", &c.layer_n_head_kv[l], false));
    }
  }
  for (uint32_t l = 0; l < L; ++l) {
    if (c.layer_head_dim[l] == 0 || c.layer_n_head_kv[l] == 0 || c.n_head % c.layer_n_head_kv[l] != 0 ||
        c.layer_head_dim[l] % 2 != 0) {
      return make_error(ErrorCode::kFormat,
                        "%s: layer %u: head_dim %u (must be even) and KV heads %u (must divide %u heads) are invalid",
                        name.c_str(), l, c.layer_head_dim[l], c.layer_n_head_kv[l], c.n_head);
    }
    // GGUF has one head dim per layer type (key_length / key_length_swa).
    for (uint32_t m = 0; m < l; ++m) {
      if (c.is_sliding[m] == c.is_sliding[l] && c.layer_head_dim[m] != c.layer_head_dim[l]) {
        return make_error(ErrorCode::kUnsupported,
                          "%s: layers %u and %u are both %s but have head dims %u and %u", name.c_str(), m, l,
                          c.is_sliding[l] ? "sliding" : "full", c.layer_head_dim[m], c.layer_head_dim[l]);
      }
    }
  }

  if (c.n_kv_shared_layers >= L) {
    return make_error(ErrorCode::kFormat, "%s: num_kv_shared_layers %u must be below num_hidden_layers %u",
                      name.c_str(), c.n_kv_shared_layers, L);
  }
  c.first_kv_shared = L - c.n_kv_shared_layers;
  for (uint32_t l = c.first_kv_shared; l < L; ++l) {
    bool found = false;
    for (uint32_t m = 0; m < c.first_kv_shared; ++m) found |= c.is_sliding[m] == c.is_sliding[l];
    if (!found) {
      return make_error(ErrorCode::kFormat, "%s: KV-shared layer %u has no earlier %s layer to read from",
                        name.c_str(), l, c.is_sliding[l] ? "sliding" : "full");
    }
  }
  c.layer_n_ff.assign(L, c.intermediate_size);
  for (uint32_t l = 0; l < L; ++l) {
    if (c.use_double_wide_mlp && c.n_kv_shared_layers > 0 && l >= c.first_kv_shared) c.layer_n_ff[l] *= 2;
  }
  if (c.hidden_size_per_layer_input > 0 && c.vocab_size_per_layer_input != c.vocab_size) {
    return make_error(ErrorCode::kUnsupported, "%s: vocab_size_per_layer_input %u differs from vocab_size %u",
                      name.c_str(), c.vocab_size_per_layer_input, c.vocab_size);
  }
  return c;
}

}  // namespace nibble
