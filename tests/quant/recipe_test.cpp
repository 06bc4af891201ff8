// llama-quantize's recipes (quant/recipe.h) against spec gguf-and-quant-formats §4: ftype ids and
// names, which tensors are quantized, categories and order, the mixture rules of §4.5 per ftype,
// the MoE (n_expert == 8) adjustments, Falcon / LLaMA-70B special cases, overrides, and the §4.6
// shape fallback. Includes the §4.7 worked example (Llama-3-8B Q4_K_M and Q8_0 byte totals).
#include "quant/recipe.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

namespace nibble {
namespace {

using T = GgmlType;
using F = LlamaFtype;

struct Tensor {
  std::string name;
  std::vector<uint64_t> shape;
  GgmlType type = T::F16;
};

// A LLaMA-style dense model: n_layer layers of width n_embd, FFN n_ff, GQA n_head / n_head_kv.
std::vector<Tensor> llama_tensors(int n_layer, uint64_t n_embd, uint64_t n_ff, uint64_t n_vocab,
                                  uint64_t n_embd_kv, bool tied) {
  std::vector<Tensor> t;
  t.push_back({"token_embd.weight", {n_embd, n_vocab}});
  if (!tied) t.push_back({"output.weight", {n_embd, n_vocab}});
  t.push_back({"output_norm.weight", {n_embd}, T::F32});
  for (int i = 0; i < n_layer; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    t.push_back({p + "attn_norm.weight", {n_embd}, T::F32});
    t.push_back({p + "attn_q.weight", {n_embd, n_embd}});
    t.push_back({p + "attn_k.weight", {n_embd, n_embd_kv}});
    t.push_back({p + "attn_v.weight", {n_embd, n_embd_kv}});
    t.push_back({p + "attn_output.weight", {n_embd, n_embd}});
    t.push_back({p + "ffn_norm.weight", {n_embd}, T::F32});
    t.push_back({p + "ffn_gate.weight", {n_embd, n_ff}});
    t.push_back({p + "ffn_up.weight", {n_embd, n_ff}});
    t.push_back({p + "ffn_down.weight", {n_ff, n_embd}});
  }
  return t;
}

RecipeModel model_of(const std::string& arch, int n_layer, uint32_t n_head, uint32_t n_head_kv,
                     uint32_t n_expert, const std::vector<Tensor>& tensors) {
  RecipeModel m;
  m.arch = arch;
  m.n_layer = static_cast<uint32_t>(n_layer);
  m.n_head = n_head;
  m.n_head_kv = n_head_kv;
  m.n_expert = n_expert;
  std::vector<std::string> names;
  for (const auto& t : tensors) names.push_back(t.name);
  m.count_tensors(names);
  return m;
}

// Chooses every tensor in llama-quantize's order; returns name -> choice.
std::map<std::string, TensorChoice> plan(const RecipeModel& m, LlamaFtype ftype,
                                         const std::vector<Tensor>& tensors,
                                         const RecipeOptions& opt = {}) {
  std::vector<std::string> names;
  for (const auto& t : tensors) names.push_back(t.name);
  RecipeState st;
  std::map<std::string, TensorChoice> out;
  for (size_t i : llama_quantize_order(names)) {
    auto r =
        choose_tensor_type(m, ftype, opt, st, tensors[i].name, tensors[i].shape, tensors[i].type);
    EXPECT_TRUE(r.ok()) << tensors[i].name << ": " << (r.ok() ? "" : r.error().message);
    if (r.ok()) out[tensors[i].name] = r.value();
  }
  return out;
}

uint64_t data_bytes(const std::vector<Tensor>& tensors,
                    const std::map<std::string, TensorChoice>& p) {
  uint64_t total = 0;
  for (const auto& t : tensors) {
    uint64_t n = 1;
    for (uint64_t d : t.shape) n *= d;
    const GgmlType type = p.at(t.name).type;
    total += n / traits(type).block_size * traits(type).type_size;
  }
  return total;
}

std::string blk(int i, const char* what) { return "blk." + std::to_string(i) + "." + what; }

// ---- ftypes ----------------------------------------------------------------------------------

TEST(RecipeFtype, IdsNamesAndDefaults) {
  struct Row {
    const char* name;
    uint32_t id;
    GgmlType t0;
  };
  const Row rows[] = {
      {"F32", 0, T::F32},        {"F16", 1, T::F16},      {"Q4_0", 2, T::Q4_0},
      {"Q4_1", 3, T::Q4_1},      {"Q8_0", 7, T::Q8_0},    {"Q5_0", 8, T::Q5_0},
      {"Q5_1", 9, T::Q5_1},      {"Q2_K", 10, T::Q2_K},   {"Q3_K_S", 11, T::Q3_K},
      {"Q3_K_M", 12, T::Q3_K},   {"Q3_K_L", 13, T::Q3_K}, {"Q4_K_S", 14, T::Q4_K},
      {"Q4_K_M", 15, T::Q4_K},   {"Q5_K_S", 16, T::Q5_K}, {"Q5_K_M", 17, T::Q5_K},
      {"Q6_K", 18, T::Q6_K},     {"Q2_K_S", 21, T::Q2_K}, {"IQ4_NL", 25, T::IQ4_NL},
      {"IQ4_XS", 30, T::IQ4_XS}, {"BF16", 32, T::BF16},   {"SFP8", 1000, T::SFP8},
  };
  EXPECT_EQ(ftype_table().size(), std::size(rows));
  for (const auto& r : rows) {
    SCOPED_TRACE(r.name);
    const auto f = parse_ftype(r.name);
    ASSERT_TRUE(f.has_value());
    EXPECT_EQ(static_cast<uint32_t>(*f), r.id);
    EXPECT_EQ(ftype_info(*f).default_type, r.t0);
    EXPECT_EQ(parse_ftype(std::to_string(r.id)), f);  // llama-quantize also takes the number
  }
  EXPECT_EQ(parse_ftype("q4_k_m"), F::Q4_K_M);
  EXPECT_EQ(parse_ftype("Q3_K"), F::Q3_K_M);
  EXPECT_EQ(parse_ftype("Q4_K"), F::Q4_K_M);
  EXPECT_EQ(parse_ftype("q5_k"), F::Q5_K_M);
  EXPECT_STREQ(ftype_info(F::Q4_K_M).description, "Q4_K - Medium");
  EXPECT_STREQ(ftype_info(F::Q2_K).description, "Q2_K - Medium");
  EXPECT_STREQ(ftype_info(F::ALL_F32).description, "all F32");
  for (const char* bad : {"", "Q4", "IQ2_XXS", "Q4_K_X", "4", "99", "Q8_0 "}) {
    EXPECT_FALSE(parse_ftype(bad).has_value()) << bad;
  }
}

// ---- which tensors, categories, order ---------------------------------------------------------

TEST(RecipeTensors, WhichTensorsAreQuantized) {
  const std::vector<uint64_t> m2 = {64, 64};
  EXPECT_TRUE(tensor_allows_quantization("blk.0.attn_q.weight", m2));
  EXPECT_TRUE(tensor_allows_quantization("blk.0.ffn_down_exps.weight", {64, 64, 8}));
  EXPECT_TRUE(tensor_allows_quantization("token_embd.weight", m2));
  EXPECT_TRUE(tensor_allows_quantization("blk.0.inp_gate.weight", m2));         // Gemma 4 PLE gate
  EXPECT_FALSE(tensor_allows_quantization("blk.0.attn_norm.weight", {64}));     // 1-D
  EXPECT_FALSE(tensor_allows_quantization("blk.0.attn_q.weight", {64, 1}));     // 1-D in ggml terms
  EXPECT_FALSE(tensor_allows_quantization("blk.0.attn_q_norm.weight", m2));     // _norm.weight
  EXPECT_FALSE(tensor_allows_quantization("blk.0.ffn_gate_inp.weight", m2));    // MoE router
  EXPECT_FALSE(tensor_allows_quantization("per_layer_model_proj.weight", m2));  // Gemma 3n/4 PLE
  EXPECT_FALSE(tensor_allows_quantization("blk.0.ffn_gate_inp.scale", m2));     // not *weight
  EXPECT_FALSE(tensor_allows_quantization("blk.0.altup_proj.weight", m2));
  EXPECT_FALSE(tensor_allows_quantization("blk.0.laurel_l.weight", m2));
  EXPECT_FALSE(tensor_allows_quantization("position_embd.weight", m2));
  EXPECT_FALSE(tensor_allows_quantization("v.patch_embd.weight", m2));
}

TEST(RecipeTensors, Categories) {
  using C = TensorCategory;
  EXPECT_EQ(tensor_category("output.weight"), C::kOutput);
  EXPECT_EQ(tensor_category("token_embd.weight"), C::kTokenEmbd);
  EXPECT_EQ(tensor_category("per_layer_token_embd.weight"), C::kTokenEmbd);
  EXPECT_EQ(tensor_category("blk.1.attn_qkv.weight"), C::kAttnQkv);
  EXPECT_EQ(tensor_category("blk.1.attn_kv_b.weight"), C::kAttnKvB);
  EXPECT_EQ(tensor_category("blk.1.attn_v.weight"), C::kAttnV);
  EXPECT_EQ(tensor_category("blk.1.attn_k.weight"), C::kAttnK);
  EXPECT_EQ(tensor_category("blk.1.attn_q.weight"), C::kAttnQ);
  EXPECT_EQ(tensor_category("blk.1.attn_output.weight"), C::kAttnOutput);
  EXPECT_EQ(tensor_category("blk.1.ffn_up_exps.weight"), C::kFfnUp);
  EXPECT_EQ(tensor_category("blk.1.ffn_gate_up_exps.weight"), C::kFfnGate);  // "ffn_up" absent
  EXPECT_EQ(tensor_category("blk.1.ffn_down_shexp.weight"), C::kFfnDown);
  EXPECT_EQ(tensor_category("blk.1.inp_gate.weight"), C::kOther);
  EXPECT_TRUE(category_is_attn_v(C::kAttnQkv));
  EXPECT_TRUE(category_is_attn_v(C::kAttnKvB));
  EXPECT_FALSE(category_is_attn_v(C::kAttnK));
}

TEST(RecipeTensors, OrderIsLayerThenName) {
  const std::vector<std::string> names = {
      "blk.10.attn_q.weight", "token_embd.weight",  "blk.9.ffn_up.weight",
      "blk.9.attn_q.weight",  "output_norm.weight", "blk.0.x.weight",
      "output.weight",        "rope_freqs.weight",  "blk.2.a.weight"};
  std::vector<std::string> got;
  for (size_t i : llama_quantize_order(names)) got.push_back(names[i]);
  const std::vector<std::string> want = {
      "output.weight",       "output_norm.weight",  "rope_freqs.weight",
      "token_embd.weight",   "blk.0.x.weight",      "blk.2.a.weight",
      "blk.9.attn_q.weight", "blk.9.ffn_up.weight", "blk.10.attn_q.weight"};
  EXPECT_EQ(got, want);
  EXPECT_EQ(tensor_layer("blk.12.attn_q.weight"), 12);
  EXPECT_EQ(tensor_layer("blk.x.attn_q.weight"), std::nullopt);
  EXPECT_EQ(tensor_layer("token_embd.weight"), std::nullopt);
}

// ---- §4.7: Llama-3-8B -------------------------------------------------------------------------

TEST(RecipeMixture, Llama3_8B_Q4_K_M_WorkedExample) {
  const auto tensors = llama_tensors(32, 4096, 14336, 128256, 1024, /*tied=*/false);
  const RecipeModel m = model_of("llama", 32, 32, 8, 0, tensors);
  EXPECT_EQ(m.n_gqa(), 4u);
  EXPECT_EQ(m.n_attention_wv, 32);
  const auto p = plan(m, F::Q4_K_M, tensors);
  const std::set<int> more = {0,  1,  2,  3,  6,  9,  12, 15,
                              18, 21, 24, 27, 28, 29, 30, 31};  // use_more_bits(i, 32)
  for (int i = 0; i < 32; ++i) {
    const GgmlType bumped = more.count(i) ? T::Q6_K : T::Q4_K;
    EXPECT_EQ(p.at(blk(i, "attn_v.weight")).type, bumped) << i;
    EXPECT_EQ(p.at(blk(i, "ffn_down.weight")).type, bumped) << i;
    for (const char* w : {"attn_q.weight", "attn_k.weight", "attn_output.weight", "ffn_gate.weight",
                          "ffn_up.weight"}) {
      EXPECT_EQ(p.at(blk(i, w)).type, T::Q4_K) << i << " " << w;
    }
    EXPECT_EQ(p.at(blk(i, "attn_norm.weight")).type, T::F32);
    EXPECT_FALSE(p.at(blk(i, "attn_norm.weight")).allowed);
  }
  EXPECT_EQ(p.at("output.weight").type, T::Q6_K);
  EXPECT_EQ(p.at("token_embd.weight").type, T::Q4_K);  // untied
  EXPECT_EQ(data_bytes(tensors, p), 4912898048ull);    // "4.58G" in llama-quantize's help
  EXPECT_EQ(data_bytes(tensors, plan(m, F::Q8_0, tensors)), 8532934656ull);
}

TEST(RecipeMixture, TiedEmbeddingGetsTheOutputType) {
  const auto tensors = llama_tensors(4, 256, 512, 1024, 256, /*tied=*/true);
  const RecipeModel m = model_of("llama", 4, 4, 4, 0, tensors);
  EXPECT_FALSE(m.has_output);
  for (F f : {F::Q4_0, F::Q4_1, F::Q5_0, F::Q5_1, F::Q2_K, F::Q3_K_M, F::Q4_K_S, F::Q4_K_M,
              F::Q5_K_M, F::Q6_K, F::IQ4_NL, F::IQ4_XS}) {
    EXPECT_EQ(plan(m, f, tensors).at("token_embd.weight").type, T::Q6_K) << ftype_info(f).cli_name;
  }
  EXPECT_EQ(plan(m, F::Q8_0, tensors).at("token_embd.weight").type, T::Q8_0);
  // Rows that do not fit the default type's block: Q8_0 (output rule, before the §4.6 fallback).
  const std::vector<Tensor> odd = {{"token_embd.weight", {96, 512}},
                                   {"blk.0.attn_v.weight", {256, 256}}};
  EXPECT_EQ(plan(model_of("llama", 1, 1, 1, 0, odd), F::Q4_K_M, odd).at("token_embd.weight").type,
            T::Q8_0);
  // Gemma 4's per-layer embedding is a token embedding too: tied -> the output type.
  const std::vector<Tensor> ple = {{"token_embd.weight", {256, 512}},
                                   {"per_layer_token_embd.weight", {8960, 512}}};
  EXPECT_EQ(plan(model_of("gemma4", 35, 8, 1, 0, ple), F::Q4_K_M, ple)
                .at("per_layer_token_embd.weight")
                .type,
            T::Q6_K);
}

TEST(RecipeMixture, UniformFtypes) {
  const auto tensors = llama_tensors(8, 256, 512, 1024, 256, /*tied=*/false);
  const RecipeModel m = model_of("llama", 8, 4, 4, 0, tensors);
  for (auto [f, t] : std::vector<std::pair<F, T>>{{F::Q8_0, T::Q8_0},
                                                  {F::Q6_K, T::Q6_K},
                                                  {F::Q5_K_S, T::Q5_K},
                                                  {F::Q4_1, T::Q4_1},
                                                  {F::Q5_1, T::Q5_1},
                                                  {F::Q3_K_S, T::Q3_K}}) {
    const auto p = plan(m, f, tensors);
    for (const auto& tn : tensors) {
      if (!p.at(tn.name).allowed) continue;
      GgmlType want = t;
      if (tn.name == "output.weight") want = f == F::Q8_0 ? T::Q8_0 : T::Q6_K;
      EXPECT_EQ(p.at(tn.name).type, want) << ftype_info(f).cli_name << " " << tn.name;
    }
  }
  // Element ftypes: every quantizable tensor gets T0; nothing else changes.
  for (auto [f, t] : std::vector<std::pair<F, T>>{{F::MOSTLY_F16, T::F16},
                                                  {F::MOSTLY_BF16, T::BF16},
                                                  {F::ALL_F32, T::F32},
                                                  {F::NIBBLE_SFP8, T::SFP8}}) {
    const auto p = plan(m, f, tensors);
    EXPECT_EQ(p.at("output.weight").type, t);
    EXPECT_EQ(p.at("blk.3.attn_v.weight").type, t);
    EXPECT_EQ(p.at("blk.3.ffn_norm.weight").type, T::F32);
  }
}

TEST(RecipeMixture, PerFtypeAttnVFfnDownAttnOutput) {
  // 16 layers, n_gqa = 2 (so the n_gqa >= 4 rules stay off), then n_gqa = 4.
  const auto tensors = llama_tensors(16, 256, 512, 1024, 128, false);
  const RecipeModel m = model_of("llama", 16, 8, 4, 0, tensors);
  const RecipeModel gqa4 = model_of("llama", 16, 8, 2, 0, tensors);
  auto at = [&](const RecipeModel& mm, F f, int i, const char* w, const RecipeOptions& o = {}) {
    return plan(mm, f, tensors, o).at(blk(i, w)).type;
  };
  // Q2_K
  EXPECT_EQ(at(m, F::Q2_K, 5, "attn_v.weight"), T::Q3_K);
  EXPECT_EQ(at(gqa4, F::Q2_K, 5, "attn_v.weight"), T::Q4_K);
  EXPECT_EQ(at(m, F::Q2_K, 5, "ffn_down.weight"), T::Q3_K);
  EXPECT_EQ(at(m, F::Q2_K, 5, "attn_output.weight"), T::Q3_K);
  EXPECT_EQ(at(m, F::Q2_K, 5, "attn_q.weight"), T::Q2_K);
  // Q2_K_S: ffn_down i < n/8 (= 2) -> Q4_K
  EXPECT_EQ(at(m, F::Q2_K_S, 1, "ffn_down.weight"), T::Q4_K);
  EXPECT_EQ(at(m, F::Q2_K_S, 2, "ffn_down.weight"), T::Q2_K);
  EXPECT_EQ(at(m, F::Q2_K_S, 0, "attn_v.weight"), T::Q2_K);
  EXPECT_EQ(at(gqa4, F::Q2_K_S, 0, "attn_v.weight"), T::Q4_K);
  // Q3_K_M: attn_v first two Q5_K; ffn_down i < n/16 (= 1) Q5_K else Q4_K; attn_output Q4_K
  EXPECT_EQ(at(m, F::Q3_K_M, 1, "attn_v.weight"), T::Q5_K);
  EXPECT_EQ(at(m, F::Q3_K_M, 2, "attn_v.weight"), T::Q4_K);
  EXPECT_EQ(at(m, F::Q3_K_M, 0, "ffn_down.weight"), T::Q5_K);
  EXPECT_EQ(at(m, F::Q3_K_M, 1, "ffn_down.weight"), T::Q4_K);
  EXPECT_EQ(at(m, F::Q3_K_M, 7, "attn_output.weight"), T::Q4_K);
  EXPECT_EQ(at(m, F::Q3_K_M, 7, "ffn_up.weight"), T::Q3_K);
  // Q3_K_L: Q5_K for attn_v, ffn_down, attn_output
  EXPECT_EQ(at(m, F::Q3_K_L, 9, "attn_v.weight"), T::Q5_K);
  EXPECT_EQ(at(m, F::Q3_K_L, 9, "ffn_down.weight"), T::Q5_K);
  EXPECT_EQ(at(m, F::Q3_K_L, 9, "attn_output.weight"), T::Q5_K);
  // Q4_K_S: attn_v i < 4 Q5_K; ffn_down i < n/8 Q5_K
  EXPECT_EQ(at(m, F::Q4_K_S, 3, "attn_v.weight"), T::Q5_K);
  EXPECT_EQ(at(m, F::Q4_K_S, 4, "attn_v.weight"), T::Q4_K);
  EXPECT_EQ(at(m, F::Q4_K_S, 1, "ffn_down.weight"), T::Q5_K);
  EXPECT_EQ(at(m, F::Q4_K_S, 2, "ffn_down.weight"), T::Q4_K);
  // Q5_K_M: use_more_bits(i, 16) = {0, 1, 4, 7, 10, 13, 14, 15} -> Q6_K
  for (int i = 0; i < 16; ++i) {
    const bool more = i < 2 || i >= 14 || (i - 2) % 3 == 2;
    EXPECT_EQ(at(m, F::Q5_K_M, i, "attn_v.weight"), more ? T::Q6_K : T::Q5_K) << i;
    EXPECT_EQ(at(m, F::Q5_K_M, i, "ffn_down.weight"), more ? T::Q6_K : T::Q5_K) << i;
  }
  // IQ4_NL / IQ4_XS: attn_v Q5_K only with n_gqa >= 4; ffn_down i < n/8 Q5_K without imatrix.
  RecipeOptions with_imatrix;
  with_imatrix.has_imatrix = true;
  for (F f : {F::IQ4_NL, F::IQ4_XS}) {
    const GgmlType t0 = ftype_info(f).default_type;
    EXPECT_EQ(at(m, f, 0, "attn_v.weight"), t0);
    EXPECT_EQ(at(gqa4, f, 0, "attn_v.weight"), T::Q5_K);
    EXPECT_EQ(at(m, f, 1, "ffn_down.weight"), T::Q5_K);
    EXPECT_EQ(at(m, f, 2, "ffn_down.weight"), t0);
    EXPECT_EQ(at(m, f, 1, "ffn_down.weight", with_imatrix), t0);
  }
  // Q4_0 / Q5_0 with an imatrix: first n/8 ffn_down -> Q4_1 / Q5_1.
  EXPECT_EQ(at(m, F::Q4_0, 1, "ffn_down.weight"), T::Q4_0);
  EXPECT_EQ(at(m, F::Q4_0, 1, "ffn_down.weight", with_imatrix), T::Q4_1);
  EXPECT_EQ(at(m, F::Q4_0, 2, "ffn_down.weight", with_imatrix), T::Q4_0);
  EXPECT_EQ(at(m, F::Q5_0, 0, "ffn_down.weight", with_imatrix), T::Q5_1);
  EXPECT_EQ(at(m, F::Q4_1, 0, "ffn_down.weight", with_imatrix), T::Q4_1);
}

TEST(RecipeMixture, EightExpertMoE) {
  // n_expert == 8 (tiny-moe and rand-moe have 8): attn_v and attn_k -> Q8_0, attn_output -> Q5_K
  // for the listed ftypes; FFN layers come from the names; experts follow the FFN rules.
  std::vector<Tensor> tensors = {{"token_embd.weight", {256, 1024}}};
  for (int i = 0; i < 8; ++i) {
    tensors.push_back({blk(i, "attn_q.weight"), {256, 256}});
    tensors.push_back({blk(i, "attn_k.weight"), {256, 128}});
    tensors.push_back({blk(i, "attn_v.weight"), {256, 128}});
    tensors.push_back({blk(i, "attn_output.weight"), {256, 256}});
    tensors.push_back({blk(i, "ffn_down.weight"), {512, 256}});
    tensors.push_back({blk(i, "ffn_gate_up_exps.weight"), {256, 512, 8}});
    tensors.push_back({blk(i, "ffn_down_exps.weight"), {256, 256, 8}});
  }
  const RecipeModel moe = model_of("gemma4", 8, 4, 2, 8, tensors);
  const auto p = plan(moe, F::Q4_K_M, tensors);
  for (int i = 0; i < 8; ++i) {
    const bool more = i < 1 || i >= 7 || (i - 1) % 3 == 2;  // use_more_bits(i, 8)
    EXPECT_EQ(p.at(blk(i, "attn_v.weight")).type, T::Q8_0);
    EXPECT_EQ(p.at(blk(i, "attn_k.weight")).type, T::Q8_0);
    EXPECT_EQ(p.at(blk(i, "attn_output.weight")).type, T::Q5_K);
    EXPECT_EQ(p.at(blk(i, "attn_q.weight")).type, T::Q4_K);
    EXPECT_EQ(p.at(blk(i, "ffn_down.weight")).type, more ? T::Q6_K : T::Q4_K) << i;
    EXPECT_EQ(p.at(blk(i, "ffn_down_exps.weight")).type, more ? T::Q6_K : T::Q4_K) << i;
    EXPECT_EQ(p.at(blk(i, "ffn_gate_up_exps.weight")).type, T::Q4_K);
  }
  EXPECT_EQ(p.at("token_embd.weight").type, T::Q6_K);
  // attn_output -> Q5_K only for some ftypes.
  EXPECT_EQ(plan(moe, F::Q2_K, tensors).at(blk(0, "attn_output.weight")).type, T::Q5_K);
  EXPECT_EQ(plan(moe, F::Q5_K_M, tensors).at(blk(0, "attn_output.weight")).type, T::Q5_K);
  EXPECT_EQ(plan(moe, F::Q3_K_L, tensors).at(blk(0, "attn_output.weight")).type, T::Q3_K);
  EXPECT_EQ(plan(moe, F::Q6_K, tensors).at(blk(0, "attn_output.weight")).type, T::Q6_K);
  // Q8_0 bump for attn_k/attn_v applies to every covered quantized ftype.
  EXPECT_EQ(plan(moe, F::Q4_0, tensors).at(blk(3, "attn_v.weight")).type, T::Q8_0);
  EXPECT_EQ(plan(moe, F::Q4_0, tensors).at(blk(3, "attn_k.weight")).type, T::Q8_0);
  // Four experts: no bump.
  const RecipeModel moe4 = model_of("gemma4", 8, 4, 2, 4, tensors);
  EXPECT_EQ(plan(moe4, F::Q4_0, tensors).at(blk(3, "attn_k.weight")).type, T::Q4_0);
  // A MoE FFN tensor without a blk.N. prefix cannot be placed.
  RecipeState st;
  auto r =
      choose_tensor_type(moe, F::Q4_K_M, {}, st, "ffn_down_exps.weight", {256, 256, 8}, T::F16);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("layer"), std::string::npos);
  auto r2 =
      choose_tensor_type(moe, F::Q4_K_M, {}, st, "blk.9.ffn_up_exps.weight", {256, 256, 8}, T::F16);
  ASSERT_FALSE(r2.ok());
  EXPECT_NE(r2.error().message.find("bad layer 9"), std::string::npos);
}

TEST(RecipeMixture, FalconAndLlama70B) {
  const auto tensors = llama_tensors(32, 256, 512, 1024, 256, false);
  const RecipeModel falcon = model_of("falcon", 32, 8, 8, 0, tensors);
  const auto p = plan(falcon, F::Q4_K_M, tensors);
  EXPECT_EQ(p.at("output.weight").type, T::Q8_0);
  EXPECT_EQ(p.at(blk(0, "ffn_down.weight")).type, T::Q6_K);  // i < n/16
  EXPECT_EQ(p.at(blk(3, "ffn_down.weight")).type, T::Q5_K);  // use_more_bits
  EXPECT_EQ(p.at(blk(4, "ffn_down.weight")).type, T::Q4_K);
  EXPECT_EQ(plan(falcon, F::Q3_K_L, tensors).at(blk(4, "attn_output.weight")).type, T::Q4_K);
  EXPECT_EQ(plan(falcon, F::Q3_K_M, tensors).at(blk(4, "ffn_down.weight")).type, T::Q3_K);

  const auto big = llama_tensors(80, 256, 512, 1024, 32, false);
  const RecipeModel l70 = model_of("llama", 80, 64, 8, 0, big);
  ASSERT_TRUE(l70.is_llama_70b());
  EXPECT_EQ(plan(l70, F::Q4_K_M, big).at(blk(11, "attn_v.weight")).type, T::Q5_K);  // Q4_K bumped
  EXPECT_EQ(plan(l70, F::Q4_K_M, big).at(blk(4, "attn_v.weight")).type, T::Q6_K);   // use_more_bits
  EXPECT_EQ(plan(l70, F::Q3_K_S, big).at(blk(4, "attn_v.weight")).type, T::Q5_K);   // Q3_K bumped
  EXPECT_EQ(plan(l70, F::Q5_K_M, big).at(blk(11, "attn_v.weight")).type,
            T::Q5_K);  // not Q3_K/Q4_K: unchanged
}

// ---- options ---------------------------------------------------------------------------------

TEST(RecipeOptions, OverridesPureAndExplicitTypes) {
  const auto tensors = llama_tensors(8, 256, 512, 1024, 256, false);
  const RecipeModel m = model_of("llama", 8, 4, 4, 0, tensors);
  RecipeOptions o;
  auto ov = parse_tensor_type_override("ATTN_V=q8_0");  // the pattern is lower-cased
  ASSERT_TRUE(ov.ok());
  o.tensor_types.push_back(std::move(ov.value()));
  auto ov2 = parse_tensor_type_override("blk\\.[0-3]\\.ffn_(up|gate)=Q5_K");
  ASSERT_TRUE(ov2.ok()) << ov2.error().message;
  o.tensor_types.push_back(std::move(ov2.value()));
  auto p = plan(m, F::Q4_K_M, tensors, o);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(p.at(blk(i, "attn_v.weight")).type, T::Q8_0);
  EXPECT_EQ(p.at(blk(2, "ffn_up.weight")).type, T::Q5_K);
  EXPECT_EQ(p.at(blk(5, "ffn_up.weight")).type, T::Q4_K);
  EXPECT_EQ(p.at(blk(0, "ffn_down.weight")).type, T::Q6_K);  // rules still apply elsewhere

  RecipeOptions pure;
  pure.pure = true;
  p = plan(m, F::Q4_K_M, tensors, pure);
  for (const auto& t : tensors) {
    if (p.at(t.name).allowed) {
      EXPECT_EQ(p.at(t.name).type, T::Q4_K) << t.name;  // output too
    }
  }

  RecipeOptions ex;
  ex.output_type = T::Q8_0;
  ex.embd_type = T::F16;
  p = plan(m, F::Q4_K_M, tensors, ex);
  EXPECT_EQ(p.at("output.weight").type, T::Q8_0);
  EXPECT_EQ(p.at("token_embd.weight").type, T::F16);
  // Tied: the token embedding follows --output-type when --embd-type is absent.
  const auto tied = llama_tensors(2, 256, 512, 1024, 256, true);
  RecipeOptions only_out;
  only_out.output_type = T::Q5_K;
  EXPECT_EQ(plan(model_of("llama", 2, 4, 4, 0, tied), F::Q4_0, tied, only_out)
                .at("token_embd.weight")
                .type,
            T::Q5_K);
  // An explicit type that cannot hold the rows is an error, not a broken file.
  RecipeState st;
  RecipeOptions bad;
  bad.embd_type = T::Q4_K;
  auto r = choose_tensor_type(m, F::Q4_0, bad, st, "token_embd.weight", {64, 512}, T::F32);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("not a multiple"), std::string::npos);

