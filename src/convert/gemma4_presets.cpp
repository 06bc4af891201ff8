#include "convert/gemma4_presets.h"

#include <nlohmann/json.hpp>

namespace nibble {

namespace {

using json = nlohmann::json;

struct Preset {
  const char* name;
  int hidden, layers, period, heads, kv, global_kv, ff, window, shared, ple, max_pos;
  bool k_eq_v, double_wide, moe;
};

// Values from the HF converter's variant table, confirmed by the config defaults (spec §1.3).
constexpr Preset kPresets[] = {
    {"e2b", 1536, 35, 5, 8, 1, 0, 6144, 512, 20, 256, 131072, false, true, false},
    {"e4b", 2560, 42, 6, 8, 2, 0, 10240, 512, 18, 256, 131072, false, false, false},
    {"31b", 5376, 60, 6, 32, 16, 4, 21504, 1024, 0, 0, 262144, true, false, false},
    {"26b-a4b", 2816, 30, 6, 16, 8, 2, 2112, 1024, 0, 0, 262144, true, false, true},
};

json make_config(const Preset& p) {
  json layer_types = json::array();
  for (int l = 0; l < p.layers; ++l) {
    layer_types.push_back((l + 1) % p.period == 0 ? "full_attention" : "sliding_attention");
  }
  json c = {
      {"architectures", {"Gemma4ForCausalLM"}},
      {"model_type", "gemma4_text"},
      {"hidden_size", p.hidden},
      {"num_hidden_layers", p.layers},
      {"num_attention_heads", p.heads},
      {"num_key_value_heads", p.kv},
      {"head_dim", 256},
      {"global_head_dim", 512},
      {"intermediate_size", p.ff},
      {"layer_types", layer_types},
      {"sliding_window", p.window},
      {"num_kv_shared_layers", p.shared},
      {"hidden_size_per_layer_input", p.ple},
      {"vocab_size", 262144},
      {"vocab_size_per_layer_input", 262144},
      {"max_position_embeddings", p.max_pos},
      {"attention_k_eq_v", p.k_eq_v},
      {"use_double_wide_mlp", p.double_wide},
      {"enable_moe_block", p.moe},
      {"final_logit_softcapping", 30.0},
      {"rms_norm_eps", 1e-6},
      {"hidden_activation", "gelu_pytorch_tanh"},
      {"tie_word_embeddings", true},
      {"bos_token_id", 2},
      {"eos_token_id", 1},
      {"pad_token_id", 0},
      {"rope_parameters",
       {{"sliding_attention", {{"rope_type", "default"}, {"rope_theta", 10000.0}}},
        {"full_attention",
         {{"rope_type", "proportional"}, {"rope_theta", 1000000.0}, {"partial_rotary_factor", 0.25}}}}},
  };
  if (p.global_kv > 0) c["num_global_key_value_heads"] = p.global_kv;
  if (p.moe) {
    c["num_experts"] = 128;
    c["top_k_experts"] = 8;
    c["moe_intermediate_size"] = 704;
  }
  return c;
}

}  // namespace

const std::vector<std::string>& gemma4_preset_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const auto& p : kPresets) v.push_back(p.name);
    return v;
  }();
  return names;
}

Result<std::string> gemma4_preset_config_json(std::string_view name) {
  for (const auto& p : kPresets) {
    if (name == p.name) return make_config(p).dump(2);
  }
  std::string known;
  for (const auto& n : gemma4_preset_names()) known += (known.empty() ? "" : ", ") + n;
  return make_error(ErrorCode::kInvalidArgument, "unknown preset '%.*s' (known: %s)",
                    static_cast<int>(name.size()), name.data(), known.c_str());
}

Result<Gemma4HfConfig> gemma4_preset(std::string_view name) {
  NIBBLE_ASSIGN_OR_RETURN(std::string text, gemma4_preset_config_json(name));
  return parse_gemma4_hf_config(text, "preset " + std::string(name));
}

}  // namespace nibble
