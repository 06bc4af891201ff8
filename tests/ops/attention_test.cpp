// Cached attention (linear and ring caches, any batch split) for every KV type (f32, f16, q8_0,
// q4_0), plain and Hadamard-rotated, and both kernels (flash and materialized softmax), against
// two scalar oracles: ref::attention over the whole sequence with K/V rows round-tripped through
// the reference quantizer (and ref::hadamard), and ref::attention_kv reading the cache itself
// after each batch. GQA, sliding
// windows, ring wrap-around, causal masking inside a batch, long contexts with several flash
// chunks; batch splits and the flash kernel's work splits must not change a single bit.
#include "ops/attention.h"

#include <gtest/gtest.h>

#include <cstring>

#include "ops/flash_attention.h"
#include "ops/kv_rows.h"
#include "ops/reference/reference_ops.h"
#include "ops_test_util.h"
#include "quant/quant.h"

namespace nibble {
namespace {

constexpr GgmlType kTypes[] = {GgmlType::F32, GgmlType::F16, GgmlType::Q8_0, GgmlType::Q4_0};

struct Case {
  int64_t n_tokens, n_head, n_head_kv, d, window, n_batch;
  int64_t recent = 0;  // KvView::n_recent: positions also kept at f16
};

std::string name(const Case& c, GgmlType t, bool flash, bool rotate = false) {
  return std::string(ggml_type_name(t)) + (rotate ? " rotated" : "") +
         (flash ? " flash" : " materialized") + " T=" + std::to_string(c.n_tokens) +
         " H=" + std::to_string(c.n_head) + "/" + std::to_string(c.n_head_kv) +
         " d=" + std::to_string(c.d) + " W=" + std::to_string(c.window) +
         " batch=" + std::to_string(c.n_batch) + " recent=" + std::to_string(c.recent);
}

// A cache the way the runtime sizes it: a ring of window - 1 + n_batch slots when windowed
// (and shorter than the sequence), else linear; with c.recent, an f16 recent ring of
// recent + n_batch - 1 slots.
struct TestCache {
  KvView view;
  std::vector<uint8_t> k, v, rk, rv;
  TestCache(const Case& c, GgmlType t, bool flash, bool rotate = false) {
    view.type = t;
    view.flash = flash;
    view.rotate = rotate;
    view.n_head_kv = c.n_head_kv;
    view.head_dim = c.d;
    const int64_t ring_slots = c.window - 1 + c.n_batch;
    view.ring = c.window > 0 && ring_slots < c.n_tokens;
    view.n_slots = view.ring ? ring_slots : c.n_tokens;
    k.assign(static_cast<size_t>(view.n_slots) * view.row_bytes(), 0xAB);
    v.assign(k.size(), 0xCD);
    view.k = k.data();
    view.v = v.data();
    if (c.recent > 0) {
      view.n_recent = c.recent;
      view.n_recent_slots = c.recent + c.n_batch - 1;
      rk.assign(static_cast<size_t>(view.n_recent_slots) * view.recent_row_bytes(), 0xAB);
      rv.assign(rk.size(), 0xCD);
      view.rk = rk.data();
      view.rv = rv.data();
    }
  }
};

// Head vectors of d values round-tripped through the reference quantizer of `t` the way the
// cache stores them: q4_0 with unit importance, rotated by ref::hadamard when `rotate`.
std::vector<float> round_trip(GgmlType t, const std::vector<float>& x, int64_t d,
                              bool rotate = false) {
  std::vector<float> out(x), ones(static_cast<size_t>(d), 1.0f);
  std::vector<uint8_t> buf(ggml_row_size(t, static_cast<uint64_t>(d)));
  for (size_t r = 0; r < x.size() / static_cast<size_t>(d); ++r) {
    float* h = out.data() + r * d;
    if (rotate) ref::hadamard(h, 1, d);
    quantize_row(t, h, buf.data(), static_cast<uint64_t>(d),
                 t == GgmlType::Q4_0 ? ones.data() : nullptr);
    dequantize_row(t, buf.data(), h, static_cast<uint64_t>(d));
    if (rotate) ref::hadamard(h, 1, d);
  }
  return out;
}

struct Inputs {
  std::vector<float> q, k, v;
};

Inputs inputs(const Case& c) {
  return {test::random_floats(static_cast<size_t>(c.n_tokens * c.n_head * c.d), 1, 2.0f),
          test::random_floats(static_cast<size_t>(c.n_tokens * c.n_head_kv * c.d), 2, 2.0f),
          test::random_floats(static_cast<size_t>(c.n_tokens * c.n_head_kv * c.d), 3)};
}

// Runs the sequence through a cache batch by batch; with `oracle`, also checks each batch
// against ref::attention_kv on the cache as it is then.
std::vector<float> run_cached(const Case& c, GgmlType t, bool flash, const Inputs& in, bool oracle,
                              bool rotate = false) {
  TestCache cache(c, t, flash, rotate);
  std::vector<float> got(in.q.size());
  const int64_t qrow = c.n_head * c.d, kvrow = c.n_head_kv * c.d;
  for (int64_t p = 0; p < c.n_tokens; p += c.n_batch) {
    const int64_t n = std::min(c.n_batch, c.n_tokens - p);
    kv_store(cache.view, in.k.data() + p * kvrow, in.v.data() + p * kvrow, p, n);
    attention(cache.view, in.q.data() + p * qrow, got.data() + p * qrow, n, c.n_head, p, c.window,
              1.0f);
    if (oracle) {
      std::vector<float> want(static_cast<size_t>(n * qrow));
      ref::attention_kv(cache.view, in.q.data() + p * qrow, want.data(), n, c.n_head, p, c.window,
                        1.0f);
      test::expect_near_all(
          got.data() + p * qrow, want.data(), want.size(), 1e-5f, 1e-4f,
          name(c, t, flash, rotate) + " vs ref::attention_kv at " + std::to_string(p));
    }
  }
  return got;
}

void check(const Case& c, bool oracle_kv = true) {
  const Inputs in = inputs(c);
  for (GgmlType t : kTypes) {
    for (bool rotate : {false, true}) {
      if (rotate && t == GgmlType::F32) continue;
      std::vector<float> want(in.q.size());
      ref::attention(in.q.data(), round_trip(t, in.k, c.d, rotate).data(),
                     round_trip(t, in.v, c.d, rotate).data(), want.data(), c.n_tokens, c.n_head,
                     c.n_head_kv, c.d, c.window, 1.0f);
      for (bool flash : {true, false}) {
        const auto got = run_cached(c, t, flash, in, oracle_kv, rotate);
        // Rotated caches: the fast and the reference rotation round differently, which can
        // move a value across a quantization step; allow for a few such steps.
        const float tol = rotate && t == GgmlType::Q4_0 ? 2e-2f : rotate ? 2e-3f : 1e-5f;
        test::expect_near_all(got.data(), want.data(), got.size(), tol, 1e-4f,
                              name(c, t, flash, rotate) + " vs ref::attention");
      }
    }
  }
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(Attention, FullCausal) {
  check({1, 1, 1, 32, 0, 1});
  check({33, 4, 2, 32, 0, 33});
  check({33, 4, 1, 64, 0, 5});
  check({40, 8, 1, 32, 0, 40});  // GQA group of 8, one batch: causal mask inside the batch
  check({21, 6, 2, 32, 0, 5});   // odd group (3): heads in pairs and one alone
  check({30, 3, 1, 32, 7, 4});
}

TEST(Attention, SlidingWindowRingWrapsAround) {
  // Sequences of 3x the window and more, processed one token at a time and in batches.
  for (int64_t batch : {1, 2, 4, 7}) {
    check({24, 4, 2, 32, 8, batch});
    check({50, 2, 1, 32, 5, batch});
  }
  check({10, 2, 2, 32, 1, 3});  // window 1: each token sees only itself
}

TEST(Attention, FloatTypesTakeAnyHeadSize) {
  // f32 and f16 have no blocks: head sizes that are not multiples of 32 work.
  const Case c{19, 4, 2, 8, 6, 4};
  const Inputs in = inputs(c);
  for (GgmlType t : {GgmlType::F32, GgmlType::F16}) {
    std::vector<float> want(in.q.size());
    ref::attention(in.q.data(), round_trip(t, in.k, c.d).data(), round_trip(t, in.v, c.d).data(),
                   want.data(), c.n_tokens, c.n_head, c.n_head_kv, c.d, c.window, 1.0f);
    for (bool flash : {true, false}) {
      const auto got = run_cached(c, t, flash, in, true);
      test::expect_near_all(got.data(), want.data(), got.size(), 1e-5f, 1e-4f, name(c, t, flash));
    }
  }
}

TEST(Attention, F32CacheMatchesUnquantizedOracle) {
  // The f32 cache is exact: against plain ref::attention on the original rows.
  const Case c{30, 4, 2, 16, 7, 3};
  const Inputs in = inputs(c);
  std::vector<float> want(in.q.size());
  ref::attention(in.q.data(), in.k.data(), in.v.data(), want.data(), c.n_tokens, c.n_head,
                 c.n_head_kv, c.d, c.window, 1.0f);
  for (bool flash : {true, false}) {
    const auto got = run_cached(c, GgmlType::F32, flash, in, false);
    test::expect_near_all(got.data(), want.data(), got.size(), 1e-5f, 1e-4f, "f32 exact");
  }
}

TEST(Attention, QuantizedCacheIsLossyButClose) {
  // Sanity that the types really quantize: q4_0 differs from f32 more than q8_0 does, and both
  // stay within a few percent of the attention output's scale.
  const Case c{64, 4, 2, 64, 0, 64};
  Inputs in = inputs(c);
  for (float& x : in.q) x *= 0.125f;  // scores of order 1, as 1/sqrt(d) scaling gives
  const auto exact = run_cached(c, GgmlType::F32, true, in, false);
  double err[4] = {};
  for (int i = 0; i < 4; ++i) {
    const auto got = run_cached(c, kTypes[i], true, in, false);
    for (size_t j = 0; j < got.size(); ++j)
      err[i] = std::max(err[i], double(std::fabs(got[j] - exact[j])));
  }
  EXPECT_EQ(err[0], 0.0);
  EXPECT_GT(err[1], 0.0);
  EXPECT_LT(err[1], err[2]);
  EXPECT_LT(err[2], err[3]);
  // Measured: f16 4.3e-4, q8_0 7.1e-3, q4_0 0.15 (|v| <= 1, uniform random rows).
  EXPECT_LT(err[1], 2e-3);
  EXPECT_LT(err[2], 2e-2);
  EXPECT_LT(err[3], 0.3);
}

TEST(Attention, BatchSplitsGiveIdenticalBits) {
  // A query's result depends only on its position, not on the tokens beside it in the batch.
  for (GgmlType t : kTypes) {
    for (bool flash : {true, false}) {
      for (int64_t window : {int64_t{0}, int64_t{9}}) {
        const Case whole{45, 6, 2, 32, window, 45};  // group of 3
        const Inputs in = inputs(whole);
        const auto a = run_cached(whole, t, flash, in, false);
        for (int64_t batch : {1, 4, 16}) {
          Case c = whole;
          c.n_batch = batch;
          EXPECT_TRUE(same_bits(run_cached(c, t, flash, in, false), a))
              << name(c, t, flash) << " differs from one batch";
        }
      }
    }
  }
}

TEST(Attention, LongContextSeveralFlashChunks) {
  // 700 positions = 3 flash chunks; a 600-token prompt then 100 tokens decoded one at a time,
  // window 0 and a window that spans two chunks.
  for (int64_t window : {int64_t{0}, int64_t{300}}) {
    for (GgmlType t : {GgmlType::F16, GgmlType::Q4_0}) {
      Case c{700, 8, 1, 64, window, 700};
      const Inputs in = inputs(c);
      const int64_t kvrow = c.n_head_kv * c.d, qrow = c.n_head * c.d;
      std::vector<float> want(in.q.size());
      ref::attention(in.q.data(), round_trip(t, in.k, c.d).data(), round_trip(t, in.v, c.d).data(),
                     want.data(), c.n_tokens, c.n_head, c.n_head_kv, c.d, c.window, 1.0f);
      const auto one_pass = run_cached(c, t, true, in, false);
      test::expect_near_all(one_pass.data(), want.data(), want.size(), 1e-5f, 1e-4f,
                            name(c, t, true));
      // Prompt + decode through a ring sized for batches of 600.
      c.n_batch = 600;
      TestCache cache(c, t, true);
      std::vector<float> got(in.q.size());
      for (int64_t p = 0; p < c.n_tokens;) {
        const int64_t n = p == 0 ? 600 : 1;
        kv_store(cache.view, in.k.data() + p * kvrow, in.v.data() + p * kvrow, p, n);
        // Decoding: the per-chunk split and the one-task-per-head split must agree bitwise.
        flash_attention(cache.view, in.q.data() + p * qrow, got.data() + p * qrow, n, c.n_head, p,
                        c.window, 1.0f, p == 0 ? FlashSplit::kAuto : FlashSplit::kChunks);
        if (n == 1) {
          std::vector<float> other(static_cast<size_t>(qrow));
          flash_attention(cache.view, in.q.data() + p * qrow, other.data(), 1, c.n_head, p,
                          c.window, 1.0f, FlashSplit::kItems);
          ASSERT_EQ(std::memcmp(other.data(), got.data() + p * qrow, other.size() * 4), 0)
              << name(c, t, true) << " split modes differ at " << p;
        }
        p += n;
      }
      EXPECT_TRUE(same_bits(got, one_pass)) << name(c, t, true) << ": prompt+decode != one pass";
    }
  }
}

TEST(Attention, RecentRingAtF16) {
  // Quantized caches that keep their last `recent` positions at f16 too: each batch against
  // ref::attention_kv (which applies the same reading rule), any batch split and both flash
  // work splits give the same bits, and a ring covering the whole sequence gives the f16
  // cache's result (exactly when the rows are not rotated).
  for (GgmlType t : {GgmlType::Q8_0, GgmlType::Q4_0}) {
    for (bool rotate : {false, true}) {
      for (bool flash : {true, false}) {
        for (int64_t window : {int64_t{0}, int64_t{9}}) {
          for (int64_t recent : {int64_t{1}, int64_t{5}, int64_t{12}}) {
            const Case whole{45, 6, 2, 32, window, 45, recent};
            const Inputs in = inputs(whole);
            const auto a = run_cached(whole, t, flash, in, true, rotate);
            for (int64_t batch : {1, 4, 16}) {
              Case c = whole;
              c.n_batch = batch;
              EXPECT_TRUE(same_bits(run_cached(c, t, flash, in, true, rotate), a))
                  << name(c, t, flash, rotate) << " differs from one batch";
            }
          }
        }
        // recent >= every distance: all rows come from the f16 ring.
        const Case all{40, 4, 2, 64, 0, 8, 40};
        const Inputs in = inputs(all);
        const auto got = run_cached(all, t, flash, in, true, rotate);
        if (!rotate) {
          Case plain = all;
          plain.recent = 0;
          EXPECT_TRUE(same_bits(got, run_cached(plain, GgmlType::F16, flash, in, false)))
              << name(all, t, flash) << " != the f16 cache";
        } else {
          std::vector<float> want(in.q.size());
          ref::attention(in.q.data(), round_trip(GgmlType::F16, in.k, all.d, true).data(),
                         round_trip(GgmlType::F16, in.v, all.d, true).data(), want.data(),
                         all.n_tokens, all.n_head, all.n_head_kv, all.d, 0, 1.0f);
          test::expect_near_all(got.data(), want.data(), got.size(), 2e-3f, 1e-4f,
                                name(all, t, flash, rotate) + " vs rotated f16 rows");
        }
      }
    }
  }
  // Long context, several flash chunks: prompt then decoding, kAuto / kChunks / kItems splits.
  for (GgmlType t : {GgmlType::Q4_0}) {
    Case c{600, 8, 1, 64, 0, 600, 32};
    const Inputs in = inputs(c);
    const auto one_pass = run_cached(c, t, true, in, false, true);
    c.n_batch = 500;
    TestCache cache(c, t, true, true);
    const int64_t kvrow = c.n_head_kv * c.d, qrow = c.n_head * c.d;
    std::vector<float> got(in.q.size()), q_rot(in.q);
    kv_rotate(q_rot.data(), c.n_tokens * c.n_head, c.d);
    for (int64_t p = 0; p < c.n_tokens;) {
      const int64_t n = p == 0 ? 500 : 1;
      kv_store(cache.view, in.k.data() + p * kvrow, in.v.data() + p * kvrow, p, n);
      attention(cache.view, in.q.data() + p * qrow, got.data() + p * qrow, n, c.n_head, p, 0,
                1.0f);
      if (n == 1) {
        std::vector<float> x(static_cast<size_t>(qrow)), y(x.size());
        flash_attention(cache.view, q_rot.data() + p * qrow, x.data(), 1, c.n_head, p, 0, 1.0f,
                        FlashSplit::kItems);
        flash_attention(cache.view, q_rot.data() + p * qrow, y.data(), 1, c.n_head, p, 0, 1.0f,
                        FlashSplit::kChunks);
        ASSERT_TRUE(same_bits(x, y)) << "split modes differ at " << p;
      }
      p += n;
    }
    EXPECT_TRUE(same_bits(got, one_pass)) << "prompt+decode != one pass";
  }
}

TEST(Attention, LargeThreadedCase) {
  check({300, 8, 2, 64, 0, 300}, /*oracle_kv=*/false);
  check({300, 8, 2, 64, 64, 100}, /*oracle_kv=*/false);
}

TEST(Attention, RotationMakesQ4_0KeysCloser) {
  // Keys with outlier channels (a few dimensions 20x the rest), as trained models have: the
  // rotated q4_0 cache is much closer to the exact result than the plain one.
  const Case c{48, 4, 2, 64, 0, 48};
  Inputs in = inputs(c);
  for (float& x : in.q) x *= 0.125f;
  for (size_t i = 0; i < in.k.size(); i += 64) {
    in.k[i + 3] *= 20.0f;
    in.k[i + 40] *= 20.0f;
  }
  const auto exact = run_cached(c, GgmlType::F32, true, in, false);
  double err[2] = {};
  for (int rotate = 0; rotate < 2; ++rotate) {
    const auto got = run_cached(c, GgmlType::Q4_0, true, in, true, rotate == 1);
    for (size_t j = 0; j < got.size(); ++j) {
      err[rotate] += (got[j] - exact[j]) * double(got[j] - exact[j]);
    }
  }
  EXPECT_LT(err[1], 0.5 * err[0]) << "plain " << err[0] << " rotated " << err[1];
}

}  // namespace
}  // namespace nibble