  for (const char* b : {"attn_v", "=q8_0", "attn_v=", "attn_v=q9_9", "(=q8_0"}) {
    EXPECT_FALSE(parse_tensor_type_override(b).ok()) << b;
  }
}

TEST(RecipeOptions, OverrideDoesNotAdvanceCounters) {
  // llama-quantize counts i_attention_wv only inside the mixture rules: a tensor matched by
  // --tensor-type is skipped by the counter, which shifts the later layers' choices.
  const auto tensors = llama_tensors(8, 256, 512, 1024, 256, false);
  const RecipeModel m = model_of("llama", 8, 4, 4, 0, tensors);
  RecipeOptions o;
  o.tensor_types.push_back(parse_tensor_type_override("blk\\.0\\.attn_v=q8_0").value());
  const auto p = plan(m, F::Q3_K_M, tensors, o);
  EXPECT_EQ(p.at(blk(0, "attn_v.weight")).type, T::Q8_0);
  EXPECT_EQ(p.at(blk(1, "attn_v.weight")).type, T::Q5_K);  // i_attention_wv 0
  EXPECT_EQ(p.at(blk(2, "attn_v.weight")).type, T::Q5_K);  // i_attention_wv 1
  EXPECT_EQ(p.at(blk(3, "attn_v.weight")).type, T::Q4_K);
}

