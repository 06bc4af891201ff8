// `nibble imatrix` and ImatrixCollector: the statistics are the sums of squared matmul inputs
// (checked against the float64 reference's hidden states and against trace()), every matmul
// weight is covered, expert counts add up to tokens x experts-per-token, observing changes no
// logit, the file is llama.cpp's GGUF imatrix layout, readable by GgufFile and load_imatrix, and
// `nibble quantize --imatrix` with it lowers the KL divergence of q4_0.
#include "quant/imatrix.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "gguf/gguf_file.h"
#include "hostile_input.h"
#include "model/registry.h"
#include "model/trace.h"
#include "quality/imatrix_collector.h"
#include "quality_test_util.h"
#include "runtime/session.h"
#include "tokenizer/tokenizer.h"

namespace nibble {
namespace {

using nlohmann::json;

// Names of the weights a forward pass multiplies by: every tensor of 2+ dims but the embedding
// tables and the output head.
std::set<std::string> matmul_weights(const GgufFile& f) {
  std::set<std::string> names;
  for (const auto& t : f.tensors()) {
    if (t.shape.size() < 2) continue;
    if (t.name == "token_embd.weight" || t.name == "per_layer_token_embd.weight" ||
        t.name == "output.weight") {
      continue;
    }
    names.insert(t.name);
  }
  return names;
}

const float* f32_tensor(const GgufFile& f, const std::string& name) {
  const GgufTensorInfo* t = f.find_tensor(name);
  EXPECT_NE(t, nullptr) << name;
  if (t == nullptr) return nullptr;
  EXPECT_EQ(t->type, GgmlType::F32) << name;
  return reinterpret_cast<const float*>(t->data);
}

// Σ_t x[t][j]² in double, the rows of x being `rows` vectors of n.
std::vector<double> column_sum2(const float* x, int64_t rows, int64_t n) {
  std::vector<double> s(static_cast<size_t>(n), 0.0);
  for (int64_t t = 0; t < rows; ++t) {
    for (int64_t j = 0; j < n; ++j) {
      const double v = x[t * n + j];
      s[j] += v * v;
    }
  }
  return s;
}

// Worst |got - want| / max(want), with where it happened.
double worst_rel(const std::vector<double>& got, const std::vector<double>& want) {
  double mx = 0.0, worst = 0.0;
  for (double w : want) mx = std::max(mx, std::fabs(w));
  for (size_t j = 0; j < want.size(); ++j) worst = std::max(worst, std::fabs(got[j] - want[j]));
  return mx > 0 ? worst / mx : worst;
}

TEST(Imatrix, RandEMatchesReferenceHiddenStatesAndTrace) {
  const std::string dir = test::model_dir("rand-e");
  if (dir.empty()) GTEST_SKIP() << "rand-e absent";
  std::ifstream gin(dir + "/golden.json");
  const json g = json::parse(gin);
  const std::vector<int32_t> prompt = g["prompt_tokens"].get<std::vector<int32_t>>();
  const auto hs = test::read_f32_file(dir + "/" + g["hidden_states_file"].get<std::string>());
  const int64_t T = g["hidden_states_shape"][1], H = g["hidden_states_shape"][2];
  ASSERT_EQ(static_cast<int64_t>(prompt.size()), T);

  auto model = load_model(test::converted_model("rand-e", "f32"));
  ASSERT_TRUE(model.ok()) << model.error().message;
  const GgufFile& file = (*model)->file();
  const int64_t L = (*model)->info().n_layer;
  auto eps = file.metadata().get_f32("gemma4.attention.layer_norm_rms_epsilon");
  ASSERT_TRUE(eps.ok());

  SessionOptions so;
  so.n_ctx = T;
  so.n_batch = T;
  so.kv_type_full = so.kv_type_swa = GgmlType::F32;  // exact cache: float64 reference hidden states
  // Logits without the observer, then with it: identical bit for bit.
  std::vector<float> plain, observed;
  {
    auto s = Session::create(**model, so);
    ASSERT_TRUE(s.ok());
    ASSERT_TRUE((*s)->eval(prompt, true, plain).ok());
  }
  ImatrixCollector col;
  std::map<int, std::vector<double>> heads_sum2;  // layer -> Σ attn_heads² (the attn_output input)
  set_trace([&](const char* what, int layer, const float* data, int64_t rows, int64_t cols) {
    if (std::strcmp(what, "attn_heads") == 0) heads_sum2[layer] = column_sum2(data, rows, cols);
  });
  (*model)->set_activation_observer(&col);
  {
    auto s = Session::create(**model, so);
    ASSERT_TRUE(s.ok());
    ASSERT_TRUE((*s)->eval(prompt, true, observed).ok());
  }
  (*model)->set_activation_observer(nullptr);
  set_trace(nullptr);
  ASSERT_EQ(plain.size(), observed.size());
  EXPECT_EQ(std::memcmp(plain.data(), observed.data(), plain.size() * sizeof(float)), 0)
      << "observing the forward pass changed its logits";

  // Every matmul weight, nothing else; one count per dense weight = the tokens; sums >= 0.
  std::set<std::string> got_names;
  for (const auto& [name, e] : col.entries()) {
    got_names.insert(name);
    ASSERT_EQ(e.n_mat, 1) << name;
    EXPECT_EQ(e.counts[0], T) << name;
    for (double v : e.sum2) ASSERT_TRUE(v >= 0.0 && std::isfinite(v)) << name;
    EXPECT_EQ(e.n_in, static_cast<int64_t>(file.find_tensor(name)->ne(0))) << name;
  }
  EXPECT_EQ(got_names, matmul_weights(file));

  // attn_q of layer l multiplies attn_norm(h_l), h_l = the reference's hidden state entering
  // layer l (entry l of hidden_states.f32, float64 reference): recompute it here, in double.
  for (int64_t l = 0; l < L; ++l) {
    const std::string blk = "blk." + std::to_string(l) + ".";
    const float* w = f32_tensor(file, blk + "attn_norm.weight");
    ASSERT_NE(w, nullptr);
    std::vector<double> want(static_cast<size_t>(H), 0.0);
    for (int64_t t = 0; t < T; ++t) {
      const float* h = hs.data() + (l * T + t) * H;
      double ss = 0.0;
      for (int64_t j = 0; j < H; ++j) ss += static_cast<double>(h[j]) * h[j];
      const double inv = 1.0 / std::sqrt(ss / H + static_cast<double>(*eps));
      for (int64_t j = 0; j < H; ++j) {
        const double x = h[j] * inv * w[j];
        want[j] += x * x;
      }
    }
    const double rel = worst_rel(col.entries().at(blk + "attn_q.weight").sum2, want);
    EXPECT_LE(rel, 1e-4) << blk << "attn_q.weight in_sum2 vs the reference hidden states";
    // attn_output multiplies the attention heads (trace "attn_heads"): same floats, same order.
    ASSERT_TRUE(heads_sum2.count(static_cast<int>(l)));
    EXPECT_LE(worst_rel(col.entries().at(blk + "attn_output.weight").sum2,
                        heads_sum2[static_cast<int>(l)]),
              1e-12)
        << blk << "attn_output.weight";
  }
  // per_layer_model_proj multiplies the scaled embeddings: entry 0 of the reference.
  const double rel =
      worst_rel(col.entries().at("per_layer_model_proj.weight").sum2, column_sum2(hs.data(), T, H));
  EXPECT_LE(rel, 1e-5) << "per_layer_model_proj.weight";
}

// Tensor names, shapes, metadata and counts of the file `nibble imatrix` writes for the MoE
// fixture; llama-quantize's reading of it (quant/imatrix.h) gives in_sum2 / counts.
TEST(Imatrix, RandMoeFileIsLlamaCppFormat) {
  if (test::model_dir("rand-moe").empty()) GTEST_SKIP() << "rand-moe absent";
  const std::string model = test::converted_model("rand-moe", "f32");
  const std::string text = test::write_sample_text(12000);
  const std::string out = test::temp_dir() + "/rand-moe.imatrix.gguf";
  const int64_t ctx = 64, chunks = 4, tokens = ctx * chunks;
  auto r = test::run_nibble({"imatrix", model, "-f", text, "-o", out, "--ctx", std::to_string(ctx),
                             "--chunks", std::to_string(chunks)});
  ASSERT_EQ(r.exit_code, 0) << r.err;

  auto f = GgufFile::open(out);
  ASSERT_TRUE(f.ok()) << f.error().message;
  const GgufMetadata& md = (*f)->metadata();
  auto type = md.get_string("general.type");
  ASSERT_TRUE(type.ok());
  EXPECT_EQ(*type, "imatrix");
  auto ds = md.get_array("imatrix.datasets", GgufType::kString);
  ASSERT_TRUE(ds.ok()) << ds.error().message;
  ASSERT_EQ((*ds)->strings().size(), 1u);
  EXPECT_EQ((*ds)->strings()[0], text);
  EXPECT_EQ(md.get_u32("imatrix.chunk_count").value(), chunks);
  EXPECT_EQ(md.get_u32("imatrix.chunk_size").value(), ctx);

  auto m = load_model(model);
  ASSERT_TRUE(m.ok());
  const GgufFile& mf = (*m)->file();
  auto top_k = mf.metadata().get_u32("gemma4.expert_used_count");
  auto n_expert = mf.metadata().get_u32("gemma4.expert_count");
  ASSERT_TRUE(top_k.ok() && n_expert.ok());

  // Per weight, in name order: <w>.in_sum2 {n_in, n_mat}, <w>.counts {1, n_mat}, <w>.in_sum.
  const auto& ts = (*f)->tensors();
  ASSERT_EQ(ts.size() % 3, 0u);
  std::set<std::string> bases;
  std::string prev;
  int n_expert_tensors = 0;
  for (size_t i = 0; i < ts.size(); i += 3) {
    const std::string base = ts[i].name.substr(0, ts[i].name.size() - std::strlen(".in_sum2"));
    ASSERT_EQ(ts[i].name, base + ".in_sum2");
    ASSERT_EQ(ts[i + 1].name, base + ".counts");
    ASSERT_EQ(ts[i + 2].name, base + ".in_sum");
    EXPECT_LT(prev, base) << "names not in order";
    prev = base;
    bases.insert(base);
    for (size_t k = 0; k < 3; ++k) ASSERT_EQ(ts[i + k].type, GgmlType::F32);
    const GgufTensorInfo* w = mf.find_tensor(base);
    ASSERT_NE(w, nullptr) << base;
    const uint64_t n_in = w->ne(0), n_mat = w->ne(2);
    EXPECT_EQ(ts[i].ne(0), n_in) << base;
    EXPECT_EQ(ts[i].ne(1), n_mat) << base;
    EXPECT_EQ(ts[i + 1].ne(0), 1u) << base;
    EXPECT_EQ(ts[i + 1].ne(1), n_mat) << base;
    EXPECT_EQ(ts[i + 2].shape, ts[i].shape) << base;
    const float* sum2 = reinterpret_cast<const float*>(ts[i].data);
    const float* counts = reinterpret_cast<const float*>(ts[i + 1].data);
    const float* sum = reinterpret_cast<const float*>(ts[i + 2].data);
    double total = 0.0;
    for (uint64_t e = 0; e < n_mat; ++e) {
      total += counts[e];
      for (uint64_t j = 0; j < n_in; ++j) {
        const float s2 = sum2[e * n_in + j], s1 = sum[e * n_in + j];
        ASSERT_TRUE(s2 >= 0.0f && std::isfinite(s2)) << base;
        // Cauchy-Schwarz: (Σx)² <= n Σx².
        EXPECT_LE(static_cast<double>(s1) * s1, counts[e] * static_cast<double>(s2) * 1.0001 + 1e-9)
            << base << " expert " << e << " column " << j;
      }
    }
    if (n_mat > 1) {
      ++n_expert_tensors;
      EXPECT_EQ(n_mat, *n_expert) << base;
      EXPECT_EQ(total, static_cast<double>(tokens * *top_k))
          << base << ": expert counts must add up to tokens x experts per token";
    } else {
      EXPECT_EQ(total, static_cast<double>(tokens)) << base;
    }
  }
  EXPECT_EQ(bases, matmul_weights(mf));
  EXPECT_GT(n_expert_tensors, 0);

  // What llama-quantize (and nibble quantize --imatrix) read: in_sum2 / counts.
  auto im = load_imatrix(out);
  ASSERT_TRUE(im.ok()) << im.error().message;
  EXPECT_EQ(im->values.size(), bases.size());
  EXPECT_EQ(im->chunk_count, chunks);
  const auto& v = im->values.at("blk.0.attn_q.weight");
  const GgufTensorInfo* s2 = (*f)->find_tensor("blk.0.attn_q.weight.in_sum2");
  EXPECT_FLOAT_EQ(v[3], reinterpret_cast<const float*>(s2->data)[3] / tokens);
}

// Chunking as perplexity does it, over the whole text by default; counts = chunks x ctx.
TEST(Imatrix, RandEWholeTextAndErrors) {
  if (test::model_dir("rand-e").empty()) GTEST_SKIP() << "rand-e absent";
  const std::string model = test::converted_model("rand-e", "f32");
  const std::string text = test::write_sample_text(6000);
  auto m = load_model(model);
  ASSERT_TRUE(m.ok());
  auto tok = Tokenizer::from_gguf((*m)->file().metadata());
  ASSERT_TRUE(tok.ok());
  std::ifstream in(text, std::ios::binary);
  const std::string s((std::istreambuf_iterator<char>(in)), {});
  const int64_t n_ids = static_cast<int64_t>((*tok)->encode(s).size());
  const int64_t ctx = 48, chunks = n_ids / (ctx - 1);
  ASSERT_GT(chunks, 2);
  const std::string out = test::temp_dir() + "/rand-e.imatrix.gguf";
  auto r =
      test::run_nibble({"imatrix", model, "-f", text, "-o", out, "--ctx", std::to_string(ctx)});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto im = GgufFile::open(out);
  ASSERT_TRUE(im.ok()) << im.error().message;
  EXPECT_EQ((*im)->metadata().get_u32("imatrix.chunk_count").value(), chunks);
  const GgufTensorInfo* c = (*im)->find_tensor("blk.3.ffn_down.weight.counts");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(reinterpret_cast<const float*>(c->data)[0], static_cast<float>(chunks * ctx));

  const std::string tiny = test::temp_dir() + "/tiny.txt";
  test::write_bytes(tiny, {'H', 'i'});
  test::RunOptions ro;
  EXPECT_TRUE(test::is_cli_error(test::run_nibble_ex({"imatrix", model, "-f", tiny, "-o", out}, ro),
                                 {"fewer than one chunk"}));
  EXPECT_TRUE(test::is_cli_error(
      test::run_nibble_ex({"imatrix", model, "-f", text, "-o", out, "--ctx", "1"}, ro), {"--ctx"}));
  EXPECT_TRUE(test::is_cli_error(
      test::run_nibble_ex({"imatrix", model, "-f", text + ".missing", "-o", out}, ro),
      {"cannot read"}));
}

// End to end: an imatrix from Poe (never trained on) makes `nibble quantize q4_0` closer to f32
// on valid.txt. Measured: mean KLD 0.00593 -> 0.00502 (-15%); on 14k tokens -12.5%.
TEST(Imatrix, TinyEImatrixLowersQ4_0Kld) {
  NIBBLE_REQUIRE_SHARED();
  const std::string f32 = test::converted_model("tiny-e", "f32");
  const std::string dir = test::temp_dir();
  auto r = test::run_nibble({"imatrix", f32, "-f", test::shared_dir() + "/data/poe.txt", "-o",
                             dir + "/poe.imatrix.gguf", "--ctx", "256", "--chunks", "8"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = test::run_nibble({"quantize", f32, dir + "/plain.gguf", "q4_0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = test::run_nibble(
      {"quantize", f32, dir + "/im.gguf", "q4_0", "--imatrix", dir + "/poe.imatrix.gguf"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string text = test::write_valid_prefix(10000);
  r = test::run_nibble({"perplexity", f32, "-f", text, "--ctx", "128", "--save-reference",
                        dir + "/f32.ref", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  double kld[2];
  for (int i = 0; i < 2; ++i) {
    r = test::run_nibble({"perplexity", dir + (i == 0 ? "/plain.gguf" : "/im.gguf"), "-f", text,
                          "--reference", dir + "/f32.ref", "--json"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    kld[i] = json::parse(r.out)["kld_mean"].get<double>();
  }
  std::printf("[imatrix] tiny-e q4_0 mean KLD vs f32: %.6f without, %.6f with the imatrix\n",
              kld[0], kld[1]);
  std::fflush(stdout);
  EXPECT_LT(kld[1], 0.95 * kld[0]);
}

}  // namespace
}  // namespace nibble
