// llama-quantize's per-tensor type selection (spec §4), mirroring llama_tensor_get_type_impl,
// llama_tensor_get_type and tensor_type_fallback of llama.cpp's src/llama-quant.cpp, limited to
// the ftypes nibble can write. Comments name the llama.cpp branch each rule comes from.
#include "quant/recipe.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>

#include "util/check.h"

namespace nibble {

namespace {

using F = LlamaFtype;
using T = GgmlType;

bool has(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

uint64_t block_of(GgmlType t) { return traits(t).block_size; }

// ggml_n_dims: index of the last dimension > 1, plus one, at least 1.
size_t n_dims_of(const std::vector<uint64_t>& shape) {
  size_t n = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] > 1) n = i + 1;
  }
  return n;
}

// use_more_bits of llama-quant.cpp, with C integer division and remainder.
bool use_more_bits(int i_layer, int n_layers) {
  return i_layer < n_layers / 8 || i_layer >= 7 * n_layers / 8 || (i_layer - n_layers / 8) % 3 == 2;
}

// The element formats: llama-quantize applies no mixture rules and no fallback to them (§4.4
// step 2). nibble's SFP8 (one byte per element) is treated the same way.
bool is_element_ftype(LlamaFtype f) {
  return f == F::ALL_F32 || f == F::MOSTLY_F16 || f == F::MOSTLY_BF16 || f == F::NIBBLE_SFP8;
}

// The "layer" of an FFN tensor: the running count for dense models, the blk.N of the name for
// MoE models (Mixtral's experts are not stored in layer order).
Result<int> ffn_layer(const RecipeModel& m, int running, const std::string& name) {
  if (std::max<uint32_t>(1, m.n_expert) <= 1) return running;
  const auto layer = tensor_layer(name);
  if (!layer) {
    return make_error(ErrorCode::kFormat,
                      "quantize: failed to determine the layer of MoE tensor '%s'", name.c_str());
  }
  if (*layer < 0 || *layer >= static_cast<int>(m.n_layer)) {
    return make_error(ErrorCode::kFormat,
                      "quantize: bad layer %d for tensor '%s', must be in [0, %u)", *layer,
                      name.c_str(), m.n_layer);
  }
  return *layer;
}

