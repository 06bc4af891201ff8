// `nibble synth` (convert/gemma4_synth.h): the plan against an independent hand table of E2B's
// shapes (spec gemma4-architecture §1.2 / §3.3), recipe types against `nibble quantize` of the
// same model, determinism, the vocabulary, and a forward pass with finite logits.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "convert/gemma4_synth.h"
#include "gguf/gguf_file.h"
#include "model/registry.h"
#include "quant/quantize_model.h"
#include "runtime/session.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace nibble {
namespace {

using Shape = std::vector<uint64_t>;

bool slow_tests_skipped() {
  const char* s = std::getenv("NIBBLE_SKIP_SLOW_TESTS");
  return s != nullptr && std::string(s) == "1";
}

// E2B's tensors written out by hand from spec §1.2 (H 1536, 35 layers, full layers l % 5 == 4,
// 8 heads, 1 KV head, head dim 256 / 512, layers 15-34 KV-shared with a 12288-wide MLP, else
// 6144, PLE width 256, vocab 262144). GGUF shapes, ne0 first.
std::map<std::string, Shape> e2b_hand_table() {
  std::map<std::string, Shape> m;
  const uint64_t H = 1536, V = 262144, P = 256, L = 35;
  m["token_embd.weight"] = {H, V};
  m["per_layer_token_embd.weight"] = {L * P, V};  // [262144, 8960] in HF order
  m["per_layer_model_proj.weight"] = {H, L * P};
  m["per_layer_proj_norm.weight"] = {P};
  m["output_norm.weight"] = {H};
  m["rope_freqs.weight"] = {256};  // global head dim 512 / 2
  for (uint64_t l = 0; l < L; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    const bool full = l % 5 == 4;
    const uint64_t d = full ? 512 : 256;
    const uint64_t ff = l < 15 ? 6144 : 12288;
    m[b + "attn_norm.weight"] = {H};
    m[b + "attn_q.weight"] = {H, 8 * d};
    m[b + "attn_q_norm.weight"] = {d};
    m[b + "attn_output.weight"] = {8 * d, H};
    if (l < 15) {
      m[b + "attn_k.weight"] = {H, d};
      m[b + "attn_v.weight"] = {H, d};
      m[b + "attn_k_norm.weight"] = {d};
    }
    m[b + "post_attention_norm.weight"] = {H};
    m[b + "ffn_norm.weight"] = {H};
    m[b + "ffn_gate.weight"] = {H, ff};
    m[b + "ffn_up.weight"] = {H, ff};
    m[b + "ffn_down.weight"] = {ff, H};
    m[b + "post_ffw_norm.weight"] = {H};
    m[b + "inp_gate.weight"] = {H, P};
    m[b + "proj.weight"] = {P, H};
    m[b + "post_norm.weight"] = {H};
    m[b + "layer_output_scale.weight"] = {1};
  }
  return m;
}

TEST(Synth, E2bPlanMatchesHandTable) {
  SynthOptions o;
  o.preset = "e2b";
  o.type = "bf16";
  auto p = plan_gemma4_synth(o);
  ASSERT_TRUE(p.ok()) << p.error().message;
  const auto want = e2b_hand_table();
  std::map<std::string, Shape> got;
  for (const auto& t : p->tensors) {
    EXPECT_TRUE(got.emplace(t.name, t.shape).second) << "duplicate " << t.name;
    // bf16 as `nibble convert --type bf16` writes it: vectors F32, matrices BF16.
    EXPECT_EQ(t.type, t.shape.size() == 1 ? GgmlType::F32 : GgmlType::BF16) << t.name;
  }
  for (const auto& [name, shape] : want) {
    auto it = got.find(name);
    ASSERT_NE(it, got.end()) << "missing " << name;
    EXPECT_EQ(it->second, shape) << name;
  }
  for (const auto& [name, shape] : got) EXPECT_TRUE(want.count(name)) << "unexpected " << name;
  // 2.35 B PLE + 0.40 B embedding + ~1.85 B transformer (spec §1.2 cross-check): about 4.6 B.
  EXPECT_GT(p->n_params, 4.5e9);
  EXPECT_LT(p->n_params, 4.8e9);
  EXPECT_EQ(p->metadata.get_u32("gemma4.block_count").value(), 35u);
  EXPECT_EQ(p->metadata.get_u32("gemma4.attention.shared_kv_layers").value(), 20u);
  EXPECT_EQ(p->metadata.get_u32("general.file_type").value(), 32u);  // MOSTLY_BF16
}

TEST(Synth, OtherPresetsHaveTheirDistinctiveTensors) {
  for (const char* preset : {"e4b", "31b", "26b-a4b"}) {
    SynthOptions o;
    o.preset = preset;
    o.type = "Q4_K_M";
    auto p = plan_gemma4_synth(o);
    ASSERT_TRUE(p.ok()) << preset << ": " << p.error().message;
    std::map<std::string, SynthTensor> by;
    for (const auto& t : p->tensors) by[t.name] = t;
    if (std::string(preset) == "26b-a4b") {
      // 128 experts of width 704 over H 2816 (spec §1.2), gate and up fused.
      ASSERT_TRUE(by.count("blk.0.ffn_gate_up_exps.weight"));
      EXPECT_EQ(by["blk.0.ffn_gate_up_exps.weight"].shape, (Shape{2816, 1408, 128}));
      EXPECT_EQ(by["blk.0.ffn_down_exps.weight"].shape, (Shape{704, 2816, 128}));
      EXPECT_FALSE(by.count("blk.5.attn_v.weight"));  // attention_k_eq_v on full layers
    }
    if (std::string(preset) == "31b") {
      EXPECT_EQ(by["blk.5.attn_k.weight"].shape, (Shape{5376, 4 * 512}));
      EXPECT_EQ(by["blk.0.attn_k.weight"].shape, (Shape{5376, 16 * 256}));
      EXPECT_FALSE(by.count("per_layer_token_embd.weight"));
    }
    if (std::string(preset) == "e4b") {
      EXPECT_EQ(by["per_layer_token_embd.weight"].shape, (Shape{10752, 262144}));
      EXPECT_FALSE(by.count("blk.24.attn_k.weight"));  // layers 24-41 share KV
      EXPECT_TRUE(by.count("blk.23.attn_k.weight"));
    }
  }
}

TEST(Synth, LayersKeepWidthsAndEndWithAFullLayer) {
  auto c2 = gemma4_synth_config("e2b", 2);
  ASSERT_TRUE(c2.ok()) << c2.error().message;
  EXPECT_EQ(c2->n_layer, 2u);
  EXPECT_EQ(c2->hidden_size, 1536u);
  EXPECT_TRUE(c2->is_sliding[0]);
  EXPECT_FALSE(c2->is_sliding[1]);
  EXPECT_EQ(c2->n_kv_shared_layers, 0u);  // no earlier full layer to share from
  // 10 layers: (4 sliding, full) x 2; sharing in proportion (20/35 of 10 = 6) reduced to 5 so the
  // owning layers 0-4 end with (sliding, full), where nibble's and llama.cpp's rules agree.
  auto c10 = gemma4_synth_config("e2b", 10);
  ASSERT_TRUE(c10.ok()) << c10.error().message;
  EXPECT_EQ(c10->n_kv_shared_layers, 5u);
  EXPECT_EQ(c10->layer_n_ff[4], 6144u);
  EXPECT_EQ(c10->layer_n_ff[5], 12288u);  // double-wide MLP on shared layers
  auto too_many = gemma4_synth_config("e2b", 36);
  ASSERT_FALSE(too_many.ok());
  EXPECT_NE(too_many.error().message.find("35"), std::string::npos) << too_many.error().message;
}

TEST(Synth, BadOptionsAreClearErrors) {
  SynthOptions o;
  o.preset = "e3b";
  o.type = "Q4_0";
  auto r = plan_gemma4_synth(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("e3b"), std::string::npos);
  EXPECT_NE(r.error().message.find("26b-a4b"), std::string::npos);  // lists the known presets
  o.preset = "e2b";
  o.type = "Q4_X";
  r = plan_gemma4_synth(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("Q4_X"), std::string::npos);
  EXPECT_NE(r.error().message.find("Q4_K_M"), std::string::npos);
  o.type = "15";  // llama-quantize's numeric ids are not type names here
  EXPECT_FALSE(plan_gemma4_synth(o).ok());
  o.type = "Q2_K_S";  // needs an importance matrix
  r = plan_gemma4_synth(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("importance matrix"), std::string::npos);
  o.type = "Q4_0";
  o.out_path = "";
  r = write_gemma4_synth(o);
  ASSERT_FALSE(r.ok());
  o.out_path = "/nonexistent-dir/x.gguf";
  o.n_layers = 1;
  r = write_gemma4_synth(o);
  ASSERT_FALSE(r.ok());
  EXPECT_FALSE(test::file_exists(o.out_path));
}

TEST(Synth, VocabularyIsFullSizeUniqueAndTokenizes) {
  const Vocab v = synthetic_gemma4_vocab();
  ASSERT_EQ(v.tokens.size(), 262144u);
  ASSERT_TRUE(validate_vocab(v, "synthetic").ok());
  std::set<std::string> seen;
  for (const auto& t : v.tokens) {
    EXPECT_FALSE(t.empty());
    EXPECT_TRUE(seen.insert(t).second) << "duplicate token " << t;
  }
  EXPECT_EQ(v.tokens[2], "<bos>");
  EXPECT_EQ(v.tokens[1], "<eos>");
  EXPECT_EQ(v.tokens[105], "<|turn>");
  EXPECT_EQ(v.tokens[106], "<turn|>");
  EXPECT_EQ(v.tokens[107], "\n");
  EXPECT_EQ(v.tokens[108 + 0x41], "<0x41>");
  EXPECT_EQ(v.tokens[258884], "<|video|>");
  // Every merge joins two existing tokens into an existing token.
  for (const auto& m : v.merges) {
    const size_t sp = m.find(' ', 1);
    ASSERT_NE(sp, std::string::npos) << m;
    const std::string a = m.substr(0, sp), b = m.substr(sp + 1);
    ASSERT_TRUE(seen.count(a) && seen.count(b) && seen.count(a + b)) << m;
  }
  auto tok = Tokenizer::from_vocab(v);
  ASSERT_TRUE(tok.ok()) << tok.error().message;
  const std::string text = "Hello world!\nThe quick brown fox, 1234 ~ {}\n\n";
  const auto ids = (*tok)->encode(text);
  EXPECT_LT(ids.size(), text.size() * 2 / 3);  // pairs and triples merge
  EXPECT_EQ((*tok)->encode("the").size(), 1u);    // a lower-case triple is one piece
  EXPECT_EQ((*tok)->decode(ids), text);
  const auto utf8 = (*tok)->encode("caf\xC3\xA9");  // é is not a piece: byte fallback
  EXPECT_EQ((*tok)->decode(utf8), "caf\xC3\xA9");
}

TEST(Synth, RowsAreDeterministicAndScaled) {
  auto cfg = gemma4_synth_config("e2b", 2);
  ASSERT_TRUE(cfg.ok());
  std::vector<float> a(1536), b(1536), c(1536);
  const Shape shape{1536, 2048};
  synth_tensor_row(*cfg, 7, "blk.0.attn_q.weight", shape, 3, a.data());
  synth_tensor_row(*cfg, 7, "blk.0.attn_q.weight", shape, 3, b.data());
  synth_tensor_row(*cfg, 8, "blk.0.attn_q.weight", shape, 3, c.data());
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  double ss = 0, mean = 0;
  for (float x : a) {
    mean += x;
    ss += double(x) * x;
  }
  mean /= a.size();
  const double sd = std::sqrt(ss / a.size());
  EXPECT_NEAR(sd, 1.0 / std::sqrt(1536.0), 0.1 / std::sqrt(1536.0));  // N(0, 1/sqrt(n_in))
  EXPECT_NEAR(mean, 0.0, 0.2 / std::sqrt(1536.0));
  std::vector<float> norm(1536);
  synth_tensor_row(*cfg, 7, "blk.0.attn_norm.weight", {1536}, 0, norm.data());
  for (float x : norm) EXPECT_NEAR(x, 1.0f, 0.2f);
}

// Offset of the first differing byte of two files (compared in 1 MiB pieces), -1 if equal.
int64_t first_difference(const std::string& x, const std::string& y) {
  std::ifstream fx(x, std::ios::binary), fy(y, std::ios::binary);
  std::vector<char> bx(1 << 20), by(1 << 20);
  int64_t off = 0;
  while (true) {
    fx.read(bx.data(), bx.size());
    fy.read(by.data(), by.size());
    const auto nx = fx.gcount(), ny = fy.gcount();
    const auto n = std::min(nx, ny);
    for (std::streamsize i = 0; i < n; ++i) {
      if (bx[i] != by[i]) return off + i;
    }
    if (nx != ny) return off + n;
    if (nx == 0) return -1;
    off += n;
  }
}

struct WrittenModel {
  std::string path;
  SynthPlan plan;
};

WrittenModel write_model(const std::string& type, uint64_t seed, uint32_t layers,
                         const std::string& tag) {
  SynthOptions o;
  o.preset = "e2b";
  o.type = type;
  o.seed = seed;
  o.n_layers = layers;
  o.out_path = test::temp_dir() + "/synth-" + tag + ".gguf";
  auto r = write_gemma4_synth(o);
  EXPECT_TRUE(r.ok()) << r.error().message;
  return {o.out_path, r.ok() ? r.value() : SynthPlan{}};
}

TEST(Synth, SameSeedSameBytesOtherSeedOtherBytes) {
  if (slow_tests_skipped()) GTEST_SKIP() << "NIBBLE_SKIP_SLOW_TESTS=1 (writes three 0.5 GB files)";
  const auto a = write_model("Q8_0", 11, 1, "a");
  const auto b = write_model("Q8_0", 11, 1, "b");
  const auto c = write_model("Q8_0", 12, 1, "c");
  ASSERT_GT(std::filesystem::file_size(a.path), 100u << 20);
  EXPECT_EQ(first_difference(a.path, b.path), -1) << "same seed, different bytes";
  ASSERT_EQ(std::filesystem::file_size(a.path), std::filesystem::file_size(c.path));
  EXPECT_NE(first_difference(a.path, c.path), -1) << "different seeds, same bytes";
  for (const auto& p : {a.path, b.path, c.path}) std::remove(p.c_str());
}

// The written file: the plan's tensors in order (names, shapes, types), and a forward pass with
// finite, soft-capped logits that depend on the input.
TEST(Synth, TwoLayerE2bLoadsAndRunsForward) {
  if (slow_tests_skipped()) GTEST_SKIP() << "NIBBLE_SKIP_SLOW_TESTS=1";
  const auto m = write_model("Q8_0", 3, 2, "fwd");
  auto f = GgufFile::open(m.path);
  ASSERT_TRUE(f.ok()) << f.error().message;
  ASSERT_EQ((*f)->tensors().size(), m.plan.tensors.size());
  for (size_t i = 0; i < m.plan.tensors.size(); ++i) {
    const auto& t = (*f)->tensors()[i];
    EXPECT_EQ(t.name, m.plan.tensors[i].name);
    EXPECT_EQ(t.shape, m.plan.tensors[i].shape) << t.name;
    EXPECT_EQ(t.type, m.plan.tensors[i].type) << t.name;
  }
  EXPECT_EQ((*f)->metadata().get_u32("general.file_type").value(), 7u);  // Q8_0
  auto model = load_model(m.path);
  ASSERT_TRUE(model.ok()) << model.error().message;
  EXPECT_EQ((*model)->info().n_vocab, 262144);
  SessionOptions so;
  so.n_ctx = 16;
  auto s = Session::create(**model, so);
  ASSERT_TRUE(s.ok()) << s.error().message;
  const std::vector<int32_t> ids = {2, 1000, 77777, 262143, 5};
  std::vector<float> logits;
  ASSERT_TRUE((*s)->eval(ids, true, logits).ok());
  ASSERT_EQ(logits.size(), ids.size() * 262144u);
  for (size_t pos = 0; pos < ids.size(); ++pos) {
    double ss = 0;
    float mx = 0;
    for (size_t v = 0; v < 262144; ++v) {
      const float x = logits[pos * 262144 + v];
      ASSERT_TRUE(std::isfinite(x)) << "position " << pos << " token " << v;
      ASSERT_LE(std::fabs(x), 30.0f);  // final soft-cap 30
      ss += double(x) * x;
      mx = std::max(mx, std::fabs(x));
    }
    const double rms = std::sqrt(ss / 262144);
    EXPECT_GT(rms, 0.05) << "logits collapsed at position " << pos;
    EXPECT_LT(rms, 10.0) << "logits blew up at position " << pos;
  }
  // Different tokens, different distributions.
  EXPECT_NE(std::vector<float>(logits.begin(), logits.begin() + 262144),
            std::vector<float>(logits.begin() + 262144, logits.begin() + 2 * 262144));
  std::remove(m.path.c_str());
}

// The recipe path picks exactly the types `nibble quantize` picks for the same model (an
// independent driver: it reads a bf16 GGUF and requantizes it).
TEST(Synth, RecipeTypesMatchQuantizeOfTheBf16File) {
  if (slow_tests_skipped()) GTEST_SKIP() << "NIBBLE_SKIP_SLOW_TESTS=1";
  const auto src = write_model("bf16", 5, 2, "bf16");
  for (const char* recipe : {"Q4_K_M", "Q2_K"}) {
    SynthOptions o;
    o.preset = "e2b";
    o.type = recipe;
    o.n_layers = 2;
    auto plan = plan_gemma4_synth(o);
    ASSERT_TRUE(plan.ok()) << plan.error().message;
    QuantizeOptions q;
    q.input_path = src.path;
    q.output_path = test::temp_dir() + "/unused.gguf";
    q.ftype = *parse_ftype(recipe);
    auto rep = plan_quantize(q);
    ASSERT_TRUE(rep.ok()) << rep.error().message;
    ASSERT_EQ(rep->tensors.size(), plan->tensors.size());
    for (size_t i = 0; i < plan->tensors.size(); ++i) {
      EXPECT_EQ(plan->tensors[i].name, rep->tensors[i].name) << recipe << " order, " << i;
      EXPECT_EQ(plan->tensors[i].type, rep->tensors[i].to) << recipe << " " << plan->tensors[i].name;
    }
  }
  std::remove(src.path.c_str());
}

}  // namespace
}  // namespace nibble
