// Session and KV cache: prompt processing in one pass, in batches of any size, and one token
// at a time give the same logits; sliding-window rings wrap (prompts 3x the window, decoding
// past it); KV-shared layers store nothing and never touch their own (redundant) K/V weights.
#include "runtime/session.h"

#include <gtest/gtest.h>

#include <cmath>

#include "gemma4_fixture.h"
#include "runtime/kv_cache.h"

namespace nibble {
namespace {

using test::Gemma4FixtureShape;
using test::make_gemma4_fixture;

std::vector<int32_t> test_tokens(int64_t n, int64_t n_vocab, uint32_t seed = 7) {
  std::vector<int32_t> ids(static_cast<size_t>(n));
  ids[0] = 2;
  for (int64_t i = 1; i < n; ++i) {
    ids[i] = static_cast<int32_t>((test::fixture_value("tok", i, seed) + 1.0f) * 0.5f * n_vocab) %
             n_vocab;
  }
  return ids;
}

// All-position logits with a given batch size (n_batch = 1: incremental).
std::vector<float> run_logits(const Model& m, const std::vector<int32_t>& ids, int64_t n_batch,
                              int64_t n_ctx) {
  SessionOptions o;
  o.n_ctx = n_ctx;
  o.n_batch = n_batch;
  auto s = Session::create(m, o);
  EXPECT_TRUE(s.ok());
  std::vector<float> all, chunk;
  for (size_t i = 0; i < ids.size(); i += static_cast<size_t>(n_batch)) {
    const size_t n = std::min(ids.size() - i, static_cast<size_t>(n_batch));
    Status st = (*s)->eval(std::span<const int32_t>(ids.data() + i, n), true, chunk);
    EXPECT_TRUE(st.ok()) << st.error().message;
    all.insert(all.end(), chunk.begin(), chunk.end());
  }
  return all;
}

void expect_close(const std::vector<float>& a, const std::vector<float>& b, float tol,
                  const char* what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  size_t worst = 0, bad = 0;
  float wd = 0.0f;
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_TRUE(std::isfinite(a[i])) << what << " index " << i;
    const float d = std::fabs(a[i] - b[i]);
    if (d > wd) wd = d, worst = i;
    bad += d > tol;
  }
  EXPECT_EQ(bad, 0u) << what << ": worst index " << worst << " expected " << b[worst] << " got "
                     << a[worst] << " (" << bad << " outside " << tol << ")";
}

Gemma4FixtureShape e_like() {
  Gemma4FixtureShape s;
  s.sliding = {true, true, false, true, false, true, false};
  s.n_shared_kv = 2;  // layers 5 (sliding -> 3) and 6 (full -> 4)
  s.n_per_layer = 8;
  s.window = 5;
  return s;
}

TEST(KvCache, SlidingLayersRingFullLayersLinearSharedAlias) {
  auto f = make_gemma4_fixture(e_like());
  auto layout = f->model->kv_layout();
  ASSERT_EQ(layout.size(), 7u);
  EXPECT_EQ(layout[5].source_layer, 3);  // last owning sliding layer
  EXPECT_EQ(layout[6].source_layer, 4);  // last owning full layer
  KvCache cache(layout, /*n_ctx=*/100, /*n_batch_max=*/8, KvTypes{GgmlType::F32, GgmlType::F32});
  const auto& v = cache.views();
  EXPECT_TRUE(v[0].ring);
  EXPECT_EQ(v[0].n_slots, 5 - 1 + 8);
  EXPECT_FALSE(v[2].ring);
  EXPECT_EQ(v[2].n_slots, 100);
  EXPECT_EQ(v[5].k, v[3].k);
  EXPECT_EQ(v[6].v, v[4].v);
  // Owning layers only: 3 sliding rings of 12 slots (8 floats) + 2 linear of 100 (16 floats), K+V.
  EXPECT_EQ(cache.size_bytes(), (3u * 12 * 8 + 2u * 100 * 16) * 2 * sizeof(float));
  EXPECT_EQ(cache.kv_bytes_swa(), 3u * 12 * 8 * 2 * sizeof(float));
  EXPECT_EQ(cache.kv_bytes_full(), 2u * 100 * 16 * 2 * sizeof(float));
  // A context no longer than the ring makes the sliding layer linear.
  KvCache small(layout, 10, 8);
  EXPECT_FALSE(small.views()[0].ring);
}

TEST(Session, PromptBatchesAndIncrementalAgreeAcrossWindowWrap) {
  auto f = make_gemma4_fixture(e_like());
  const auto ids = test_tokens(3 * 5 + 4, 64);  // prompt longer than 3x the window
  const auto one_pass = run_logits(*f->model, ids, static_cast<int64_t>(ids.size()), 64);
  expect_close(run_logits(*f->model, ids, 1, 64), one_pass, 1e-5f, "incremental");
  expect_close(run_logits(*f->model, ids, 3, 64), one_pass, 1e-5f, "batches of 3");
  expect_close(run_logits(*f->model, ids, 7, 64), one_pass, 1e-5f, "batches of 7");
}

TEST(Session, DecodingFarPastTheWindowMatchesOnePass) {
  Gemma4FixtureShape s = e_like();
  s.window = 3;
  auto f = make_gemma4_fixture(s);
  const auto ids = test_tokens(40, 64, 11);
  // Prefill 9 tokens (3x window), then decode 31 more one at a time: the ring wraps ~10 times.
  SessionOptions o;
  o.n_ctx = 64;
  o.n_batch = 9;
  auto sess = Session::create(*f->model, o);
  ASSERT_TRUE(sess.ok());
  std::vector<float> all, chunk;
  ASSERT_TRUE((*sess)->eval(std::span<const int32_t>(ids.data(), 9), true, chunk).ok());
  all = chunk;
  for (size_t i = 9; i < ids.size(); ++i) {
    ASSERT_TRUE((*sess)->eval(std::span<const int32_t>(ids.data() + i, 1), true, chunk).ok());
    all.insert(all.end(), chunk.begin(), chunk.end());
  }
  expect_close(all, run_logits(*f->model, ids, 40, 64), 1e-5f, "prefill + decode");
}

TEST(Session, KvSharedLayersIgnoreTheirOwnKvWeights) {
  Gemma4FixtureShape s = e_like();
  auto plain = make_gemma4_fixture(s);
  s.redundant_shared_kv = true;  // NaN-filled attn_k/attn_v/attn_k_norm on layers 5 and 6
  auto redundant = make_gemma4_fixture(s);
  const auto ids = test_tokens(12, 64);
  expect_close(run_logits(*redundant->model, ids, 4, 32), run_logits(*plain->model, ids, 4, 32),
               0.0f, "redundant shared KV weights");
}

TEST(Session, KvSharingChangesTheResult) {
  // Sanity: the shared layers really read another layer's cache (not a zero cache).
  Gemma4FixtureShape s = e_like();
  auto shared = make_gemma4_fixture(s);
  s.n_shared_kv = 0;
  auto owning = make_gemma4_fixture(s);
  const auto ids = test_tokens(8, 64);
  const auto a = run_logits(*shared->model, ids, 8, 16), b = run_logits(*owning->model, ids, 8, 16);
  float diff = 0.0f;
  for (size_t i = 0; i < a.size(); ++i) diff = std::max(diff, std::fabs(a[i] - b[i]));
  EXPECT_GT(diff, 1e-3f);
}

TEST(Session, MoeAndKEqVModelAgreesIncrementally) {
  Gemma4FixtureShape s;
  s.sliding = {true, true, false, true};
  s.n_expert = 6;
  s.n_expert_used = 2;
  s.n_ff_exp = 16;
  s.k_eq_v = true;
  s.n_head_kv_swa = 2;
  s.window = 4;
  auto f = make_gemma4_fixture(s);
  const auto ids = test_tokens(14, 64);
  expect_close(run_logits(*f->model, ids, 1, 32), run_logits(*f->model, ids, 14, 32), 1e-5f, "moe");
}

TEST(Session, QuantizedWeightsRun) {
  for (GgmlType t : {GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q4_0}) {
    // Every row length a multiple of the 32-element quant blocks.
    Gemma4FixtureShape s = e_like();
    s.head_dim_swa = 16;
    s.head_dim_full = 32;
    s.n_ff = 64;
    s.n_per_layer = 32;
    auto ref = make_gemma4_fixture(s);
    s.type = t;
    auto f = make_gemma4_fixture(s);
    const auto ids = test_tokens(10, 64);
    const auto a = run_logits(*f->model, ids, 10, 16), b = run_logits(*ref->model, ids, 10, 16);
    expect_close(run_logits(*f->model, ids, 1, 16), a, 1e-5f, ggml_type_name(t));
    float max_abs = 0.0f;
    for (float x : b) max_abs = std::max(max_abs, std::fabs(x));
    // Random weights make this network sensitive, so only f16 gets a bound here; quantized
    // quality is measured on the trained tiny-e in tests/model.
    if (t == GgmlType::F16) expect_close(a, b, 0.05f * max_abs, ggml_type_name(t));
  }
}

TEST(Session, RejectsBadTokensAndFullContext) {
  auto f = make_gemma4_fixture(e_like());
  SessionOptions o;
  o.n_ctx = 8;
  auto s = Session::create(*f->model, o);
  ASSERT_TRUE(s.ok());
  std::vector<float> logits;
  std::vector<int32_t> bad = {2, 64};
  Status st = (*s)->eval(bad, false, logits);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, ErrorCode::kOutOfRange);
  EXPECT_NE(st.error().message.find("64"), std::string::npos) << st.error().message;
  bad = {2, -1};
  EXPECT_FALSE((*s)->eval(bad, false, logits).ok());
  EXPECT_EQ((*s)->n_past(), 0);
  std::vector<int32_t> long_prompt(9, 5);
  st = (*s)->eval(long_prompt, false, logits);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("context"), std::string::npos) << st.error().message;
  std::vector<int32_t> ok(8, 5);
  EXPECT_TRUE((*s)->eval(ok, false, logits).ok());
  std::vector<int32_t> one = {5};
  EXPECT_FALSE((*s)->eval(one, false, logits).ok());
  (*s)->reset();
  EXPECT_TRUE((*s)->eval(one, false, logits).ok());
}

}  // namespace
}  // namespace nibble