// llama_tensor_get_type_impl for the covered ftypes. `new_type` enters as T0.
Result<GgmlType> mixture_type(const RecipeModel& m, LlamaFtype ftype, const RecipeOptions& opt,
                              RecipeState& qs, GgmlType new_type, const std::string& name,
                              const std::vector<uint64_t>& shape, TensorCategory cat) {
  const int n_layer = static_cast<int>(m.n_layer);
  const bool falcon = m.is_falcon();
  const uint32_t n_gqa = m.n_gqa();

  if (cat == TensorCategory::kOutput || (!m.has_output && cat == TensorCategory::kTokenEmbd)) {
    // Output head, and a tied token embedding, get the output tensor's type.
    if (opt.output_type) {
      new_type = *opt.output_type;
    } else if (falcon || shape[0] % block_of(new_type) != 0) {
      new_type = T::Q8_0;
    } else if (new_type != T::Q8_0) {
      new_type = T::Q6_K;
    }
  } else if (cat == TensorCategory::kTokenEmbd) {
    // Untied token embedding: only the IQ1/IQ2/IQ3_XXS/TQ ftypes change it; none is covered.
    if (opt.embd_type) new_type = *opt.embd_type;
  } else if (category_is_attn_v(cat)) {
    if (ftype == F::Q2_K) {
      new_type = n_gqa >= 4 ? T::Q4_K : T::Q3_K;
    } else if (ftype == F::Q2_K_S && n_gqa >= 4) {
      new_type = T::Q4_K;
    } else if (ftype == F::Q3_K_M) {
      new_type = qs.i_attention_wv < 2 ? T::Q5_K : T::Q4_K;
    } else if (ftype == F::Q3_K_L) {
      new_type = T::Q5_K;
    } else if ((ftype == F::IQ4_NL || ftype == F::IQ4_XS) && n_gqa >= 4) {
      new_type = T::Q5_K;
    } else if ((ftype == F::Q4_K_M || ftype == F::Q5_K_M) &&
               use_more_bits(qs.i_attention_wv, m.n_attention_wv)) {
      new_type = T::Q6_K;
    } else if (ftype == F::Q4_K_S && qs.i_attention_wv < 4) {
      new_type = T::Q5_K;
    }
    // LLaMA-70B: attn_v is 8x smaller than attn_q (8 heads share it), so spend more bits.
    if (m.is_llama_70b() && (new_type == T::Q3_K || new_type == T::Q4_K)) new_type = T::Q5_K;
    // 8-expert models: bumping attn_v to Q8_0 costs little.
    if (m.n_expert == 8) new_type = T::Q8_0;
    ++qs.i_attention_wv;
  } else if (cat == TensorCategory::kAttnK) {
    if (m.n_expert == 8) new_type = T::Q8_0;
  } else if (cat == TensorCategory::kAttnQ) {
    // Only IQ3_XS / IQ3_XXS change attn_q; neither is covered.
  } else if (cat == TensorCategory::kFfnDown) {
    NIBBLE_ASSIGN_OR_RETURN(const int i, ffn_layer(m, qs.i_ffn_down, name));
    const int n = n_layer;
    if (ftype == F::Q2_K) {
      new_type = T::Q3_K;
    } else if (ftype == F::Q2_K_S) {
      if (i < n / 8) new_type = T::Q4_K;
    } else if (ftype == F::Q3_K_M) {
      new_type = i < n / 16 ? T::Q5_K : !falcon || use_more_bits(i, n) ? T::Q4_K : T::Q3_K;
    } else if (ftype == F::Q3_K_L) {
      new_type = falcon ? T::Q4_K : T::Q5_K;
    } else if (ftype == F::Q4_K_M) {
      if (falcon) {
        new_type = i < n / 16 ? T::Q6_K : use_more_bits(i, n) ? T::Q5_K : T::Q4_K;
      } else if (use_more_bits(i, n)) {
        new_type = T::Q6_K;
      }
    } else if (i < n / 8 && (ftype == F::IQ4_NL || ftype == F::IQ4_XS) && !opt.has_imatrix) {
      new_type = T::Q5_K;
    } else if (ftype == F::Q5_K_M && use_more_bits(i, n)) {
      new_type = T::Q6_K;
    } else if (ftype == F::Q4_K_S && !falcon && i < n / 8) {
      new_type = T::Q5_K;
    } else if ((ftype == F::Q4_0 || ftype == F::Q5_0) && opt.has_imatrix && i < n / 8) {
      // Guards the first ffn_down layers; only with an imatrix, so that the no-imatrix result
      // stays what it always was.
      new_type = ftype == F::Q4_0 ? T::Q4_1 : T::Q5_1;
    }
    ++qs.i_ffn_down;
  } else if (cat == TensorCategory::kAttnOutput) {
    if (!falcon) {
      if (m.n_expert == 8) {
        if (ftype == F::Q2_K || ftype == F::Q3_K_S || ftype == F::Q3_K_M || ftype == F::IQ4_NL ||
            ftype == F::Q4_K_S || ftype == F::Q4_K_M || ftype == F::IQ4_XS) {
          new_type = T::Q5_K;
        }
      } else {
        if (ftype == F::Q2_K)
          new_type = T::Q3_K;
        else if (ftype == F::Q3_K_M)
          new_type = T::Q4_K;
        else if (ftype == F::Q3_K_L)
          new_type = T::Q5_K;
      }
    } else if (ftype == F::Q3_K_L) {
      new_type = T::Q4_K;
    }
  } else if (cat == TensorCategory::kFfnGate) {
    // Only IQ3_XS changes ffn_gate; the layer lookup still runs (and fails on a bad MoE name).
    NIBBLE_TRY(ffn_layer(m, qs.i_ffn_gate, name));
    ++qs.i_ffn_gate;
  } else if (cat == TensorCategory::kFfnUp) {
    NIBBLE_TRY(ffn_layer(m, qs.i_ffn_up, name));
    ++qs.i_ffn_up;
  }
  // llama.cpp's separate ATTENTION_QKV branch is unreachable (QKV counts as attn_v-like above).
  return new_type;
}

std::string fmt_fallback(const std::string& name, uint64_t ncols, GgmlType from, GgmlType to,
                         const char* extra) {
  char buf[256];
  std::snprintf(buf, sizeof(buf), "%s: ncols %llu not divisible by %u (required for %s) -> %s%s",
                name.c_str(), static_cast<unsigned long long>(ncols), traits(from).block_size,
                ggml_type_name(from), ggml_type_name(to), extra);
  return buf;
}

