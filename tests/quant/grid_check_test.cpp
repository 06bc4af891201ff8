// Q4_0 grids and quantization-aware-trained (QAT) checkpoints (quant/grid_check.h).
//
// When are QAT weights reproduced exactly by Q4_0? llama.cpp's reference quantizer sets
// d = x_max / -8 from the block's (first) largest-magnitude value x_max and rounds every value to
// the nearest of (q - 8) * fp16(d), q = 0..15. A block on the grid (q - 8) * d of an f16 d:
//   * is reproduced bit for bit when its largest-magnitude value is -8d (q = 0): the quantizer
//     then finds d itself, and x * (1/d) + 8.5 truncates to q for every value;
//   * is generally NOT reproduced when no value sits at -8d: e.g. the largest is 7d (q = 15), the
//     quantizer picks d' = -7d/8 and values move onto the finer, shifted grid (k * 7d/8); only
//     values that are multiples of 7d survive.
// So a QAT checkpoint is lossless under llama.cpp's Q4_0 only when its training followed the same
// convention (block scale = x_max / -8); one trained with another scale rule can lie on a grid
// and still change when quantized. `inspect` reports both counts.
// The tests build both kinds of blocks, a whole synthetic QAT checkpoint (bf16 safetensors whose
// weights lie on Q4_0 grids), convert it, check `inspect`'s report, quantize it to Q4_0 with the
// recipe and with --pure and with the converter, and compare dequantize(quantize(w)) with w.
#include "quant/grid_check.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>

#include "model_fixtures.h"
#include "quant/quantize_model.h"
#include "util/fp16.h"

