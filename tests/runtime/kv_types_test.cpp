// KV cache element types (f32, f16, q8_0, q4_0, separately for full and sliding layers) and the
// two attention kernels through whole sessions: prompt in one batch, in batches and token by
// token give identical logits for every type and kernel; the kernels agree with each other;
// bytes by layer kind match the row layouts; head sizes the block types cannot hold and
// unknown type names are rejected with a clear message. Quantized caches with f16 recent rows
// (KvTypes::recent): batch invariance with the ring, a ring covering the context gives the f16
// cache, ring bytes, out-of-range values rejected.
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

// types.recent: SessionOptions::kv_recent (KvTypes' default is the session's default).
std::vector<float> logits(const Model& m, const std::vector<int32_t>& ids, int64_t n_batch,
                          KvTypes types, FlashAttn flash) {
  SessionOptions o;
  o.n_ctx = 64;
  o.n_batch = n_batch;
  o.kv_type_full = types.full;
  o.kv_type_swa = types.swa;
  o.kv_recent = types.recent;
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
         (f == FlashAttn::kOff ? " materialized" : " flash") + " recent " +
         std::to_string(t.recent);
}

TEST(KvTypes, PromptBatchesAndIncrementalGiveIdenticalLogits) {
  auto f = make_gemma4_fixture(shape());
  const auto ids = tokens(3 * 5 + 4, 64);  // 3x the window and more: the rings wrap
  // recent: none, 4 positions at f16 (both stores read, tiles shared by the two near the
  // diagonal), the default 32 (more than the 19 positions: the f16 ring only).
  for (GgmlType t : kTypes) {
    for (int64_t recent : {int64_t{0}, int64_t{4}, KvTypes{}.recent}) {
      for (FlashAttn fa : {FlashAttn::kOn, FlashAttn::kOff}) {
        KvTypes types{t, t};
        types.recent = recent;
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
}

TEST(KvTypes, FlashAndMaterializedAgreeAndTypesDiffer) {
  auto f = make_gemma4_fixture(shape());
  const auto ids = tokens(20, 64);
  const auto exact = logits(*f->model, ids, 20, {GgmlType::F32, GgmlType::F32}, FlashAttn::kOff);
  float max_abs = 0.0f;
  for (float x : exact) max_abs = std::max(max_abs, std::fabs(x));
  for (GgmlType t : kTypes) {
    KvTypes types{t, t};
    // No f16 recent rows here: mixing f16 rows with q4_0 ones, this random-weight network turns
    // the kernels' different summation orders into different quantized K rows in later layers
    // (up to 0.6 apart at recent 4); tests/ops Attention.RecentRingAtF16 checks both kernels
    // against the oracle with the ring.
    types.recent = 0;
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
  KvTypes mixed_types{GgmlType::Q8_0, GgmlType::Q4_0}, q4_types{GgmlType::Q4_0, GgmlType::Q4_0};
  mixed_types.recent = q4_types.recent = 0;
  const auto mixed = logits(*f->model, ids, 20, mixed_types, FlashAttn::kOn);
  const auto q4 = logits(*f->model, ids, 20, q4_types, FlashAttn::kOn);
  EXPECT_NE(mixed, q4);
  // The default recent (32) covers all 20 positions: every row is read from the f16 ring, the
  // same rotated f16 rows whether the cache is q8_0 or q4_0.
  for (FlashAttn fa : {FlashAttn::kOn, FlashAttn::kOff}) {
    const auto q8_all = logits(*f->model, ids, 20, {GgmlType::Q8_0, GgmlType::Q8_0}, fa);
    const auto q4_all = logits(*f->model, ids, 20, {GgmlType::Q4_0, GgmlType::Q4_0}, fa);
    EXPECT_EQ(q8_all, q4_all);
    EXPECT_NE(q4_all, q4);
  }
}

TEST(KvTypes, BytesByLayerKind) {
  auto f = make_gemma4_fixture(shape());
  const auto layout = f->model->kv_layout();
  // Owning: sliding layers 0, 1, 3 (ring of 5 - 1 + 8 = 12 slots, 2 heads x 32), full layers
  // 2, 4 (100 slots, 1 head x 64); layers 5, 6 share.
  const KvTypes types{GgmlType::Q8_0, GgmlType::Q4_0};
  KvCache cache(layout, 100, 8, types);
  // Each quantized layer also has an f16 recent ring of 32 + 8 - 1 = 39 slots.
  const uint64_t swa_row = 2 * (32 / 32 * 18), full_row = 64 / 32 * 34;
  const uint64_t swa_f16 = 2 * 32 * 2, full_f16 = 64 * 2;
  EXPECT_EQ(cache.kv_bytes_swa(), 3 * (12 * swa_row + 39 * swa_f16) * 2);
  EXPECT_EQ(cache.kv_bytes_full(), 2 * (100 * full_row + 39 * full_f16) * 2);
  EXPECT_EQ(cache.size_bytes(), cache.kv_bytes_swa() + cache.kv_bytes_full());
  EXPECT_EQ(cache.layer_bytes(0), (12 * swa_row + 39 * swa_f16) * 2);
  EXPECT_EQ(cache.layer_bytes(2), (100 * full_row + 39 * full_f16) * 2);
  EXPECT_EQ(cache.views()[0].n_recent, 32);
  EXPECT_EQ(cache.views()[0].n_recent_slots, 39);
  EXPECT_EQ(cache.views()[5].rk, cache.views()[3].rk);  // shared layers read the owner's ring
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
  EXPECT_EQ(f16.views()[0].n_recent, 0);  // f16 / f32 caches keep no ring
  EXPECT_EQ(f16.views()[0].rk, nullptr);
  // recent 0: the quantized rows alone; a ring never has more slots than the context.
  KvTypes none = types, big = types;
  none.recent = 0;
  big.recent = 500;
  KvCache plain(layout, 100, 8, none);
  EXPECT_EQ(plain.kv_bytes_full(), 2 * 100 * full_row * 2);
  EXPECT_EQ(plain.views()[2].rk, nullptr);
  KvCache wide(layout, 100, 8, big);
  EXPECT_EQ(wide.views()[2].n_recent_slots, 100);
  EXPECT_EQ(KvCache::estimate(layout, 100, 8, big).total(), wide.size_bytes());
}

// Logits of ids in one forward pass over a cache built directly (so rotation can be turned off).
std::vector<float> forward_logits(const Model& m, const std::vector<int32_t>& ids, KvTypes types,
                                  bool flash) {
  KvCache cache(m.kv_layout(), 64, static_cast<int64_t>(ids.size()), types, flash);
  std::vector<float> out(ids.size() * static_cast<size_t>(m.info().n_vocab));
  m.forward(ids.data(), static_cast<int64_t>(ids.size()), 0, cache.views(), true, out.data());
  return out;
}

TEST(KvTypes, RecentCoveringTheContextIsTheF16Cache) {
  // recent >= the context: every row a query reads comes from the f16 ring. Unrotated, those are
  // the f16 cache's rows, read by the same kernels: the same bits. Rotated (the default), the
  // ring holds f16(H k) instead of f16(k) and the queries and outputs are rotated: f16 rounding
  // apart, the same result. Measured (max |logit| 5.9): rotated ring vs f16 0.118, f32 cache vs
  // f16 0.093; without the ring q8_0 2.3 and q4_0 5.2 (this random network amplifies rounding).
  auto f = make_gemma4_fixture(shape());
  const auto ids = tokens(40, 64);
  for (bool flash : {true, false}) {
    const auto f16 = forward_logits(*f->model, ids, {GgmlType::F16, GgmlType::F16}, flash);
    float max_abs = 0.0f;
    for (float x : f16) max_abs = std::max(max_abs, std::fabs(x));
    // The yardstick of f16 rounding in this random-weight network: the f32 cache vs the f16 one.
    const auto f32 = forward_logits(*f->model, ids, {GgmlType::F32, GgmlType::F32}, flash);
    float d_f16 = 0.0f;
    for (size_t i = 0; i < f16.size(); ++i) d_f16 = std::max(d_f16, std::fabs(f32[i] - f16[i]));
    for (GgmlType t : {GgmlType::Q8_0, GgmlType::Q4_0}) {
      KvTypes types{t, t};
      types.recent = 64;
      types.rotate_quantized = false;
      EXPECT_EQ(forward_logits(*f->model, ids, types, flash), f16)
          << ggml_type_name(t) << (flash ? " flash" : " materialized");
      types.rotate_quantized = true;
      const auto rotated = forward_logits(*f->model, ids, types, flash);
      float d = 0.0f;
      for (size_t i = 0; i < f16.size(); ++i) d = std::max(d, std::fabs(rotated[i] - f16[i]));
      EXPECT_LE(d, 2 * d_f16) << ggml_type_name(t) << " rotated";
      // Without the ring, q4_0 is much further off.
      types.recent = 0;
      const auto plain = forward_logits(*f->model, ids, types, flash);
      float dq = 0.0f;
      for (size_t i = 0; i < f16.size(); ++i) dq = std::max(dq, std::fabs(plain[i] - f16[i]));
      if (t == GgmlType::Q4_0) EXPECT_GT(dq, 2 * d) << "rotated ring " << d << " plain " << dq;
    }
  }
}

TEST(KvTypes, RecentOutOfRangeIsAClearError) {
  auto f = make_gemma4_fixture(shape());
  SessionOptions o;
  o.n_ctx = 16;
  o.kv_type_full = o.kv_type_swa = GgmlType::Q4_0;
  for (int64_t bad : {int64_t{-1}, kKvRecentMax + 1}) {
    o.kv_recent = bad;
    auto s = Session::create(*f->model, o);
    ASSERT_FALSE(s.ok()) << bad;
    EXPECT_NE(s.error().message.find("0 to 4096"), std::string::npos) << s.error().message;
  }
  o.kv_recent = kKvRecentMax;
  EXPECT_TRUE(Session::create(*f->model, o).ok());
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
