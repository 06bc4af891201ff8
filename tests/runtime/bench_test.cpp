// runtime/bench.h: the bytes-per-token rule on a hand-built GGUF, and the statistics.
#include "runtime/bench.h"

#include <gtest/gtest.h>

#include <cmath>

#include "gguf/gguf_writer.h"

namespace nibble {
namespace {

// A GGUF with one tensor of each kind, F32 (4 bytes per value) so the expected bytes are easy to
// write down by hand.
std::vector<uint8_t> make_file(bool tied, bool moe) {
  GgufWriter w;
  w.metadata().set("general.architecture", GgufValue::str("gemma4"));
  if (moe) {
    w.metadata().set("gemma4.expert_count", GgufValue::u32(4));
    w.metadata().set("gemma4.expert_used_count", GgufValue::u32(1));
  }
  auto add = [&](const std::string& name, std::vector<uint64_t> shape) {
    uint64_t n = 1;
    for (auto d : shape) n *= d;
    auto zero = [n](std::vector<uint8_t>& out) {
      out.resize(out.size() + n * 4, 0);
      return ok_status();
    };
    EXPECT_TRUE(w.add_tensor(name, GgmlType::F32, shape, zero).ok());
  };
  add("token_embd.weight", {8, 100});            // 100 rows of 8: a row is 32 bytes
  add("per_layer_token_embd.weight", {16, 100});  // a row is 64 bytes
  add("blk.0.attn_q.weight", {8, 8});             // 256 bytes
  add("blk.0.attn_norm.weight", {8});             // 32 bytes
  if (!tied) add("output.weight", {8, 100});      // 3200 bytes
  if (moe) add("blk.0.ffn_gate_up_exps.weight", {8, 4, 4});  // 512 bytes, 1 of 4 experts used
  auto bytes = w.write_to_memory();
  EXPECT_TRUE(bytes.ok());
  return bytes.value();
}

uint64_t bpt(const std::vector<uint8_t>& image) {
  auto f = GgufFile::parse(image.data(), image.size(), "test.gguf");
  EXPECT_TRUE(f.ok()) << f.error().message;
  auto b = weight_bytes_per_token(**f);
  EXPECT_TRUE(b.ok()) << b.error().message;
  return b.ok() ? b.value() : 0;
}

TEST(Bench, WeightBytesPerToken) {
  // Tied: one embedding row + the whole table as the output head, one PLE row, the rest in full.
  EXPECT_EQ(bpt(make_file(true, false)), 32u + 3200u + 64u + 256u + 32u);
  // Separate output head: one embedding row, the head in full.
  EXPECT_EQ(bpt(make_file(false, false)), 32u + 64u + 256u + 32u + 3200u);
  // MoE: a quarter of the expert tensor.
  EXPECT_EQ(bpt(make_file(true, true)), 32u + 3200u + 64u + 256u + 32u + 128u);
}

TEST(Bench, Statistics) {
  BenchResult r;
  r.tokens_per_s = {10, 14, 12, 11};
  summarize_bench(r);
  EXPECT_DOUBLE_EQ(r.median, 11.5);
  EXPECT_DOUBLE_EQ(r.mean, 11.75);
  // Sample variance: (3.0625 + 5.0625 + 0.0625 + 0.5625) / 3.
  EXPECT_NEAR(r.stddev, std::sqrt(8.75 / 3.0), 1e-12);
  BenchResult one;
  one.tokens_per_s = {5};
  summarize_bench(one);
  EXPECT_EQ(one.median, 5);
  EXPECT_EQ(one.stddev, 0);
}

TEST(Bench, ParamsAreChecked) {
  BenchParams p;
  EXPECT_TRUE(check_bench_params(p).ok());
  p.reps = 0;
  EXPECT_FALSE(check_bench_params(p).ok());
  p.reps = 1;
  p.n_prompt = 0;
  p.n_gen = 0;
  EXPECT_FALSE(check_bench_params(p).ok());
  p.n_gen = -1;
  EXPECT_FALSE(check_bench_params(p).ok());
  p.n_gen = 1;
  p.n_batch = 0;
  EXPECT_FALSE(check_bench_params(p).ok());
}

}  // namespace
}  // namespace nibble
