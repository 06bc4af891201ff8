// Streaming-read bandwidth test (see membw.h). Each thread reads its own contiguous slice with
// several independent accumulators, so the loop is bound by memory, not by a dependency chain.
#include "util/membw.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <new>
#include <thread>
#include <vector>

namespace nibble {

namespace {

uint64_t read_slice(const uint64_t* p, uint64_t n) {
  uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0;
  uint64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    a0 += p[i];
    a1 += p[i + 1];
    a2 += p[i + 2];
    a3 += p[i + 3];
    a4 += p[i + 4];
    a5 += p[i + 5];
    a6 += p[i + 6];
    a7 += p[i + 7];
  }
  for (; i < n; ++i) a0 += p[i];
  return a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
}

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};

}  // namespace

Result<MemBandwidth> measure_memory_bandwidth(uint64_t buffer_bytes, int runs, int threads) {
  if (buffer_bytes < (1ull << 20) || buffer_bytes > (64ull << 30)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "membw: buffer of %llu bytes; 1 MiB .. 64 GiB allowed",
                      static_cast<unsigned long long>(buffer_bytes));
  }
  if (runs < 1 || runs > 100) {
    return make_error(ErrorCode::kInvalidArgument, "membw: %d runs; 1..100 allowed", runs);
  }
  if (threads < 0 || threads > 1024) {
    return make_error(ErrorCode::kInvalidArgument, "membw: %d threads; 0..1024 allowed", threads);
  }
  if (threads == 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const uint64_t n = buffer_bytes / sizeof(uint64_t);
  std::unique_ptr<uint64_t, FreeDeleter> buf(
      static_cast<uint64_t*>(std::aligned_alloc(4096, n * sizeof(uint64_t))));
  if (!buf) {
    return make_error(ErrorCode::kIo, "membw: cannot allocate %llu MiB",
                      static_cast<unsigned long long>(buffer_bytes >> 20));
  }
  uint64_t* data = buf.get();
  // Touch every page (in parallel, so first-touch places pages near the threads that read them).
  std::vector<uint64_t> sums(static_cast<size_t>(threads) * 8, 0);  // one cache line each
  auto slice = [&](int t, uint64_t* begin, uint64_t* count) {
    const uint64_t per = (n / threads) & ~uint64_t{7};
    *begin = per * t;
    *count = t == threads - 1 ? n - *begin : per;
  };
  auto run_threads = [&](auto&& fn) {
    std::vector<std::thread> pool;
    for (int t = 1; t < threads; ++t) pool.emplace_back(fn, t);
    fn(0);
    for (auto& th : pool) th.join();
  };
  run_threads([&](int t) {
    uint64_t b, c;
    slice(t, &b, &c);
    for (uint64_t i = 0; i < c; ++i) data[b + i] = (b + i) * 0x9E3779B97F4A7C15ull;
  });
  std::vector<double> rates;
  for (int r = 0; r < runs; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    run_threads([&](int t) {
      uint64_t b, c;
      slice(t, &b, &c);
      sums[static_cast<size_t>(t) * 8] += read_slice(data + b, c);
    });
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    rates.push_back(static_cast<double>(n * sizeof(uint64_t)) / std::max(s, 1e-9) / 1e9);
  }
  // The sums are data-dependent; folding them into a volatile keeps the reads from being elided.
  volatile uint64_t sink = 0;
  for (uint64_t s : sums) sink = sink + s;
  MemBandwidth m;
  std::sort(rates.begin(), rates.end());
  m.gb_per_s = rates.back();
  m.median_gb_per_s = rates[rates.size() / 2];
  m.threads = threads;
  m.buffer_bytes = n * sizeof(uint64_t);
  m.runs = runs;
  return m;
}

}  // namespace nibble