// tensor_type_fallback (§4.6).
GgmlType shape_fallback(RecipeState& qs, const std::string& name, uint64_t ncols, GgmlType type,
                        TensorChoice& c) {
  if (ncols % block_of(type) == 0) return type;
  ++qs.n_fallback;
  c.fallback = true;
  GgmlType ret;
  switch (type) {
    case T::IQ1_S:
    case T::IQ1_M:
    case T::IQ2_XXS:
    case T::IQ2_XS:
    case T::IQ2_S:
    case T::IQ3_XXS:
    case T::IQ3_S:
    case T::IQ4_XS:
      ret = T::IQ4_NL;
      break;
    case T::Q2_0:
    case T::Q2_K:
    case T::Q3_K:
    case T::TQ1_0:
    case T::TQ2_0:
      ret = T::Q4_0;
      break;
    case T::Q4_K:
      ret = T::Q5_0;
      break;
    case T::Q5_K:
      ret = T::Q5_1;
      break;
    case T::Q6_K:
      ret = T::Q8_0;
      break;
    default:
      // llama-quantize throws "no tensor type fallback is defined for type X" here and writes
      // nothing. nibble keeps going with F16, llama.cpp's own last resort, and says so.
      c.deviation = true;
      c.note = fmt_fallback(name, ncols, type, T::F16,
                            " (llama-quantize defines no fallback here and would stop)");
      return T::F16;
  }
  const char* extra = "";
  if (ncols % block_of(ret) != 0) {
    ret = T::F16;
    extra = " (must use F16 due to unusual shape)";
  }
  c.note = fmt_fallback(name, ncols, type, ret, extra);
  return ret;
}

Status check_explicit(const std::string& name, const std::vector<uint64_t>& shape, GgmlType type,
                      const char* flag) {
  if (shape[0] % block_of(type) != 0) {
    return make_error(ErrorCode::kInvalidArgument,
                      "quantize: %s %s does not fit tensor '%s': its rows of %llu are not a "
                      "multiple of %s's block of %u",
                      flag, ggml_type_name(type), name.c_str(),
                      static_cast<unsigned long long>(shape[0]), ggml_type_name(type),
                      traits(type).block_size);
  }
  return ok_status();
}

}  // namespace

const std::vector<FtypeInfo>& ftype_table() {
  static const std::vector<FtypeInfo> table = {
      {F::Q4_0, "Q4_0", "Q4_0", T::Q4_0},
      {F::Q4_1, "Q4_1", "Q4_1", T::Q4_1},
      {F::Q5_0, "Q5_0", "Q5_0", T::Q5_0},
      {F::Q5_1, "Q5_1", "Q5_1", T::Q5_1},
      {F::Q2_K, "Q2_K", "Q2_K - Medium", T::Q2_K},
      {F::Q2_K_S, "Q2_K_S", "Q2_K - Small", T::Q2_K},
      {F::Q3_K_S, "Q3_K_S", "Q3_K - Small", T::Q3_K},
      {F::Q3_K_M, "Q3_K_M", "Q3_K - Medium", T::Q3_K},
      {F::Q3_K_L, "Q3_K_L", "Q3_K - Large", T::Q3_K},
      {F::IQ4_NL, "IQ4_NL", "IQ4_NL - 4.5 bpw", T::IQ4_NL},
      {F::IQ4_XS, "IQ4_XS", "IQ4_XS - 4.25 bpw", T::IQ4_XS},
      {F::Q4_K_S, "Q4_K_S", "Q4_K - Small", T::Q4_K},
      {F::Q4_K_M, "Q4_K_M", "Q4_K - Medium", T::Q4_K},
      {F::Q5_K_S, "Q5_K_S", "Q5_K - Small", T::Q5_K},
      {F::Q5_K_M, "Q5_K_M", "Q5_K - Medium", T::Q5_K},
      {F::Q6_K, "Q6_K", "Q6_K", T::Q6_K},
      {F::Q8_0, "Q8_0", "Q8_0", T::Q8_0},
      {F::MOSTLY_F16, "F16", "F16", T::F16},
      {F::MOSTLY_BF16, "BF16", "BF16", T::BF16},
      {F::ALL_F32, "F32", "all F32", T::F32},
      {F::NIBBLE_SFP8, "SFP8", "SFP8 (nibble extension)", T::SFP8},
  };
  return table;
}

const FtypeInfo& ftype_info(LlamaFtype ftype) {
  for (const auto& f : ftype_table()) {
    if (f.ftype == ftype) return f;
  }
  NIBBLE_CHECK(false, "ftype_info: ftype missing from the table");
  return ftype_table().front();
}