namespace nibble {
namespace {

// A block (q - 8) * d with the given q values.
std::vector<float> grid_block(const std::vector<int>& q, float d) {
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(q[j] - 8) * d;
  return x;
}

std::vector<int> random_q(uint32_t seed, int lo, int hi) {
  qtest::Lcg g{seed};
  std::vector<int> q(32);
  for (auto& v : q)
    v = lo + static_cast<int>((g.next(1.0f) + 1.0f) * 0.5f * (hi - lo + 1)) % (hi - lo + 1);
  return q;
}

TEST(Q4_0Grid, BlockWithMinus8dIsExact) {
  auto q = random_q(1, 1, 15);
  q[5] = 0;  // -8d: the largest magnitude
  for (float d :
       {0.0078125f, 0.01171875f, -0.0234375f, 3.0f, f16_to_f32(0x0001) /* f16 subnormal */}) {
    const auto x = grid_block(q, d);
    float found = 0.0f;
    EXPECT_TRUE(q4_0_block_on_grid(x.data(), &found)) << d;
    EXPECT_EQ(found * -8.0f, x[5]) << d;
    EXPECT_TRUE(q4_0_block_exact(x.data())) << d;
  }
}

TEST(Q4_0Grid, BlockWithoutMinus8dIsOnGridButNotExact) {
  auto q = random_q(2, 2, 15);
  q[0] = 15;  // 7d is the largest magnitude, nothing at -8d
  const float d = 0.0078125f;
  auto x = grid_block(q, d);
  EXPECT_TRUE(q4_0_block_on_grid(x.data()));
  EXPECT_FALSE(q4_0_block_exact(x.data()));
  // What the quantizer does instead: d' = 7d / -8, values rounded onto multiples of 7d/8.
  uint8_t b[18];
  float y[32];
  quantize_row(GgmlType::Q4_0, x.data(), b, 32);
  dequantize_row(GgmlType::Q4_0, b, y, 32);
  uint16_t dh;
  std::memcpy(&dh, b, 2);
  EXPECT_EQ(f16_to_f32(dh), 7.0f * d / -8.0f);
  int moved = 0;
  for (int j = 0; j < 32; ++j) moved += y[j] != x[j];
  EXPECT_GT(moved, 16);
  // The same block with its largest value flipped to -7d and one -8d added: exact again.
  x[0] = -7.0f * d;
  x[1] = -8.0f * d;
  EXPECT_TRUE(q4_0_block_exact(x.data()));
}

TEST(Q4_0Grid, ZeroOffGridAndUnrepresentableScale) {
  std::vector<float> z(32, 0.0f);
  EXPECT_TRUE(q4_0_block_on_grid(z.data()));
  EXPECT_TRUE(q4_0_block_exact(z.data()));
  qtest::Lcg g{3};
  std::vector<float> r(32);
  for (auto& v : r) v = g.next(0.1f);
  EXPECT_FALSE(q4_0_block_on_grid(r.data()));
  EXPECT_FALSE(q4_0_block_exact(r.data()));
  // A grid whose d is not an f16 (11 significant bits needed: 1 + 2^-12) is not a Q4_0 grid.
  auto q = random_q(4, 1, 15);
  q[3] = 0;
  const auto x = grid_block(q, 1.0f + std::ldexp(1.0f, -12));
  EXPECT_FALSE(q4_0_block_on_grid(x.data()));
  std::vector<float> inf(32, 0.0f);
  inf[2] = INFINITY;
  EXPECT_FALSE(q4_0_block_on_grid(inf.data()));
}

TEST(Q4_0Grid, TensorScan) {
  // 4 rows of 64: all blocks exact, then one row made off-grid.
  std::vector<float> x;
  for (int b = 0; b < 8; ++b) {
    auto q = random_q(10 + b, 1, 15);
    q[b] = 0;
    const auto blk = grid_block(q, 0.001953125f * (1 + b % 3));
    x.insert(x.end(), blk.begin(), blk.end());
  }
  auto bytes = [](const std::vector<float>& v) {
    return reinterpret_cast<const uint8_t*>(v.data());
  };
  GridCheck c = check_q4_0_grid(GgmlType::F32, bytes(x), x.size(), 64);
  EXPECT_TRUE(c.complete);
  EXPECT_TRUE(c.on_grid());
  EXPECT_TRUE(c.lossless());
  EXPECT_EQ(c.n_blocks, 8u);
  // As bf16 (every value here is a bf16): same answer.
  std::vector<uint16_t> h(x.size());
  for (size_t i = 0; i < x.size(); ++i) h[i] = f32_to_bf16(x[i]);
  EXPECT_TRUE(
      check_q4_0_grid(GgmlType::BF16, reinterpret_cast<const uint8_t*>(h.data()), h.size(), 64)
          .lossless());
  x[100] += 1e-4f;
  c = check_q4_0_grid(GgmlType::F32, bytes(x), x.size(), 64, /*stop_early=*/false);
  EXPECT_TRUE(c.complete);
  EXPECT_FALSE(c.on_grid());
  EXPECT_EQ(c.n_on_grid, 7u);
  c = check_q4_0_grid(GgmlType::F32, bytes(x), x.size(), 64);
  EXPECT_FALSE(c.on_grid());
  // Rows that are not a multiple of 32 cannot be Q4_0 at all.
  EXPECT_FALSE(check_q4_0_grid(GgmlType::F32, bytes(x), 48, 16).on_grid());
}

// ---- a synthetic QAT checkpoint ---------------------------------------------------------------

const char* kOffByOne = "model.layers.0.self_attn.q_proj.weight";  // on a grid, max at +7d

// Copies rand-moe's HF folder and replaces every bf16 matrix with values on a Q4_0 grid: one
// d = (8 + t % 8) * 2^-10 per tensor (4 significant bits, so every (q - 8) * d is a bf16), and
// q = 0 (-8d) wherever the sum of the element's indices is a multiple of 32, q in 1..15 elsewhere.
// Every 32-aligned run along ANY axis then holds exactly one -8d: the property survives the
// converter's transposes and fusions. kOffByOne instead gets q = 15 (+7d) at those places and
// q in 2..15 elsewhere: on a grid, not lossless.
std::string write_qat_checkpoint() {
  const std::string src = test::source_dir() + "/tests/fixtures/models/rand-moe/hf";
  const std::string dir = test::temp_dir() + "/qat-hf";
  std::filesystem::create_directories(dir);
  for (const auto& e : std::filesystem::directory_iterator(src)) {
    if (e.path().filename() != "model.safetensors")
      std::filesystem::copy_file(e.path(), dir + "/" + e.path().filename().string());
  }
  auto tensors = test::read_safetensors(src + "/model.safetensors");
  int t_index = 0;
  for (auto& [name, st] : tensors) {
    if (st.dtype != "BF16" || st.shape.size() < 2) continue;
    const bool off = name == kOffByOne;
    const float d = static_cast<float>(8 + t_index % 8) * std::ldexp(1.0f, -10);
    ++t_index;
    qtest::Lcg g{static_cast<uint32_t>(1000 + t_index)};
    uint64_t n = 1;
    for (uint64_t s : st.shape) n *= s;
    std::vector<uint64_t> idx(st.shape.size(), 0);
    for (uint64_t i = 0; i < n; ++i) {
      uint64_t sum = 0;
      for (uint64_t v : idx) sum += v;
      int q;
      if (sum % 32 == 0) {
        q = off ? 15 : 0;
      } else {
        const int lo = off ? 2 : 1;
        q = lo + static_cast<int>((g.next(1.0f) + 1.0f) * 0.5f * (16 - lo)) % (16 - lo);
      }
      const float x = static_cast<float>(q - 8) * d;
      const uint16_t b = f32_to_bf16(x);
      EXPECT_EQ(bf16_to_f32(b), x);
      std::memcpy(st.bytes.data() + 2 * i, &b, 2);
      for (size_t k = idx.size(); k-- > 0;) {  // row-major increment
        if (++idx[k] < st.shape[k]) break;
        idx[k] = 0;
      }
    }
  }
  test::write_safetensors(dir + "/model.safetensors", tensors);
  return dir;
}

std::string convert_to(const std::string& hf, GgmlType type) {
  ConvertOptions o;
  o.hf_dir = hf;
  o.out_path = test::temp_dir() + "/qat-" + ggml_type_name(type) + ".gguf";
  o.type = type;
  auto r = convert_gemma4_checkpoint(o);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  return o.out_path;
}

// For every Q4_0 tensor of `out`: dequantize equals the bf16 weights of `ref`, bit for bit.
// Returns how many Q4_0 tensors were compared; `mismatched` collects the others.
int compare_q4_0(const GgufFile& ref, const GgufFile& out, std::vector<std::string>* mismatched) {
  int n = 0;
  for (const auto& t : out.tensors()) {
    if (t.type != GgmlType::Q4_0) continue;
    const GgufTensorInfo* r = ref.find_tensor(t.name);
    EXPECT_NE(r, nullptr) << t.name;
    if (r == nullptr) continue;
    const auto a = qtest::values_of(*r), b = qtest::values_of(t);
    ++n;
    if (std::memcmp(a.data(), b.data(), a.size() * 4) != 0) mismatched->push_back(t.name);
  }
  return n;
}

TEST(QatCheckpoint, OnGridWeightsQuantizeLosslesslyToQ4_0) {
  const std::string hf = write_qat_checkpoint();
  const std::string bf16 = convert_to(hf, GgmlType::BF16);
  auto ref = GgufFile::open(bf16);
  ASSERT_TRUE(ref.ok()) << ref.error().message;

  // The report: every quantizable tensor on a grid, all but one lossless.
  const QatReport rep = check_qat_file(*ref.value());
  ASSERT_GT(rep.tensors.size(), 30u);
  EXPECT_EQ(rep.n_on_grid(), rep.tensors.size());
  EXPECT_EQ(rep.n_lossless(), rep.tensors.size() - 1);
  for (const auto& t : rep.tensors) {
    if (!t.lossless) {
      EXPECT_EQ(t.name, "blk.0.attn_q.weight");
    }
  }
  auto ins = test::run_nibble({"inspect", bf16});
  ASSERT_EQ(ins.exit_code, 0) << ins.err;
  const std::string line =
      std::to_string(rep.tensors.size() - 1) + " of " + std::to_string(rep.tensors.size()) +
      " quantizable tensors lie on a Q4_0 grid (QAT): Q4_0 is lossless for them";
  EXPECT_NE(ins.out.find(line), std::string::npos) << ins.out;
  EXPECT_NE(ins.out.find("1 more lie on a Q4_0 grid"), std::string::npos) << ins.out;
  // An ordinary checkpoint: none.
  auto plain = test::run_nibble({"inspect", qtest::fixture_gguf("rand-moe")});
  EXPECT_NE(plain.out.find("0 of "), std::string::npos) << plain.out;

  // Q4_0 with the recipe (token embedding -> Q8_0, attn_k/v -> Q8_0 for 8 experts), with --pure
  // (everything Q4_0), and the converter's own q4_0: every Q4_0 tensor reproduces the weights,
  // except the deliberately off-by-one tensor.
  for (int variant = 0; variant < 3; ++variant) {
    SCOPED_TRACE(variant);
    std::string out;
    if (variant < 2) {
      QuantizeOptions o;
      o.input_path = bf16;
      o.output_path = out = test::temp_dir() + "/qat-q4_0.gguf";
      o.ftype = LlamaFtype::Q4_0;
      o.recipe.pure = variant == 1;
      auto r = quantize_model(o);
      ASSERT_TRUE(r.ok()) << r.error().message;
    } else {
      out = convert_to(hf, GgmlType::Q4_0);
    }
    auto q = GgufFile::open(out);
    ASSERT_TRUE(q.ok());
    std::vector<std::string> mismatched;
    const int n = compare_q4_0(*ref.value(), *q.value(), &mismatched);
    EXPECT_GT(n, 20);
    EXPECT_EQ(mismatched, std::vector<std::string>{"blk.0.attn_q.weight"});
  }
}

}  // namespace
}  // namespace nibble