// ---- §4.6 shape fallback ---------------------------------------------------------------------

TEST(RecipeFallback, RowLengthsThatDoNotFit) {
  const std::vector<Tensor> tensors = {
      {"output.weight", {64, 512}},      {"blk.0.attn_q.weight", {64, 64}},
      {"blk.0.attn_v.weight", {64, 32}}, {"blk.0.ffn_down.weight", {96, 64}},
      {"blk.0.proj.weight", {16, 64}},   {"blk.0.ffn_up.weight", {64, 96}}};
  const RecipeModel m = model_of("gemma4", 1, 4, 2, 0, tensors);
  auto type_of = [&](F f, const char* n) { return plan(m, f, tensors).at(n).type; };
  EXPECT_EQ(type_of(F::Q4_K_M, "blk.0.attn_q.weight"), T::Q5_0);    // Q4_K -> Q5_0
  EXPECT_EQ(type_of(F::Q5_K_S, "blk.0.attn_q.weight"), T::Q5_1);    // Q5_K -> Q5_1
  EXPECT_EQ(type_of(F::Q6_K, "blk.0.attn_q.weight"), T::Q8_0);      // Q6_K -> Q8_0
  EXPECT_EQ(type_of(F::Q2_K, "blk.0.ffn_up.weight"), T::Q4_0);      // Q2_K -> Q4_0
  EXPECT_EQ(type_of(F::Q3_K_S, "blk.0.ffn_up.weight"), T::Q4_0);    // Q3_K -> Q4_0
  EXPECT_EQ(type_of(F::IQ4_XS, "blk.0.ffn_up.weight"), T::IQ4_NL);  // IQ4_XS -> IQ4_NL
  EXPECT_EQ(type_of(F::Q4_K_M, "blk.0.proj.weight"), T::F16);       // Q5_0 does not fit 16 either
  EXPECT_EQ(type_of(F::Q4_K_M, "output.weight"), T::Q8_0);          // output rule: 64 % 256
  EXPECT_EQ(type_of(F::Q4_K_M, "blk.0.attn_v.weight"), T::Q8_0);    // use_more_bits: Q6_K -> Q8_0
  // Q4_0 has no llama.cpp fallback (llama-quantize aborts); nibble writes F16 and flags it.
  const auto p = plan(m, F::Q4_0, tensors);
  EXPECT_EQ(p.at("blk.0.proj.weight").type, T::F16);
  EXPECT_TRUE(p.at("blk.0.proj.weight").deviation);
  EXPECT_FALSE(p.at("blk.0.attn_q.weight").fallback);
  EXPECT_FALSE(plan(m, F::Q4_K_M, tensors).at("blk.0.attn_q.weight").deviation);
  EXPECT_TRUE(plan(m, F::Q4_K_M, tensors).at("blk.0.attn_q.weight").fallback);
  // The fallback counter: every fallback, deviations included.
  RecipeState st;
  for (const auto& t : tensors)
    (void)choose_tensor_type(m, F::Q4_K_M, {}, st, t.name, t.shape, T::F32);
  EXPECT_EQ(st.n_fallback, 5);  // output's Q8_0 comes from the output rule, not a fallback
}

TEST(RecipeImatrix, RequiredOnlyForQ2_KInQ2_K_S) {
  EXPECT_TRUE(tensor_requires_imatrix("blk.0.attn_q.weight", T::Q2_K, F::Q2_K_S));
  EXPECT_FALSE(tensor_requires_imatrix("token_embd.weight", T::Q2_K, F::Q2_K_S));
  EXPECT_FALSE(tensor_requires_imatrix("output.weight", T::Q2_K, F::Q2_K_S));
  EXPECT_FALSE(tensor_requires_imatrix("blk.0.attn_q.weight", T::Q2_K, F::Q2_K));
  EXPECT_FALSE(tensor_requires_imatrix("blk.0.attn_q.weight", T::Q4_K, F::Q2_K_S));
}

}  // namespace
}  // namespace nibble
