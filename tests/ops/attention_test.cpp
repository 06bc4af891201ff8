// Cached attention (linear and ring caches, any batch split) against ref::attention over the
// whole sequence, with GQA and sliding windows.
#include "ops/attention.h"

#include <gtest/gtest.h>

#include "ops/reference/reference_ops.h"
#include "ops_test_util.h"

namespace nibble {
namespace {

struct Case {
  int64_t n_tokens, n_head, n_head_kv, d, window, n_batch;
};

void check(const Case& c) {
  const auto q = test::random_floats(static_cast<size_t>(c.n_tokens * c.n_head * c.d), 1, 2.0f);
  const auto k = test::random_floats(static_cast<size_t>(c.n_tokens * c.n_head_kv * c.d), 2, 2.0f);
  const auto v = test::random_floats(static_cast<size_t>(c.n_tokens * c.n_head_kv * c.d), 3);
  std::vector<float> want(q.size()), got(q.size());
  ref::attention(q.data(), k.data(), v.data(), want.data(), c.n_tokens, c.n_head, c.n_head_kv, c.d,
                 c.window, 1.0f);
  // Ring of window - 1 + n_batch slots when windowed (as the runtime sizes it), else linear.
  KvView kv;
  kv.n_head_kv = c.n_head_kv;
  kv.head_dim = c.d;
  kv.ring = c.window > 0;
  kv.n_slots = c.window > 0 ? c.window - 1 + c.n_batch : c.n_tokens;
  std::vector<float> kc(static_cast<size_t>(kv.n_slots * kv.row_size()));
  std::vector<float> vc(kc.size());
  kv.k = kc.data();
  kv.v = vc.data();
  const int64_t qrow = c.n_head * c.d, kvrow = c.n_head_kv * c.d;
  for (int64_t p = 0; p < c.n_tokens; p += c.n_batch) {
    const int64_t n = std::min(c.n_batch, c.n_tokens - p);
    kv_store(kv, k.data() + p * kvrow, v.data() + p * kvrow, p, n);
    attention(kv, q.data() + p * qrow, got.data() + p * qrow, n, c.n_head, p, c.window, 1.0f);
  }
  test::expect_near_all(got.data(), want.data(), got.size(), 1e-5f, 1e-4f,
                        "attention T=" + std::to_string(c.n_tokens) + " W=" +
                            std::to_string(c.window) + " batch=" + std::to_string(c.n_batch));
}

TEST(Attention, FullCausal) {
  check({1, 1, 1, 8, 0, 1});
  check({33, 4, 2, 16, 0, 33});
  check({33, 4, 1, 16, 0, 5});
}

TEST(Attention, SlidingWindowRingWrapsAround) {
  // Sequences of 3x the window and more, processed one token at a time and in batches.
  for (int64_t batch : {1, 2, 4, 7}) {
    check({24, 4, 2, 8, 8, batch});
    check({50, 2, 1, 16, 5, batch});
  }
  check({10, 2, 2, 8, 1, 3});  // window 1: each token sees only itself
}

TEST(Attention, LargeThreadedCase) {
  check({300, 8, 2, 64, 0, 300});
  check({300, 8, 2, 64, 64, 100});
}

}  // namespace
}  // namespace nibble
