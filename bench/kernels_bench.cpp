// Kernel micro-benchmarks at Gemma 4 E2B shapes: matmul for each weight type, decode (1 token:
// memory-bound, reported as weight bytes per second) and a prompt batch (compute-bound, reported
// as multiply-adds per second); activation quantization; attention over the KV cache is
// measured end to end by `nibble bench`.
//   build/release/bench/nibble_kernel_bench [--benchmark_filter=Q4_0]
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "ops/int8_acts.h"
#include "ops/int8_dot.h"
#include "ops/matmul.h"
#include "quant/quant.h"
#include "util/thread_pool.h"

namespace nibble {
namespace {

struct Weights {
  std::vector<uint8_t> bytes;
  WeightMatrix w;
};

Weights make(GgmlType type, int64_t n_in, int64_t n_out) {
  Weights m;
  const uint64_t rb = ggml_row_size(type, static_cast<uint64_t>(n_in));
  m.bytes.resize(rb * static_cast<uint64_t>(n_out));
  std::mt19937 rng(42);
  std::normal_distribution<float> dist(0.0f, 0.05f);
  std::vector<float> row(static_cast<size_t>(n_in));
  // Quantizing every row is slow for the K-quants: quantize 64 distinct rows and repeat them.
  for (int64_t o = 0; o < n_out; ++o) {
    if (o < 64) {
      for (auto& v : row) v = dist(rng);
      quantize_row(type, row.data(), m.bytes.data() + o * rb, static_cast<uint64_t>(n_in));
    } else {
      std::copy_n(m.bytes.data() + (o % 64) * rb, rb, m.bytes.data() + o * rb);
    }
  }
  m.w = WeightMatrix{type, m.bytes.data(), n_in, n_out, rb};
  return m;
}

// args: type id, n_in, n_out, n_tokens
void BM_Matmul(benchmark::State& state) {
  const auto type = static_cast<GgmlType>(state.range(0));
  const int64_t n_in = state.range(1), n_out = state.range(2), n_tok = state.range(3);
  const Weights m = make(type, n_in, n_out);
  std::vector<float> x(static_cast<size_t>(n_in * n_tok)), y(static_cast<size_t>(n_out * n_tok));
  std::mt19937 rng(1);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (auto& v : x) v = dist(rng);
  for (auto _ : state) {
    matmul(m.w, x.data(), n_tok, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.SetLabel(std::string(ggml_type_name(type)) + " " + int8_dot_isa() + " threads " +
                 std::to_string(pool_threads()));
  if (n_tok == 1) {
    state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(m.bytes.size()));
  } else {
    state.counters["MAC/s"] = benchmark::Counter(
        static_cast<double>(n_in * n_out * n_tok) * static_cast<double>(state.iterations()),
        benchmark::Counter::kIsRate);
  }
}

void matmul_args(benchmark::internal::Benchmark* b) {
  for (GgmlType t : {GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q6_K,
                     GgmlType::Q5_K, GgmlType::Q3_K, GgmlType::Q2_K, GgmlType::IQ4_XS,
                     GgmlType::BF16, GgmlType::F16}) {
    // E2B: FFN up (1536 -> 6144) decoding, and a 512-token prompt batch.
    b->Args({static_cast<int64_t>(t), 1536, 6144, 1});
    b->Args({static_cast<int64_t>(t), 1536, 6144, 512});
  }
  // L2-resident decoding (the kernels' compute speed, without the memory system): 1536 x 1024.
  for (GgmlType t : {GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q6_K})
    b->Args({static_cast<int64_t>(t), 1536, 1024, 1});
  // Much larger than the caches (DRAM-bound decoding): the E2B output head (Q6_K in the Q4_0 and
  // Q4_K_M recipes) and a 100 MB Q4_0 matrix.
  b->Args({static_cast<int64_t>(GgmlType::Q6_K), 1536, 262144, 1});
  b->Args({static_cast<int64_t>(GgmlType::Q4_0), 1536, 131072, 1});
  // Long rows (E2B's wide FFN down projection, 12288 -> 1536; and a 113 MB matrix of such rows):
  // a row's activations no longer fit beside the streaming weights in L1.
  b->Args({static_cast<int64_t>(GgmlType::Q4_0), 12288, 1536, 1});
  b->Args({static_cast<int64_t>(GgmlType::Q4_0), 12288, 16384, 1});
  // E2B's smallest decoding matrices, where fixed costs (threads, activations) show: the
  // per-layer input projection (256 -> 1536) and K (1536 -> 256).
  b->Args({static_cast<int64_t>(GgmlType::Q4_0), 256, 1536, 1});
  b->Args({static_cast<int64_t>(GgmlType::Q4_0), 1536, 256, 1});
  // Long rows from L2 (12288 x 96, 0.66 MB): the kernel's compute speed on them.
  b->Args({static_cast<int64_t>(GgmlType::Q4_0), 12288, 96, 1});
  b->UseRealTime()->Unit(benchmark::kMillisecond);
}
BENCHMARK(BM_Matmul)->Apply(matmul_args);

void BM_QuantizeActs(benchmark::State& state) {
  const int64_t n = 1536, n_tok = state.range(0);
  std::vector<float> x(static_cast<size_t>(n * n_tok), 0.5f);
  Int8Acts acts;
  for (auto _ : state) {
    quantize_acts(x.data(), n_tok, n, true, acts);
    benchmark::DoNotOptimize(acts.q.data());
  }
  state.SetItemsProcessed(state.iterations() * n * n_tok);
}
BENCHMARK(BM_QuantizeActs)->Arg(1)->Arg(512)->UseRealTime();

}  // namespace
}  // namespace nibble

BENCHMARK_MAIN();
