// llama-quantize's recipes: the file types (llama_ftype, spec gguf-and-quant-formats §4.1), which
// tensors get quantized (§4.2), their categories, order and counters (§4.3), and the per-tensor
// type selection with its mixture rules and shape fallback (§4.4-4.6), mirroring
// llama_tensor_get_type in llama.cpp's src/llama-quant.cpp. Pure logic over names and shapes: no
// file access, no tensor data (the driver is quant/quantize_model.h).
//
// Covered ftypes: F32 F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q2_K_S Q3_K_S/M/L Q4_K_S/M Q5_K_S/M
// Q6_K IQ4_NL IQ4_XS, and nibble's SFP8 extension. The IQ1/IQ2/IQ3, TQ and MXFP4 ftypes (which
// need codecs nibble does not have, and mostly an imatrix) are not.
#pragma once

#include <cstdint>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "tensor/ggml_type.h"
#include "util/result.h"

namespace nibble {

// llama_ftype ids as stored in general.file_type. NIBBLE_SFP8 is nibble's own (1000: far from
// llama.cpp's ids, which end below 64, and without the 1024 "guessed" flag bit).
enum class LlamaFtype : uint32_t {
  ALL_F32 = 0,
  MOSTLY_F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q8_0 = 7,
  Q5_0 = 8,
  Q5_1 = 9,
  Q2_K = 10,
  Q3_K_S = 11,
  Q3_K_M = 12,
  Q3_K_L = 13,
  Q4_K_S = 14,
  Q4_K_M = 15,
  Q5_K_S = 16,
  Q5_K_M = 17,
  Q6_K = 18,
  Q2_K_S = 21,
  IQ4_NL = 25,
  IQ4_XS = 30,
  MOSTLY_BF16 = 32,
  NIBBLE_SFP8 = 1000,
};

struct FtypeInfo {
  LlamaFtype ftype;
  const char* cli_name;     // llama-quantize's name: "Q4_K_M"
  const char* description;  // llama_ftype_name: "Q4_K - Medium"
  GgmlType default_type;    // T0 of table 4.1
};

// Every covered ftype, in llama-quantize's help order.
const std::vector<FtypeInfo>& ftype_table();
const FtypeInfo& ftype_info(LlamaFtype ftype);
// "Q4_K_M", "q4_k_m", the aliases Q3_K/Q4_K/Q5_K (= the _M variants), "SFP8", or the numeric id
// ("15"), as llama-quantize accepts them.
std::optional<LlamaFtype> parse_ftype(std::string_view text);

// What the rules need to know about the model (llama.cpp reads these from the loaded hparams).
struct RecipeModel {
  std::string arch;         // general.architecture
  uint32_t n_layer = 0;     // {arch}.block_count
  uint32_t n_head = 0;      // {arch}.attention.head_count, layer 0
  uint32_t n_head_kv = 0;   // {arch}.attention.head_count_kv, layer 0
  uint32_t n_expert = 0;    // {arch}.expert_count (0 for dense models)
  bool has_output = false;  // an output.weight tensor exists; otherwise embeddings are tied
  int n_attention_wv = 0;   // number of attn_v-like tensors (attn_v, attn_qkv, attn_kv_b)

  // n_head / n_head_kv (C integer division), 0 when n_head_kv is 0.
  uint32_t n_gqa() const { return n_head_kv == 0 ? 0 : n_head / n_head_kv; }
  bool is_falcon() const { return arch == "falcon"; }
  // llama.cpp's LLM_TYPE_70B: LLaMA architecture, 80 layers, grouped-query attention.
  bool is_llama_70b() const { return arch == "llama" && n_layer == 80 && n_head != n_head_kv; }
  // Sets has_output and n_attention_wv from the model's tensor names.
  void count_tensors(const std::vector<std::string>& names);
};

// §4.3 categories (first match wins).
enum class TensorCategory {
  kTokenEmbd,
  kAttnQ,
  kAttnV,
  kAttnK,
  kAttnQkv,
  kAttnKvB,
  kAttnOutput,
  kFfnUp,
  kFfnGate,
  kFfnDown,
  kOutput,
  kOther,
};
TensorCategory tensor_category(const std::string& name);
// attn_v, attn_qkv, attn_kv_b.
bool category_is_attn_v(TensorCategory c);

// §4.2: may this tensor be (re)quantized at all? `shape` as in GGUF (ne[0] first); the number of
// dimensions is ggml's (trailing 1s do not count).
bool tensor_allows_quantization(const std::string& name, const std::vector<uint64_t>& shape);

// llama-quantize's tensor order (§4.3): by the layer N of a "blk.N." prefix (-1 without one),
// then by name, byte-wise. Returns indices into `names`. This is also the output file's order.
std::vector<size_t> llama_quantize_order(const std::vector<std::string>& names);

// The layer N of a name starting with "blk.N.", or nullopt.
std::optional<int> tensor_layer(const std::string& name);

// One --tensor-type REGEX=TYPE. The pattern is lower-cased and searched (std::regex_search,
// ECMAScript) in the tensor name, as llama-quantize does; the first matching override wins.
struct TensorTypeOverride {
  std::string pattern;
  std::regex regex;
  GgmlType type;
};
// Parses "REGEX=TYPE" (TYPE a ggml type name such as q8_0, q4_K, f16, or sfp8).
Result<TensorTypeOverride> parse_tensor_type_override(const std::string& text);

struct RecipeOptions {
  std::optional<GgmlType> output_type;  // --output-type (llama-quantize --output-tensor-type)
  std::optional<GgmlType> embd_type;    // --embd-type (llama-quantize --token-embedding-type)
  std::vector<TensorTypeOverride> tensor_types;  // --tensor-type, in command-line order
  bool pure = false;                             // --pure: no mixture rules, every tensor gets T0
  bool has_imatrix = false;                      // an importance matrix was given
};

// llama-quantize's running counters (§4.3), advanced as tensors are chosen in order.
struct RecipeState {
  int i_attention_wv = 0;
  int i_ffn_down = 0;
  int i_ffn_gate = 0;
  int i_ffn_up = 0;
  int n_fallback = 0;
};

struct TensorChoice {
  GgmlType type = GgmlType::F32;
  bool allowed = false;   // passes §4.2 (otherwise `type` is the tensor's current type)
  bool fallback = false;  // the §4.6 shape fallback changed the type
  // Set when nibble deviates from llama-quantize: the row length fits no block of the chosen
  // type and llama.cpp defines no fallback for it (it aborts); nibble uses F16 instead.
  bool deviation = false;
  std::string note;  // human-readable reason for a fallback or override, or ""
};

// The type of one tensor (§4.4): `current` is its type in the input file. Call in
// llama_quantize_order(); `state` carries the counters between calls. Errors: a MoE FFN tensor
// without a valid "blk.N." layer, an explicit type whose block does not divide the row.
Result<TensorChoice> choose_tensor_type(const RecipeModel& model, LlamaFtype ftype,
                                        const RecipeOptions& options, RecipeState& state,
                                        const std::string& name, const std::vector<uint64_t>& shape,
                                        GgmlType current);

// True when llama-quantize requires an importance matrix for this tensor at this type: Q2_K
// tensors of a Q2_K_S file, token_embd/output excepted (§3.6).
bool tensor_requires_imatrix(const std::string& name, GgmlType type, LlamaFtype ftype);

}  // namespace nibble