std::optional<LlamaFtype> parse_ftype(std::string_view text) {
  const std::string want = lower(text);
  if (want == "q3_k") return F::Q3_K_M;
  if (want == "q4_k") return F::Q4_K_M;
  if (want == "q5_k") return F::Q5_K_M;
  for (const auto& f : ftype_table()) {
    if (lower(f.cli_name) == want) return f.ftype;
  }
  if (!want.empty() && want.size() <= 5 &&
      std::all_of(want.begin(), want.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    const auto id = static_cast<uint32_t>(std::strtoul(want.c_str(), nullptr, 10));
    for (const auto& f : ftype_table()) {
      if (static_cast<uint32_t>(f.ftype) == id) return f.ftype;
    }
  }
  return std::nullopt;
}

void RecipeModel::count_tensors(const std::vector<std::string>& names) {
  has_output = false;
  n_attention_wv = 0;
  for (const auto& n : names) {
    const TensorCategory c = tensor_category(n);
    if (category_is_attn_v(c)) ++n_attention_wv;
    if (c == TensorCategory::kOutput) has_output = true;
  }
}

TensorCategory tensor_category(const std::string& n) {
  if (n == "output.weight") return TensorCategory::kOutput;
  if (n == "token_embd.weight" || n == "per_layer_token_embd.weight")
    return TensorCategory::kTokenEmbd;
  if (has(n, "attn_qkv.weight")) return TensorCategory::kAttnQkv;
  if (has(n, "attn_kv_b.weight")) return TensorCategory::kAttnKvB;
  if (has(n, "attn_v.weight")) return TensorCategory::kAttnV;
  if (has(n, "attn_k.weight")) return TensorCategory::kAttnK;
  if (has(n, "attn_q.weight")) return TensorCategory::kAttnQ;
  if (has(n, "attn_output.weight")) return TensorCategory::kAttnOutput;
  if (has(n, "ffn_up")) return TensorCategory::kFfnUp;
  if (has(n, "ffn_gate")) return TensorCategory::kFfnGate;
  if (has(n, "ffn_down")) return TensorCategory::kFfnDown;
  return TensorCategory::kOther;
}

bool category_is_attn_v(TensorCategory c) {
  return c == TensorCategory::kAttnV || c == TensorCategory::kAttnQkv ||
         c == TensorCategory::kAttnKvB;
}

bool tensor_allows_quantization(const std::string& name, const std::vector<uint64_t>& shape) {
  if (n_dims_of(shape) < 2) return false;  // norms, biases, scalars
  if (name.size() < 6 || name.compare(name.size() - 6, 6, "weight") != 0) return false;
  static const char* const kNever[] = {
      "_norm.weight",
      "ffn_gate_inp.weight",
      "ffn_gate_tid2eid.weight",
      "altup",
      "laurel",
      "per_layer_model_proj",
      "ssm_conv1d",
      "shortconv.conv.weight",
      "indexer.k_proj.weight",
      "indexer.q_proj.weight",
      "time_mix_first.weight",
      "time_mix_w0.weight",
      "time_mix_w1.weight",
      "time_mix_w2.weight",
      "time_mix_v0.weight",
      "time_mix_v1.weight",
      "time_mix_v2.weight",
      "time_mix_a0.weight",
      "time_mix_a1.weight",
      "time_mix_a2.weight",
      "time_mix_g1.weight",
      "time_mix_g2.weight",
      "time_mix_decay_w1.weight",
      "time_mix_decay_w2.weight",
      "time_mix_lerp_fused.weight",
      "attn_rel_b.weight",
      ".position_embd",
      "sam.pos_embd",
      "sam.neck.",
      "sam.net_",
      ".rel_pos",
      ".patch_embd",
      ".patch_merger",
      "a.rvq.codebook",
      "mm.a.code_embd",
  };
  for (const char* part : kNever) {
    if (has(name, part)) return false;
  }
  // The architecture's position-embedding and token-type tensors (BERT-style models).
  if (name == "position_embd.weight" || name == "token_types.weight") return false;
  return true;
}

std::optional<int> tensor_layer(const std::string& name) {
  // sscanf(name, "blk.%d.", &layer) == 1
  if (name.compare(0, 4, "blk.") != 0) return std::nullopt;
  size_t i = 4;
  bool neg = false;
  if (i < name.size() && (name[i] == '-' || name[i] == '+')) neg = name[i++] == '-';
  const size_t start = i;
  long long v = 0;
  while (i < name.size() && name[i] >= '0' && name[i] <= '9' && v < (1ll << 31)) {
    v = v * 10 + (name[i] - '0');
    ++i;
  }
  if (i == start || v >= (1ll << 31)) return std::nullopt;
  return static_cast<int>(neg ? -v : v);
}

std::vector<size_t> llama_quantize_order(const std::vector<std::string>& names) {
  std::vector<size_t> idx(names.size());
  std::vector<int> layer(names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    idx[i] = i;
    layer[i] = tensor_layer(names[i]).value_or(-1);
  }
  std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) {
    if (layer[a] != layer[b]) return layer[a] < layer[b];
    return names[a] < names[b];  // std::string compares bytes as unsigned char
  });
  return idx;
}

