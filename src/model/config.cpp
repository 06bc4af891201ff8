// Gemma4Config from GGUF metadata (spec §2.1-§2.2, §5.2 for the KV-sharing rule).
#include "model/config.h"

#include <string>

namespace nibble {

namespace {

constexpr const char* kPrefix = "gemma4.";
constexpr uint32_t kMaxLayers = 4096;
constexpr uint32_t kMaxDim = 1u << 20;

std::string key(const char* name) { return std::string(kPrefix) + name; }

Result<uint32_t> u32_or(const GgufMetadata& md, const char* name, uint32_t fallback) {
  if (!md.contains(key(name))) return fallback;
  return md.get_u32(key(name));
}

Result<float> f32_or(const GgufMetadata& md, const char* name, float fallback) {
  if (!md.contains(key(name))) return fallback;
  return md.get_f32(key(name));
}

Status check_range(const char* name, uint64_t v, uint64_t lo, uint64_t hi) {
  if (v < lo || v > hi) {
    return make_error(ErrorCode::kFormat,
                      "gemma4: metadata %s%s = %llu is out of range [%llu, %llu]", kPrefix, name,
                      static_cast<unsigned long long>(v), static_cast<unsigned long long>(lo),
                      static_cast<unsigned long long>(hi));
  }
  return ok_status();
}

}  // namespace

Result<Gemma4Config> Gemma4Config::from_gguf(const GgufMetadata& md) {
  Gemma4Config c;
  NIBBLE_ASSIGN_OR_RETURN(uint32_t n_layer, md.get_u32(key("block_count")));
  NIBBLE_TRY(check_range("block_count", n_layer, 1, kMaxLayers));
  NIBBLE_ASSIGN_OR_RETURN(uint32_t n_embd, md.get_u32(key("embedding_length")));
  NIBBLE_TRY(check_range("embedding_length", n_embd, 1, kMaxDim));
  NIBBLE_ASSIGN_OR_RETURN(uint32_t n_head, md.get_u32(key("attention.head_count")));
  NIBBLE_TRY(check_range("attention.head_count", n_head, 1, 4096));
  NIBBLE_ASSIGN_OR_RETURN(uint32_t n_ctx, u32_or(md, "context_length", 0));
  NIBBLE_ASSIGN_OR_RETURN(c.eps, md.get_f32(key("attention.layer_norm_rms_epsilon")));
  if (!(c.eps > 0.0f && c.eps < 1.0f)) {
    return make_error(ErrorCode::kFormat, "gemma4: layer_norm_rms_epsilon = %g is not in (0, 1)",
                      static_cast<double>(c.eps));
  }
  c.n_layer = n_layer;
  c.n_embd = n_embd;
  c.n_head = n_head;
  c.n_ctx_train = n_ctx;

  // Layer types: true = sliding.
  NIBBLE_ASSIGN_OR_RETURN(const GgufValue* pattern,
                          md.get_array(key("attention.sliding_window_pattern"), GgufType::kBool));
  if (pattern->array_size() != n_layer) {
    return make_error(ErrorCode::kFormat,
                      "gemma4: attention.sliding_window_pattern has %llu entries, expected %u",
                      static_cast<unsigned long long>(pattern->array_size()), n_layer);
  }
  bool any_sliding = false, any_full = false;
  c.layers.resize(n_layer);
  for (uint32_t l = 0; l < n_layer; ++l) {
    c.layers[l].is_sliding = pattern->element<uint8_t>(l) != 0;
    any_sliding |= c.layers[l].is_sliding;
    any_full |= !c.layers[l].is_sliding;
  }

  NIBBLE_ASSIGN_OR_RETURN(auto n_head_kv,
                          md.get_u32_per_layer(key("attention.head_count_kv"), n_layer));
  NIBBLE_ASSIGN_OR_RETURN(auto n_ff, md.get_u32_per_layer(key("feed_forward_length"), n_layer));
  uint32_t d_full = 0, d_swa = 0;
  if (any_full) {
    NIBBLE_ASSIGN_OR_RETURN(d_full, md.get_u32(key("attention.key_length")));
    NIBBLE_TRY(check_range("attention.key_length", d_full, 2, 65536));
    NIBBLE_ASSIGN_OR_RETURN(uint32_t v_full, u32_or(md, "attention.value_length", d_full));
    if (v_full != d_full) {
      return make_error(ErrorCode::kUnsupported,
                        "gemma4: attention.value_length %u != key_length %u", v_full, d_full);
    }
  }
  if (any_sliding) {
    NIBBLE_ASSIGN_OR_RETURN(d_swa, md.get_u32(key("attention.key_length_swa")));
    NIBBLE_TRY(check_range("attention.key_length_swa", d_swa, 2, 65536));
    NIBBLE_ASSIGN_OR_RETURN(uint32_t v_swa, u32_or(md, "attention.value_length_swa", d_swa));
    if (v_swa != d_swa) {
      return make_error(ErrorCode::kUnsupported,
                        "gemma4: attention.value_length_swa %u != key_length_swa %u", v_swa, d_swa);
    }
    NIBBLE_ASSIGN_OR_RETURN(uint32_t window, md.get_u32(key("attention.sliding_window")));
    NIBBLE_TRY(check_range("attention.sliding_window", window, 1, 1u << 24));
    c.sliding_window = window;
  }
  if (d_full % 2 != 0 || d_swa % 2 != 0) {
    return make_error(ErrorCode::kFormat,
                      "gemma4: head dims must be even (key_length %u, key_length_swa %u)", d_full,
                      d_swa);
  }
  NIBBLE_ASSIGN_OR_RETURN(float base_full, f32_or(md, "rope.freq_base", 1e6f));
  NIBBLE_ASSIGN_OR_RETURN(float base_swa, f32_or(md, "rope.freq_base_swa", 1e4f));
  if (!(base_full > 1.0f) || !(base_swa > 1.0f)) {
    return make_error(ErrorCode::kFormat,
                      "gemma4: rope.freq_base %g / freq_base_swa %g must be > 1",
                      static_cast<double>(base_full), static_cast<double>(base_swa));
  }

  NIBBLE_ASSIGN_OR_RETURN(uint32_t n_shared, u32_or(md, "attention.shared_kv_layers", 0));
  if (n_shared >= n_layer) {
    return make_error(ErrorCode::kFormat,
                      "gemma4: attention.shared_kv_layers = %u, block_count = %u", n_shared,
                      n_layer);
  }
  c.n_shared_kv_layers = n_shared;
  const uint32_t first_shared = n_layer - n_shared;

  for (uint32_t l = 0; l < n_layer; ++l) {
    Gemma4LayerConfig& lc = c.layers[l];
    lc.head_dim = lc.is_sliding ? d_swa : d_full;
    lc.n_head_kv = n_head_kv[l];
    lc.n_ff = n_ff[l];
    lc.rope_base = lc.is_sliding ? base_swa : base_full;
    if (lc.n_head_kv < 1 || n_head % lc.n_head_kv != 0) {
      return make_error(ErrorCode::kFormat,
                        "gemma4: layer %u has %lld KV heads, which does not divide %u query heads",
                        l, static_cast<long long>(lc.n_head_kv), n_head);
    }
    if (lc.n_ff < 1 || lc.n_ff > (1 << 24)) {
      return make_error(ErrorCode::kFormat, "gemma4: layer %u feed_forward_length = %lld", l,
                        static_cast<long long>(lc.n_ff));
    }
    // KV sharing: the last KV-owning layer of the same type (reference rule, spec §5.2).
    if (l < first_shared) {
      lc.kv_source_layer = static_cast<int>(l);
    } else {
      for (int s = static_cast<int>(first_shared) - 1; s >= 0; --s) {
        if (c.layers[s].is_sliding == lc.is_sliding) {
          lc.kv_source_layer = s;
          break;
        }
      }
      if (lc.kv_source_layer < 0) {
        return make_error(
            ErrorCode::kFormat,
            "gemma4: KV-shared layer %u (%s) has no earlier KV-owning layer of its type", l,
            lc.is_sliding ? "sliding" : "full");
      }
    }
  }

  NIBBLE_ASSIGN_OR_RETURN(uint32_t n_per_layer, u32_or(md, "embedding_length_per_layer_input", 0));
  NIBBLE_TRY(check_range("embedding_length_per_layer_input", n_per_layer, 0, kMaxDim));
  c.n_embd_per_layer = n_per_layer;

  NIBBLE_ASSIGN_OR_RETURN(uint32_t n_expert, u32_or(md, "expert_count", 0));
  NIBBLE_TRY(check_range("expert_count", n_expert, 0, 1u << 16));
  c.n_expert = n_expert;
  if (n_expert > 0) {
    NIBBLE_ASSIGN_OR_RETURN(uint32_t n_used, md.get_u32(key("expert_used_count")));
    NIBBLE_TRY(check_range("expert_used_count", n_used, 1, n_expert));
    NIBBLE_ASSIGN_OR_RETURN(uint32_t n_ff_exp, md.get_u32(key("expert_feed_forward_length")));
    NIBBLE_TRY(check_range("expert_feed_forward_length", n_ff_exp, 1, 1u << 24));
    c.n_expert_used = n_used;
    c.n_ff_exp = n_ff_exp;
  }

  NIBBLE_ASSIGN_OR_RETURN(c.final_logit_softcap, f32_or(md, "final_logit_softcapping", 30.0f));
  if (!(c.final_logit_softcap >= 0.0f)) {
    return make_error(ErrorCode::kFormat, "gemma4: final_logit_softcapping = %g is negative",
                      static_cast<double>(c.final_logit_softcap));
  }
  return c;
}

}  // namespace nibble
