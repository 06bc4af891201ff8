// nibble convert on the five reference checkpoints at every --type: metadata and tensor names
// against the spec's tables (hand-written per model below, independent of the converter's own
// config parsing), tensor bytes against the safetensors source, and read -> write byte identity.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include "gguf/gguf_file.h"
#include "gguf/gguf_writer.h"
#include "quant/quant.h"
#include "test_util.h"
#include "util/fp16.h"

namespace nibble {
namespace {

namespace fs = std::filesystem;

// What the spec (gemma4-architecture §2.2, §3) says each fixture's GGUF must contain.
struct Expected {
  const char* name;
  bool in_repo;  // rand-* are copied into tests/fixtures
  uint32_t n_layer, n_embd, n_head;
  std::vector<uint32_t> n_head_kv;  // one entry => scalar key
  uint32_t key_length, key_length_swa;
  std::vector<uint32_t> n_ff;       // one entry => scalar key
  std::vector<bool> swa_pattern;
  uint32_t shared_kv_layers, ple, window;
  float softcap;
  uint32_t n_expert, n_expert_used, n_ff_exp;
  bool k_eq_v;
  uint32_t n_vocab;
  uint32_t rope_rotated_pairs;  // entries of rope_freqs equal to 1
};

const std::vector<Expected>& expected_models() {
  static const std::vector<Expected> kModels = {
      {"rand-e", true, 6, 64, 4, {1}, 32, 16, {128, 128, 128, 128, 256, 256},
       {true, true, false, true, true, false}, 2, 16, 16, 30.0f, 0, 0, 0, false, 512, 4},
      {"rand-moe", true, 4, 64, 4, {2, 2, 2, 1}, 32, 16, {96}, {true, true, true, false}, 0, 0, 16,
       30.0f, 8, 2, 32, true, 512, 4},
      {"rand-dense", true, 6, 64, 4, {2, 2, 1, 2, 2, 1}, 32, 16, {160},
       {true, true, false, true, true, false}, 0, 0, 16, 0.0f, 0, 0, 0, true, 512, 4},
      {"tiny-e", false, 6, 256, 4, {1}, 128, 64, {1024, 1024, 1024, 1024, 2048, 2048},
       {true, true, false, true, true, false}, 2, 64, 64, 30.0f, 0, 0, 0, false, 8192, 16},
      {"tiny-moe", false, 4, 256, 4, {2, 2, 2, 1}, 128, 64, {512}, {true, true, true, false}, 0, 0,
       64, 30.0f, 8, 2, 256, true, 8192, 16},
  };
  return kModels;
}

std::string model_dir(const Expected& m) {
  std::string repo = test::source_dir() + "/tests/fixtures/models/" + m.name + "/hf";
  if (m.in_repo && fs::exists(repo)) return repo;
  std::string shared = test::shared_dir();
  return shared.empty() ? "" : shared + "/models/" + m.name + "/hf";
}

// Expected tensors: GGUF name -> ne (fastest first).
std::map<std::string, std::vector<uint64_t>> expected_tensors(const Expected& m) {
  std::map<std::string, std::vector<uint64_t>> t;
  const uint64_t H = m.n_embd, L = m.n_layer, P = m.ple, V = m.n_vocab;
  t["token_embd.weight"] = {H, V};
  t["output_norm.weight"] = {H};
  t["rope_freqs.weight"] = {m.key_length / 2};
  if (P) {
    t["per_layer_token_embd.weight"] = {P * L, V};
    t["per_layer_model_proj.weight"] = {H, P * L};
    t["per_layer_proj_norm.weight"] = {P};
  }
  for (uint64_t l = 0; l < L; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    const bool swa = m.swa_pattern[l];
    const uint64_t d = swa ? m.key_length_swa : m.key_length;
    const uint64_t kv = m.n_head_kv.size() == 1 ? m.n_head_kv[0] : m.n_head_kv[l];
    const uint64_t F = m.n_ff.size() == 1 ? m.n_ff[0] : m.n_ff[l];
    const bool shared = l >= L - m.shared_kv_layers;
    t[b + "attn_norm.weight"] = {H};
    t[b + "attn_q.weight"] = {H, m.n_head * d};
    t[b + "attn_q_norm.weight"] = {d};
    t[b + "attn_output.weight"] = {m.n_head * d, H};
    if (!shared) {
      t[b + "attn_k.weight"] = {H, kv * d};
      t[b + "attn_k_norm.weight"] = {d};
      if (!(m.k_eq_v && !swa)) t[b + "attn_v.weight"] = {H, kv * d};
    }
    t[b + "post_attention_norm.weight"] = {H};
    t[b + "ffn_norm.weight"] = {H};
    t[b + "ffn_gate.weight"] = {H, F};
    t[b + "ffn_up.weight"] = {H, F};
    t[b + "ffn_down.weight"] = {F, H};
    t[b + "post_ffw_norm.weight"] = {H};
    t[b + "layer_output_scale.weight"] = {1};
    if (m.n_expert) {
      const uint64_t E = m.n_expert, I = m.n_ff_exp;
      t[b + "ffn_gate_inp.weight"] = {H, E};
      t[b + "ffn_gate_inp.scale"] = {H};
      t[b + "ffn_down_exps.scale"] = {E};
      t[b + "ffn_gate_up_exps.weight"] = {H, 2 * I, E};
      t[b + "ffn_down_exps.weight"] = {I, H, E};
      t[b + "pre_ffw_norm_2.weight"] = {H};
      t[b + "post_ffw_norm_1.weight"] = {H};
      t[b + "post_ffw_norm_2.weight"] = {H};
    }
    if (P) {
      t[b + "inp_gate.weight"] = {H, P};
      t[b + "proj.weight"] = {P, H};
      t[b + "post_norm.weight"] = {H};
    }
  }
  return t;
}

void check_u32_or_array(const GgufMetadata& md, const std::string& key,
                        const std::vector<uint32_t>& want, uint32_t n_layer) {
  const GgufValue* v = md.find(key);
  ASSERT_NE(v, nullptr) << key;
  if (want.size() == 1) {
    ASSERT_EQ(v->type(), GgufType::kUint32) << key;
    EXPECT_EQ(v->as<uint32_t>(), want[0]) << key;
  } else {
    ASSERT_TRUE(v->is_array()) << key;
    ASSERT_EQ(v->array_size(), n_layer) << key;
    for (uint32_t l = 0; l < n_layer; ++l) EXPECT_EQ(v->element<uint32_t>(l), want[l]) << key << "[" << l << "]";
  }
}

void check_metadata(const Expected& m, const GgufMetadata& md, GgmlType type) {
  auto u32 = [&](const std::string& k) { return md.get_u32(k).value(); };
  EXPECT_EQ(md.get_string("general.architecture").value(), "gemma4");
  EXPECT_EQ(md.get_string("general.name").value(), m.name);
  const std::map<GgmlType, uint32_t> ftype = {{GgmlType::F32, 0}, {GgmlType::F16, 1}, {GgmlType::Q4_0, 2},
                                              {GgmlType::Q8_0, 7}, {GgmlType::BF16, 32}};
  EXPECT_EQ(u32("general.file_type"), ftype.at(type));
  EXPECT_EQ(u32("gemma4.block_count"), m.n_layer);
  EXPECT_EQ(u32("gemma4.embedding_length"), m.n_embd);
  EXPECT_EQ(u32("gemma4.attention.head_count"), m.n_head);
  check_u32_or_array(md, "gemma4.attention.head_count_kv", m.n_head_kv, m.n_layer);
  check_u32_or_array(md, "gemma4.feed_forward_length", m.n_ff, m.n_layer);
  EXPECT_EQ(u32("gemma4.attention.key_length"), m.key_length);
  EXPECT_EQ(u32("gemma4.attention.value_length"), m.key_length);
  EXPECT_EQ(u32("gemma4.attention.key_length_swa"), m.key_length_swa);
  EXPECT_EQ(u32("gemma4.attention.value_length_swa"), m.key_length_swa);
  EXPECT_EQ(u32("gemma4.rope.dimension_count"), m.key_length);
  EXPECT_EQ(u32("gemma4.rope.dimension_count_swa"), m.key_length_swa);
  EXPECT_EQ(u32("gemma4.attention.sliding_window"), m.window);
  EXPECT_EQ(u32("gemma4.attention.shared_kv_layers"), m.shared_kv_layers);
  EXPECT_EQ(u32("gemma4.embedding_length_per_layer_input"), m.ple);
  EXPECT_FLOAT_EQ(md.get_f32("gemma4.rope.freq_base").value(), 1e6f);
  EXPECT_FLOAT_EQ(md.get_f32("gemma4.rope.freq_base_swa").value(), 1e4f);
  EXPECT_FLOAT_EQ(md.get_f32("gemma4.attention.layer_norm_rms_epsilon").value(), 1e-6f);
  EXPECT_FLOAT_EQ(md.get_f32("gemma4.final_logit_softcapping").value(), m.softcap);
  auto pat = md.get_array("gemma4.attention.sliding_window_pattern", GgufType::kBool);
  ASSERT_TRUE(pat.ok());
  ASSERT_EQ(pat.value()->array_size(), m.n_layer);
  for (uint32_t l = 0; l < m.n_layer; ++l) EXPECT_EQ(pat.value()->element<int>(l) != 0, m.swa_pattern[l]);
  if (m.n_expert) {
    EXPECT_EQ(u32("gemma4.expert_count"), m.n_expert);
    EXPECT_EQ(u32("gemma4.expert_used_count"), m.n_expert_used);
    EXPECT_EQ(u32("gemma4.expert_feed_forward_length"), m.n_ff_exp);
  } else {
    EXPECT_FALSE(md.contains("gemma4.expert_count"));
  }
  EXPECT_EQ(md.get_string("tokenizer.ggml.model").value(), "gemma4");
  EXPECT_EQ(md.get_array("tokenizer.ggml.tokens", GgufType::kString).value()->array_size(), m.n_vocab);
  EXPECT_EQ(u32("tokenizer.ggml.bos_token_id"), 2u);
  EXPECT_EQ(u32("tokenizer.ggml.eos_token_id"), 1u);
  EXPECT_TRUE(md.get_bool("tokenizer.ggml.add_bos_token").value());
  EXPECT_FALSE(md.get_bool("tokenizer.ggml.add_space_prefix").value());
  EXPECT_NE(md.get_string("tokenizer.chat_template").value().find("<|turn>"), std::string::npos);
}

// HF name of a GGUF tensor (inverse of the spec's table, for the data check).
std::string hf_name(const std::string& g) {
  static const std::map<std::string, std::string> kGlobal = {
      {"token_embd.weight", "model.embed_tokens.weight"},
      {"output_norm.weight", "model.norm.weight"},
      {"per_layer_token_embd.weight", "model.embed_tokens_per_layer.weight"},
      {"per_layer_model_proj.weight", "model.per_layer_model_projection.weight"},
      {"per_layer_proj_norm.weight", "model.per_layer_projection_norm.weight"}};
  static const std::map<std::string, std::string> kLayer = {
      {"attn_norm.weight", "input_layernorm.weight"}, {"attn_q.weight", "self_attn.q_proj.weight"},
      {"attn_k.weight", "self_attn.k_proj.weight"}, {"attn_v.weight", "self_attn.v_proj.weight"},
      {"attn_output.weight", "self_attn.o_proj.weight"}, {"attn_q_norm.weight", "self_attn.q_norm.weight"},
      {"attn_k_norm.weight", "self_attn.k_norm.weight"},
      {"post_attention_norm.weight", "post_attention_layernorm.weight"},
      {"ffn_norm.weight", "pre_feedforward_layernorm.weight"}, {"ffn_gate.weight", "mlp.gate_proj.weight"},
      {"ffn_up.weight", "mlp.up_proj.weight"}, {"ffn_down.weight", "mlp.down_proj.weight"},
      {"post_ffw_norm.weight", "post_feedforward_layernorm.weight"},
      {"pre_ffw_norm_2.weight", "pre_feedforward_layernorm_2.weight"},
      {"post_ffw_norm_1.weight", "post_feedforward_layernorm_1.weight"},
      {"post_ffw_norm_2.weight", "post_feedforward_layernorm_2.weight"},
      {"ffn_gate_inp.weight", "router.proj.weight"}, {"ffn_gate_inp.scale", "router.scale"},
      {"ffn_down_exps.scale", "router.per_expert_scale"}, {"ffn_gate_up_exps.weight", "experts.gate_up_proj"},
      {"ffn_down_exps.weight", "experts.down_proj"}, {"inp_gate.weight", "per_layer_input_gate.weight"},
      {"proj.weight", "per_layer_projection.weight"}, {"post_norm.weight", "post_per_layer_input_norm.weight"},
      {"layer_output_scale.weight", "layer_scalar"}};
  if (kGlobal.count(g)) return kGlobal.at(g);
  if (g.rfind("blk.", 0) != 0) return "";
  size_t dot = g.find('.', 4);
  return "model.layers." + g.substr(4, dot - 4) + "." + kLayer.at(g.substr(dot + 1));
}

std::map<std::string, test::StEntry> load_source(const std::string& dir) {
  std::map<std::string, test::StEntry> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() != ".safetensors") continue;
    for (auto& [n, t] : test::read_safetensors(e.path().string())) out[n] = std::move(t);
  }
  return out;
}

