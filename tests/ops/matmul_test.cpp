// matmul (blocked, threaded, dequantizing on the fly) against ref::matmul for every weight type
// and awkward sizes, including misaligned activations.
#include "ops/matmul.h"

#include <gtest/gtest.h>

#include "ops/reference/reference_ops.h"
#include "ops_test_util.h"
#include "quant/quant.h"

namespace nibble {
namespace {

WeightMatrix make_weights(GgmlType type, int64_t n_in, int64_t n_out, uint32_t seed,
                          std::vector<uint8_t>& storage) {
  const auto v = test::random_floats(static_cast<size_t>(n_in * n_out), seed);
  const uint64_t rb = ggml_row_size(type, static_cast<uint64_t>(n_in));
  storage.assign(rb * static_cast<uint64_t>(n_out), 0);
  for (int64_t o = 0; o < n_out; ++o) {
    quantize_row(type, v.data() + o * n_in, storage.data() + o * rb, static_cast<uint64_t>(n_in));
  }
  return WeightMatrix{type, storage.data(), n_in, n_out, rb};
}

void check(GgmlType type, int64_t n_in, int64_t n_out, int64_t n_tokens, size_t misalign) {
  std::vector<uint8_t> storage;
  const WeightMatrix w =
      make_weights(type, n_in, n_out, static_cast<uint32_t>(n_in * 31 + n_out), storage);
  std::vector<float> xbuf(static_cast<size_t>(n_tokens * n_in) + misalign);
  const auto xv = test::random_floats(static_cast<size_t>(n_tokens * n_in), 99);
  std::copy(xv.begin(), xv.end(), xbuf.begin() + static_cast<std::ptrdiff_t>(misalign));
  const float* x = xbuf.data() + misalign;
  std::vector<float> y(static_cast<size_t>(n_tokens * n_out)), want(y.size());
  matmul(w, x, n_tokens, y.data());
  ref::matmul(type, storage.data(), n_in, n_out, x, n_tokens, want.data());
  // float32 accumulation over n_in terms of size ~1.
  const float atol = 2e-6f * static_cast<float>(n_in);
  test::expect_near_all(y.data(), want.data(), y.size(), atol, 1e-5f,
                        std::string(ggml_type_name(type)) + " n_in " + std::to_string(n_in) +
                            " n_out " + std::to_string(n_out) + " n_tokens " +
                            std::to_string(n_tokens));
}

TEST(Matmul, FloatTypesAwkwardSizes) {
  for (GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::BF16}) {
    for (int64_t n_in : {1, 2, 3, 7, 31, 32, 33, 255, 4097}) {
      for (int64_t n_out : {1, 3, 17, 33}) {
        for (int64_t n_tokens : {1, 2, 5}) check(t, n_in, n_out, n_tokens, n_in % 3);
      }
    }
  }
}

// Integer-quantized types (Q8_0, Q4_0, K-quants) quantize the activations too: they are checked
// against a float oracle on quantized activations in int8_kernels_test.cpp. Types with no integer
// kernel run the float path and must match ref::matmul as the float types do.
TEST(Matmul, BlockQuantTypesOnTheFloatPath) {
  for (GgmlType t : {GgmlType::SFP8}) {
    for (int64_t n_in : {32, 64, 96, 4096}) {
      for (int64_t n_out : {1, 2, 7, 31, 255}) {
        for (int64_t n_tokens : {1, 3, 17}) check(t, n_in, n_out, n_tokens, 1);
      }
    }
  }
}

TEST(Matmul, LargeEnoughToBeThreaded) {
  check(GgmlType::F32, 512, 1024, 9, 0);
  check(GgmlType::BF16, 1024, 777, 6, 2);
}

TEST(Matmul, ResultDoesNotDependOnBatch) {
  // Token t's output is bit-identical whether it is computed alone (BF16 decoding widens rows on
  // the fly, threaded from 128K weights) or within a batch (rows widened into a buffer first).
  for (auto [n_in, n_out] : {std::pair<int64_t, int64_t>{256, 300}, {4099, 130}, {1536, 1031}}) {
    std::vector<uint8_t> storage;
    const WeightMatrix w = make_weights(GgmlType::BF16, n_in, n_out, 5, storage);
    const auto x = test::random_floats(static_cast<size_t>(n_in * 7), 3);
    std::vector<float> all(static_cast<size_t>(n_out * 7)), one(static_cast<size_t>(n_out));
    matmul(w, x.data(), 7, all.data());
    for (int64_t t = 0; t < 7; ++t) {
      matmul(w, x.data() + t * n_in, 1, one.data());
      for (int64_t o = 0; o < n_out; ++o)
        ASSERT_EQ(one[o], all[t * n_out + o]) << "n_in " << n_in << " token " << t << " row " << o;
    }
  }
}

TEST(Matmul, PairEqualsTwoMatmuls) {
  // matmul_pair runs a decoded token through both matrices as one job (same type and width) or
  // falls back to two calls: either way the bits of two plain matmul calls, for every row of
  // both (the second matrix's tasks come after the first's).
  struct Case {
    GgmlType t1, t2;
    int64_t n_in, n_out1, n_out2, n_tokens;
  };
  for (const Case& c : {Case{GgmlType::Q4_0, GgmlType::Q4_0, 1536, 2052, 1030, 1},
                        Case{GgmlType::Q4_K, GgmlType::Q4_K, 512, 300, 300, 1},
                        Case{GgmlType::Q2_K, GgmlType::Q2_K, 256, 600, 8, 1},
                        Case{GgmlType::Q3_K, GgmlType::Q3_K, 512, 260, 140, 1},
                        Case{GgmlType::IQ4_XS, GgmlType::IQ4_XS, 768, 128, 300, 1},
                        Case{GgmlType::Q5_0, GgmlType::Q5_0, 1024, 200, 330, 1},  // unpacked rows
                        Case{GgmlType::Q8_0, GgmlType::Q6_K, 512, 200, 200, 1},  // two calls
                        Case{GgmlType::Q4_0, GgmlType::Q4_0, 256, 90, 70, 5},    // a batch
                        Case{GgmlType::BF16, GgmlType::BF16, 256, 130, 130, 1}}) {
    std::vector<uint8_t> s1, s2;
    const WeightMatrix w1 = make_weights(c.t1, c.n_in, c.n_out1, 7, s1);
    const WeightMatrix w2 = make_weights(c.t2, c.n_in, c.n_out2, 8, s2);
    const auto x = test::random_floats(static_cast<size_t>(c.n_in * c.n_tokens), 11);
    std::vector<float> y1(static_cast<size_t>(c.n_out1 * c.n_tokens), -1.0f),
        y2(static_cast<size_t>(c.n_out2 * c.n_tokens), -1.0f), w_1(y1.size()), w_2(y2.size());
    matmul_pair(w1, w2, x.data(), c.n_tokens, y1.data(), y2.data());
    matmul(w1, x.data(), c.n_tokens, w_1.data());
    matmul(w2, x.data(), c.n_tokens, w_2.data());
    const std::string what = std::string(ggml_type_name(c.t1)) + "/" + ggml_type_name(c.t2);
    for (size_t i = 0; i < y1.size(); ++i) ASSERT_EQ(y1[i], w_1[i]) << what << " first, " << i;
    for (size_t i = 0; i < y2.size(); ++i) ASSERT_EQ(y2[i], w_2[i]) << what << " second, " << i;
  }
}

}  // namespace
}  // namespace nibble
