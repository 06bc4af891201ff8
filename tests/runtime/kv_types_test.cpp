// KV cache element types (f32, f16, q8_0, q4_0, separately for full and sliding layers) and the
// two attention kernels through whole sessions: prompt in one batch, in batches and token by
// token give identical logits for every type and kernel; the kernels agree with each other;
// bytes by layer kind match the row layouts; head sizes the block types cannot hold and
// unknown type names are rejected with a clear message.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "gemma4_fixture.h"
#include "runtime/kv_cache.h"
#include "runtime/session.h"

namespace nibble {
namespace {

using test::Gemma4FixtureShape;
using test::make_gemma4_fixture;

constexpr GgmlType kTypes[] = {GgmlType::F32, GgmlType::F16, GgmlType::Q8_0, GgmlType::Q4_0};

// e2b-like: sliding and full layers, KV sharing, head sizes the block types can hold.
Gemma4FixtureShape shape() {
  Gemma4FixtureShape s;
  s.sliding = {true, true, false, true, false, true, false};
  s.n_shared_kv = 2;  // layers 5 (sliding -> 3) and 6 (full -> 4)
  s.n_per_layer = 8;
  s.n_head = 4;
  s.n_head_kv_swa = 2;
  s.head_dim_swa = 32;
  s.head_dim_full = 64;
  s.window = 5;
  return s;
}

std::vector<int32_t> tokens(int64_t n, int64_t n_vocab) {
  std::vector<int32_t> ids(static_cast<size_t>(n));
  ids[0] = 2;
  for (int64_t i = 1; i < n; ++i) {
    ids[i] = static_cast<int32_t>((test::fixture_value("tok", i, 5) + 1.0f) * 0.5f * n_vocab) %
             n_vocab;
  }
  return ids;
}

std::vector<float> logits(const Model& m, const std::vector<int32_t>& ids, int64_t n_batch,
                          KvTypes types, FlashAttn flash) {
  SessionOptions o;
  o.n_ctx = 64;
  o.n_batch = n_batch;
  o.kv_type_full = types.full;
  o.kv_type_swa = types.swa;
  o.flash_attn = flash;
  auto s = Session::create(m, o);
  EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().message);
  if (!s.ok()) return {};
  EXPECT_EQ((*s)->kv_cache().views()[0].type, types.swa);
  EXPECT_EQ((*s)->kv_cache().views()[2].type, types.full);
  EXPECT_EQ((*s)->kv_cache().flash(), flash != FlashAttn::kOff);
  std::vector<float> all, chunk;
  for (size_t i = 0; i < ids.size(); i += static_cast<size_t>(n_batch)) {
    const size_t n = std::min(ids.size() - i, static_cast<size_t>(n_batch));
    Status st = (*s)->eval(std::span<const int32_t>(ids.data() + i, n), true, chunk);
    EXPECT_TRUE(st.ok()) << st.error().message;
    all.insert(all.end(), chunk.begin(), chunk.end());
  }
  return all;
}

std::string what(KvTypes t, FlashAttn f) {
  return std::string(ggml_type_name(t.full)) + "/" + ggml_type_name(t.swa) +
         (f == FlashAttn::kOff ? " materialized" : " flash");
}

TEST(KvTypes, PromptBatchesAndIncrementalGiveIdenticalLogits) {
  auto f = make_gemma4_fixture(shape());
  const auto ids = tokens(3 * 5 + 4, 64);  // 3x the window and more: the rings wrap
  for (GgmlType t : kTypes) {
    for (FlashAttn fa : {FlashAttn::kOn, FlashAttn::kOff}) {
      const KvTypes types{t, t};
      const auto one_pass = logits(*f->model, ids, static_cast<int64_t>(ids.size()), types, fa);
      ASSERT_EQ(one_pass.size(), ids.size() * 64);
      for (float x : one_pass) ASSERT_TRUE(std::isfinite(x)) << what(types, fa);
      for (int64_t batch : {1, 3, 7}) {
        const auto b = logits(*f->model, ids, batch, types, fa);
        ASSERT_EQ(b.size(), one_pass.size());
        EXPECT_EQ(std::memcmp(b.data(), one_pass.data(), b.size() * sizeof(float)), 0)
            << what(types, fa) << " batch " << batch << " differs from one pass";
      }
    }
  }
}

TEST(KvTypes, FlashAndMaterializedAgreeAndTypesDiffer) {
  auto f = make_gemma4_fixture(shape());
  const auto ids = tokens(20, 64);
  const auto exact = logits(*f->model, ids, 20, {GgmlType::F32, GgmlType::F32}, FlashAttn::kOff);
  float max_abs = 0.0f;
  for (float x : exact) max_abs = std::max(max_abs, std::fabs(x));
  for (GgmlType t : kTypes) {
    const KvTypes types{t, t};
    const auto a = logits(*f->model, ids, 20, types, FlashAttn::kOn);
    const auto b = logits(*f->model, ids, 20, types, FlashAttn::kAuto);
    const auto c = logits(*f->model, ids, 20, types, FlashAttn::kOff);
    EXPECT_EQ(a, b) << "auto is on";
    float d_kernels = 0.0f, d_exact = 0.0f;
    for (size_t i = 0; i < a.size(); ++i) {
      d_kernels = std::max(d_kernels, std::fabs(a[i] - c[i]));
      d_exact = std::max(d_exact, std::fabs(a[i] - exact[i]));
    }
    // Same cache contents, different summation order only (the kernels themselves agree with
    // the oracle to 1e-5 in tests/ops; this random-weight network amplifies rounding ~10x).
    EXPECT_LE(d_kernels, 1e-3f * max_abs) << what(types, FlashAttn::kOn);
    if (t == GgmlType::F32) {
      EXPECT_LE(d_exact, 1e-3f * max_abs);
    } else {
      EXPECT_GT(d_exact, 0.0f) << ggml_type_name(t) << " cache changed nothing";
    }
  }
  // Mixed: full and sliding layers get their own types.
  const auto mixed = logits(*f->model, ids, 20, {GgmlType::Q8_0, GgmlType::Q4_0}, FlashAttn::kOn);
  const auto q4 = logits(*f->model, ids, 20, {GgmlType::Q4_0, GgmlType::Q4_0}, FlashAttn::kOn);
  EXPECT_NE(mixed, q4);
}

TEST(KvTypes, BytesByLayerKind) {
  auto f = make_gemma4_fixture(shape());
  const auto layout = f->model->kv_layout();
  // Owning: sliding layers 0, 1, 3 (ring of 5 - 1 + 8 = 12 slots, 2 heads x 32), full layers
  // 2, 4 (100 slots, 1 head x 64); layers 5, 6 share.
  const KvTypes types{GgmlType::Q8_0, GgmlType::Q4_0};
  KvCache cache(layout, 100, 8, types);
  const uint64_t swa_row = 2 * (32 / 32 * 18), full_row = 64 / 32 * 34;
  EXPECT_EQ(cache.kv_bytes_swa(), 3 * 12 * swa_row * 2);
  EXPECT_EQ(cache.kv_bytes_full(), 2 * 100 * full_row * 2);
  EXPECT_EQ(cache.size_bytes(), cache.kv_bytes_swa() + cache.kv_bytes_full());
  EXPECT_EQ(cache.layer_bytes(0), 12 * swa_row * 2);
  EXPECT_EQ(cache.layer_bytes(2), 100 * full_row * 2);
  EXPECT_EQ(cache.layer_bytes(5), 0u);
  const KvCacheBytes est = KvCache::estimate(layout, 100, 8, types);
  EXPECT_EQ(est.full, cache.kv_bytes_full());
  EXPECT_EQ(est.swa, cache.kv_bytes_swa());
  // f16 (the default) is half of f32.
  KvCache f16(layout, 100, 8);
  KvCache f32(layout, 100, 8, {GgmlType::F32, GgmlType::F32});
  EXPECT_EQ(f16.types().full, GgmlType::F16);
  EXPECT_EQ(2 * f16.size_bytes(), f32.size_bytes());
  EXPECT_EQ(KvCache::estimate(layout, 100, 8).total(), f16.size_bytes());
}

TEST(KvTypes, RejectsHeadSizesTheBlocksCannotHold) {
  Gemma4FixtureShape s = shape();
  s.head_dim_swa = 16;  // not a multiple of 32
  auto f = make_gemma4_fixture(s);
  SessionOptions o;
  o.n_ctx = 16;
  o.kv_type_swa = GgmlType::Q8_0;
  auto bad = Session::create(*f->model, o);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("q8_0"), std::string::npos) << bad.error().message;
  EXPECT_NE(bad.error().message.find("multiple of 32"), std::string::npos) << bad.error().message;
  EXPECT_NE(bad.error().message.find("head size 16"), std::string::npos) << bad.error().message;
  // Full layers (head size 64) may be quantized; f16 sliding layers take any head size.
  o.kv_type_swa = GgmlType::F16;
  o.kv_type_full = GgmlType::Q4_0;
  EXPECT_TRUE(Session::create(*f->model, o).ok());
  // Types that are not KV types.
  o.kv_type_full = GgmlType::Q4_K;
  auto k = Session::create(*f->model, o);
  ASSERT_FALSE(k.ok());
  EXPECT_NE(k.error().message.find("f32, f16, q8_0, q4_0"), std::string::npos)
      << k.error().message;
}

TEST(KvTypes, ParseNames) {
  EXPECT_EQ(parse_kv_type("f32").value(), GgmlType::F32);
  EXPECT_EQ(parse_kv_type("F16").value(), GgmlType::F16);
  EXPECT_EQ(parse_kv_type("q8_0").value(), GgmlType::Q8_0);
  EXPECT_EQ(parse_kv_type("Q4_0").value(), GgmlType::Q4_0);
  for (const char* bad : {"", "q4_k", "bf16", "q8", "f16 ", "\x01\xff"}) {
    auto r = parse_kv_type(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.error().message.find("choose f32, f16, q8_0, q4_0"), std::string::npos)
        << r.error().message;
  }
}

}  // namespace
}  // namespace nibble