class ConvertModels : public ::testing::TestWithParam<std::tuple<int, const char*>> {};

TEST_P(ConvertModels, MatchesSpecAndSource) {
  const Expected& m = expected_models()[std::get<0>(GetParam())];
  const std::string type_name = std::get<1>(GetParam());
  const GgmlType type = *ggml_type_from_name(type_name);
  const std::string dir = model_dir(m);
  if (dir.empty()) GTEST_SKIP() << m.name << " needs ../shared/models, which is absent";
  const std::string out = test::temp_dir() + "/" + m.name + "-" + type_name + ".gguf";
  auto r = test::run_nibble({"convert", dir, "-o", out, "--type", type_name});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto f = GgufFile::open(out);
  ASSERT_TRUE(f.ok()) << f.error().message;
  const GgufFile& g = *f.value();
  check_metadata(m, g.metadata(), type);

  // Tensor names and shapes.
  auto want = expected_tensors(m);
  std::set<std::string> have;
  for (const auto& t : g.tensors()) {
    have.insert(t.name);
    auto it = want.find(t.name);
    ASSERT_NE(it, want.end()) << "unexpected tensor " << t.name;
    EXPECT_EQ(t.shape, it->second) << t.name;
    if (t.shape.size() == 1) EXPECT_EQ(t.type, GgmlType::F32) << t.name;
    else if (t.name.find("ffn_gate_inp.weight") != std::string::npos) EXPECT_EQ(t.type, GgmlType::F32);
    else if (type == GgmlType::F32 || type == GgmlType::F16 || type == GgmlType::BF16) EXPECT_EQ(t.type, type) << t.name;
    else if (t.name == "token_embd.weight") EXPECT_EQ(t.type, GgmlType::BF16);  // tied output head
    else if (t.shape[0] % 32 == 0 && t.name != "per_layer_model_proj.weight") EXPECT_EQ(t.type, type) << t.name;
    else EXPECT_EQ(t.type, GgmlType::F16) << t.name;
  }
  EXPECT_EQ(have.size(), want.size());

  // rope_freqs: 1 for the rotated pairs, 1e30 for the rest (spec §3.4).
  const GgufTensorInfo* rf = g.find_tensor("rope_freqs.weight");
  ASSERT_NE(rf, nullptr);
  for (uint64_t i = 0; i < rf->n_elements; ++i) {
    float v;
    std::memcpy(&v, rf->data + 4 * i, 4);
    EXPECT_EQ(v, i < m.rope_rotated_pairs ? 1.0f : 1e30f) << i;
  }

  // Values: every tensor decodes to the bf16 source (exactly for f32/bf16; within the type's
  // rounding for f16/q8_0/q4_0).
  auto src = load_source(dir);
  for (const auto& t : g.tensors()) {
    const std::string hn = hf_name(t.name);
    if (hn.empty()) continue;
    ASSERT_TRUE(src.count(hn)) << hn;
    const auto& s = src.at(hn);
    ASSERT_EQ(s.dtype, "BF16");
    std::vector<float> got(t.n_elements), ref(t.n_elements);
    for (uint64_t r = 0; r < t.n_rows(); ++r) {
      dequantize_row(t.type, t.data + r * ggml_row_size(t.type, t.ne(0)), got.data() + r * t.ne(0), t.ne(0));
    }
    for (uint64_t i = 0; i < t.n_elements; ++i) {
      uint16_t h;
      std::memcpy(&h, s.bytes.data() + 2 * i, 2);
      ref[i] = bf16_to_f32(h);
    }
    double amax = 0, worst = 0;
    for (uint64_t i = 0; i < t.n_elements; ++i) {
      amax = std::max(amax, std::fabs(static_cast<double>(ref[i])));
      worst = std::max(worst, std::fabs(static_cast<double>(got[i]) - ref[i]));
    }
    double tol = 0;
    if (t.type == GgmlType::F16) tol = amax * 1e-3;
    if (t.type == GgmlType::Q8_0) tol = amax / 127.0;
    if (t.type == GgmlType::Q4_0) tol = amax / 7.0;
    EXPECT_LE(worst, tol) << t.name << " (" << ggml_type_name(t.type) << ")";
    if (t.type == GgmlType::BF16) EXPECT_EQ(0, std::memcmp(t.data, s.bytes.data(), t.n_bytes)) << t.name;
  }

  // convert -> read -> write -> read is byte-identical.
  GgufWriter w;
  for (const auto& [k, v] : g.metadata().entries()) w.metadata().set(k, v);
  for (const auto& t : g.tensors()) ASSERT_TRUE(w.add_tensor(t.name, t.type, t.shape, t.data, t.n_bytes).ok());
  const std::string out2 = out + ".rewritten.gguf";
  ASSERT_TRUE(w.write(out2).ok());
  EXPECT_EQ(test::read_bytes(out), test::read_bytes(out2));
  auto f2 = GgufFile::open(out2);
  ASSERT_TRUE(f2.ok()) << f2.error().message;
  EXPECT_EQ(f2.value()->tensors().size(), g.tensors().size());
}

INSTANTIATE_TEST_SUITE_P(
    AllModelsAllTypes, ConvertModels,
    ::testing::Combine(::testing::Range(0, 5), ::testing::Values("f32", "f16", "bf16", "q8_0", "q4_0")),
    [](const auto& info) {
      std::string n = std::string(expected_models()[std::get<0>(info.param)].name) + "_" + std::get<1>(info.param);
      for (auto& c : n) if (c == '-') c = '_';
      return n;
    });

}  // namespace
}  // namespace nibble
