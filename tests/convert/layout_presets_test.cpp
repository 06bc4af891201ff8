// The four released Gemma 4 variants at their real shapes: the tensor layout and metadata the
// converter produces, checked against the spec's tables (gemma4-architecture §1.2, §2.2, §3.3,
// Appendix A), since real checkpoints cannot be downloaded here.
#include <gtest/gtest.h>

#include <map>

#include "convert/gemma4_layout.h"
#include "convert/gemma4_presets.h"

namespace nibble {
namespace {

std::map<std::string, std::vector<uint64_t>> hf_shapes(const Gemma4HfConfig& c) {
  std::map<std::string, std::vector<uint64_t>> m;
  for (const auto& t : gemma4_tensor_layout(c, 262144, GgmlType::BF16)) m[t.gguf_name] = t.hf_shape;
  return m;
}

TEST(Gemma4Presets, E2BMatchesSpec) {
  auto c = gemma4_preset("e2b");
  ASSERT_TRUE(c.ok()) << c.error().message;
  auto m = hf_shapes(c.value());
  // §3.3 E2B: sliding q [2048,1536], full q [4096,1536]; k/v [256,1536] / [512,1536].
  EXPECT_EQ(m["blk.0.attn_q.weight"], (std::vector<uint64_t>{2048, 1536}));
  EXPECT_EQ(m["blk.4.attn_q.weight"], (std::vector<uint64_t>{4096, 1536}));
  EXPECT_EQ(m["blk.0.attn_k.weight"], (std::vector<uint64_t>{256, 1536}));
  EXPECT_EQ(m["blk.4.attn_v.weight"], (std::vector<uint64_t>{512, 1536}));
  EXPECT_EQ(m["blk.4.attn_output.weight"], (std::vector<uint64_t>{1536, 4096}));
  EXPECT_EQ(m["blk.14.ffn_gate.weight"], (std::vector<uint64_t>{6144, 1536}));
  EXPECT_EQ(m["blk.15.ffn_gate.weight"], (std::vector<uint64_t>{12288, 1536}));  // double-wide
  EXPECT_EQ(m["blk.34.ffn_down.weight"], (std::vector<uint64_t>{1536, 12288}));
  EXPECT_EQ(m["per_layer_token_embd.weight"], (std::vector<uint64_t>{262144, 8960}));
  EXPECT_EQ(m["per_layer_model_proj.weight"], (std::vector<uint64_t>{8960, 1536}));
  EXPECT_EQ(m["blk.0.inp_gate.weight"], (std::vector<uint64_t>{256, 1536}));
  EXPECT_EQ(m["blk.0.proj.weight"], (std::vector<uint64_t>{1536, 256}));
  EXPECT_EQ(m["rope_freqs.weight"], (std::vector<uint64_t>{256}));
  // Layers 15-34 are KV-shared: no K/V of their own.
  EXPECT_EQ(m.count("blk.14.attn_k.weight"), 1u);
  EXPECT_EQ(m.count("blk.15.attn_k.weight"), 0u);
  EXPECT_EQ(m.count("blk.34.attn_v.weight"), 0u);
  auto rf = gemma4_rope_freqs(c.value());
  ASSERT_EQ(rf.size(), 256u);
  EXPECT_EQ(rf[63], 1.0f);
  EXPECT_EQ(rf[64], 1e30f);

  GgufMetadata md;
  gemma4_model_metadata(c.value(), GgmlType::BF16, "e2b", md);
  const GgufValue* ff = md.find("gemma4.feed_forward_length");
  ASSERT_TRUE(ff->is_array());
  EXPECT_EQ(ff->element<uint32_t>(14), 6144u);
  EXPECT_EQ(ff->element<uint32_t>(15), 12288u);
  EXPECT_EQ(md.get_u32("gemma4.attention.head_count_kv").value(), 1u);
  EXPECT_EQ(md.get_u32("gemma4.attention.shared_kv_layers").value(), 20u);
  EXPECT_EQ(md.get_u32("gemma4.embedding_length_per_layer_input").value(), 256u);
  EXPECT_EQ(md.get_u32("gemma4.context_length").value(), 131072u);
  auto pat = md.get_array("gemma4.attention.sliding_window_pattern", GgufType::kBool).value();
  for (uint32_t l = 0; l < 35; ++l) EXPECT_EQ(pat->element<int>(l) != 0, l % 5 != 4) << l;
}

TEST(Gemma4Presets, E4BMatchesSpec) {
  auto c = gemma4_preset("e4b");
  ASSERT_TRUE(c.ok());
  auto m = hf_shapes(c.value());
  EXPECT_EQ(m["blk.0.attn_q.weight"], (std::vector<uint64_t>{2048, 2560}));
  EXPECT_EQ(m["blk.5.attn_k.weight"], (std::vector<uint64_t>{1024, 2560}));
  EXPECT_EQ(m["blk.0.attn_k.weight"], (std::vector<uint64_t>{512, 2560}));
  EXPECT_EQ(m["blk.41.ffn_up.weight"], (std::vector<uint64_t>{10240, 2560}));
  EXPECT_EQ(m["per_layer_token_embd.weight"], (std::vector<uint64_t>{262144, 10752}));
  EXPECT_EQ(m.count("blk.23.attn_k.weight"), 1u);
  EXPECT_EQ(m.count("blk.24.attn_k.weight"), 0u);
  GgufMetadata md;
  gemma4_model_metadata(c.value(), GgmlType::BF16, "e4b", md);
  EXPECT_EQ(md.get_u32("gemma4.feed_forward_length").value(), 10240u);
  EXPECT_EQ(md.get_u32("gemma4.attention.head_count_kv").value(), 2u);
}

TEST(Gemma4Presets, Dense31BMatchesSpec) {
  auto c = gemma4_preset("31b");
  ASSERT_TRUE(c.ok());
  auto m = hf_shapes(c.value());
  EXPECT_EQ(m["blk.0.attn_q.weight"], (std::vector<uint64_t>{8192, 5376}));
  EXPECT_EQ(m["blk.0.attn_k.weight"], (std::vector<uint64_t>{4096, 5376}));
  EXPECT_EQ(m["blk.5.attn_q.weight"], (std::vector<uint64_t>{16384, 5376}));
  EXPECT_EQ(m["blk.5.attn_k.weight"], (std::vector<uint64_t>{2048, 5376}));
  EXPECT_EQ(m.count("blk.5.attn_v.weight"), 0u);  // attention_k_eq_v
  EXPECT_EQ(m.count("blk.4.attn_v.weight"), 1u);
  EXPECT_EQ(m["blk.59.ffn_gate.weight"], (std::vector<uint64_t>{21504, 5376}));
  EXPECT_EQ(m.count("per_layer_token_embd.weight"), 0u);
  GgufMetadata md;
  gemma4_model_metadata(c.value(), GgmlType::BF16, "31b", md);
  const GgufValue* kv = md.find("gemma4.attention.head_count_kv");
  ASSERT_TRUE(kv->is_array());
  EXPECT_EQ(kv->element<uint32_t>(0), 16u);
  EXPECT_EQ(kv->element<uint32_t>(5), 4u);
  EXPECT_EQ(md.get_u32("gemma4.attention.sliding_window").value(), 1024u);
  // Parameter count cross-check of §1.2: ~30.7 B.
  uint64_t n = 0;
  for (const auto& t : gemma4_tensor_layout(c.value(), 262144, GgmlType::BF16)) n += t.n_elements();
  EXPECT_NEAR(n / 1e9, 30.7, 0.1);
}

TEST(Gemma4Presets, Moe26BMatchesSpec) {
  auto c = gemma4_preset("26b-a4b");
  ASSERT_TRUE(c.ok());
  auto m = hf_shapes(c.value());
  EXPECT_EQ(m["blk.0.attn_q.weight"], (std::vector<uint64_t>{4096, 2816}));
  EXPECT_EQ(m["blk.5.attn_k.weight"], (std::vector<uint64_t>{1024, 2816}));
  EXPECT_EQ(m["blk.0.ffn_gate.weight"], (std::vector<uint64_t>{2112, 2816}));
  EXPECT_EQ(m["blk.0.ffn_gate_inp.weight"], (std::vector<uint64_t>{128, 2816}));
  EXPECT_EQ(m["blk.0.ffn_gate_up_exps.weight"], (std::vector<uint64_t>{128, 1408, 2816}));
  EXPECT_EQ(m["blk.0.ffn_down_exps.weight"], (std::vector<uint64_t>{128, 2816, 704}));
  EXPECT_EQ(m["blk.0.ffn_down_exps.scale"], (std::vector<uint64_t>{128}));
  uint64_t n = 0;
  for (const auto& t : gemma4_tensor_layout(c.value(), 262144, GgmlType::BF16)) n += t.n_elements();
  EXPECT_NEAR(n / 1e9, 25.2, 0.1);  // "25.2B total"
  // The router stays F32 even in a quantized file; experts are quantized.
  for (const auto& t : gemma4_tensor_layout(c.value(), 262144, GgmlType::Q8_0)) {
    if (t.gguf_name == "blk.0.ffn_gate_inp.weight") EXPECT_EQ(t.type, GgmlType::F32);
    if (t.gguf_name == "blk.0.ffn_gate_up_exps.weight") EXPECT_EQ(t.type, GgmlType::Q8_0);
  }
}

TEST(Gemma4Presets, UnknownPresetNamesTheKnownOnes) {
  auto c = gemma4_preset("70b");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message.find("e2b, e4b, 31b, 26b-a4b"), std::string::npos);
}

}  // namespace
}  // namespace nibble