Result<TensorTypeOverride> parse_tensor_type_override(const std::string& text) {
  const size_t eq = text.rfind('=');
  if (eq == std::string::npos) {
    return make_error(ErrorCode::kInvalidArgument,
                      "quantize: malformed --tensor-type '%s' (want REGEX=TYPE)", text.c_str());
  }
  if (eq == 0) {
    return make_error(ErrorCode::kInvalidArgument,
                      "quantize: --tensor-type '%s' has no tensor name", text.c_str());
  }
  if (eq + 1 == text.size()) {
    return make_error(ErrorCode::kInvalidArgument, "quantize: --tensor-type '%s' has no type",
                      text.c_str());
  }
  const std::string type_name = text.substr(eq + 1);
  const auto type = ggml_type_from_name(type_name);
  if (!type) {
    return make_error(ErrorCode::kInvalidArgument,
                      "quantize: --tensor-type '%s': unknown type '%s'", text.c_str(),
                      type_name.c_str());
  }
  TensorTypeOverride o;
  o.pattern = lower(text.substr(0, eq));
  o.type = *type;
  try {
    o.regex = std::regex(o.pattern);
  } catch (const std::regex_error& e) {
    return make_error(ErrorCode::kInvalidArgument, "quantize: --tensor-type '%s': bad regex: %s",
                      text.c_str(), e.what());
  }
  return o;
}

Result<TensorChoice> choose_tensor_type(const RecipeModel& model, LlamaFtype ftype,
                                        const RecipeOptions& opt, RecipeState& state,
                                        const std::string& name, const std::vector<uint64_t>& shape,
                                        GgmlType current) {
  TensorChoice c;
  if (shape.empty() || !tensor_allows_quantization(name, shape)) {
    c.type = current;
    return c;
  }
  c.allowed = true;
  const TensorCategory cat = tensor_category(name);
  // Step 1: explicit embedding / output types win outright (no shape fallback in llama.cpp;
  // nibble refuses a type that cannot hold the rows instead of writing a broken file).
  if (opt.embd_type && cat == TensorCategory::kTokenEmbd) {
    NIBBLE_TRY(check_explicit(name, shape, *opt.embd_type, "--embd-type"));
    c.type = *opt.embd_type;
    return c;
  }
  if (opt.output_type && cat == TensorCategory::kOutput) {
    NIBBLE_TRY(check_explicit(name, shape, *opt.output_type, "--output-type"));
    c.type = *opt.output_type;
    return c;
  }
  GgmlType type = ftype_info(ftype).default_type;
  // Step 2: element ftypes take T0 as is.
  if (is_element_ftype(ftype)) {
    c.type = type;
    return c;
  }
  // Step 3: --tensor-type overrides replace the rules; --pure disables them.
  bool manual = false;
  for (const auto& o : opt.tensor_types) {
    if (std::regex_search(name, o.regex)) {
      if (o.type != type) {
        c.note =
            name + ": manual override " + ggml_type_name(type) + " -> " + ggml_type_name(o.type);
        type = o.type;
      }
      manual = true;
      break;
    }
  }
  if (!manual && !opt.pure) {
    NIBBLE_ASSIGN_OR_RETURN(type, mixture_type(model, ftype, opt, state, type, name, shape, cat));
  }
  // Step 4: shape fallback.
  c.type = shape_fallback(state, name, shape[0], type, c);
  return c;
}

bool tensor_requires_imatrix(const std::string& name, GgmlType type, LlamaFtype ftype) {
  if (name == "token_embd.weight" || name == "per_layer_token_embd.weight" ||
      name == "output.weight") {
    return false;
  }
  return type == T::Q2_K && ftype == F::Q2_K_S;
}

}  // namespace nibble
