// Streaming-read bandwidth test (see membw.h). Each thread reads its own contiguous slice with
// several independent accumulators, so the loop is bound by memory, not by a dependency chain.
#include "util/membw.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace nibble {

namespace {

// Software prefetches this many bytes ahead (0: none) on top of the hardware prefetcher: they
// add ~10% on Zen 5, and the decoding kernels use them (ops/int8_dot_kernels.h).
constexpr uint64_t kAhead = 4096;

template <uint64_t kPrefetch>
inline void prefetch_line(const uint64_t* p) {
  if constexpr (kPrefetch > 0) __builtin_prefetch(reinterpret_cast<const char*>(p) + kPrefetch);
}

template <uint64_t kPrefetch>
uint64_t read_scalar(const uint64_t* p, uint64_t n) {
  uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0;
  uint64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    prefetch_line<kPrefetch>(p + i);
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

#if defined(__x86_64__) || defined(__i386__)
// Slices start 64-byte aligned (the buffer is page-aligned, slices are multiples of 8 words).
template <uint64_t kPrefetch>
__attribute__((target("avx512f"))) uint64_t read_avx512(const uint64_t* p, uint64_t n) {
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
  uint64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    for (int l = 0; l < 4; ++l) prefetch_line<kPrefetch>(p + i + 8 * l);
    a0 = _mm512_add_epi64(a0, _mm512_load_si512(p + i));
    a1 = _mm512_add_epi64(a1, _mm512_load_si512(p + i + 8));
    a2 = _mm512_add_epi64(a2, _mm512_load_si512(p + i + 16));
    a3 = _mm512_add_epi64(a3, _mm512_load_si512(p + i + 24));
  }
  const __m512i s = _mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3));
  return static_cast<uint64_t>(_mm512_reduce_add_epi64(s)) + read_scalar<0>(p + i, n - i);
}

template <uint64_t kPrefetch>
__attribute__((target("avx2"))) uint64_t read_avx2(const uint64_t* p, uint64_t n) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  uint64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    for (int l = 0; l < 2; ++l) prefetch_line<kPrefetch>(p + i + 8 * l);
    a0 = _mm256_add_epi64(a0, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i)));
    a1 = _mm256_add_epi64(a1, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 4)));
    a2 = _mm256_add_epi64(a2, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 8)));
    a3 = _mm256_add_epi64(a3, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 12)));
  }
  alignas(32) uint64_t lanes[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes),
                     _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3)));
  return lanes[0] + lanes[1] + lanes[2] + lanes[3] + read_scalar<0>(p + i, n - i);
}
#endif

using ReadFn = uint64_t (*)(const uint64_t*, uint64_t);

struct Reader {
  ReadFn fn;
  const char* name;
};

// The widest loads the CPU has, without and with software prefetches: measure() keeps the best.
std::vector<Reader> widest_readers() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) {
    return {{read_avx512<0>, "avx512"}, {read_avx512<kAhead>, "avx512+prefetch"}};
  }
  if (__builtin_cpu_supports("avx2")) {
    return {{read_avx2<0>, "avx2"}, {read_avx2<kAhead>, "avx2+prefetch"}};
  }
#endif
  return {{read_scalar<0>, "scalar"}, {read_scalar<kAhead>, "scalar+prefetch"}};
}

template <typename Fn>
void run_threads(int threads, Fn&& fn) {
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(fn, t);
  fn(0);
  for (auto& th : pool) th.join();
}

}  // namespace

Result<std::unique_ptr<MemBandwidthProbe>> MemBandwidthProbe::create(uint64_t buffer_bytes,
                                                                      int threads) {
  if (buffer_bytes < (1ull << 20) || buffer_bytes > (64ull << 30)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "membw: buffer of %llu bytes; 1 MiB .. 64 GiB allowed",
                      static_cast<unsigned long long>(buffer_bytes));
  }
  if (threads < 0 || threads > 1024) {
    return make_error(ErrorCode::kInvalidArgument, "membw: %d threads; 0..1024 allowed", threads);
  }
  if (threads == 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::unique_ptr<MemBandwidthProbe> p(new MemBandwidthProbe());
  p->n_ = buffer_bytes / sizeof(uint64_t);
  p->threads_ = threads;
  p->data_ = static_cast<uint64_t*>(std::aligned_alloc(4096, p->n_ * sizeof(uint64_t)));
  if (p->data_ == nullptr) {
    return make_error(ErrorCode::kIo, "membw: cannot allocate %llu MiB",
                      static_cast<unsigned long long>(buffer_bytes >> 20));
  }
  // Touch every page (in parallel, so first-touch places pages near the threads that read them).
  uint64_t* data = p->data_;
  const uint64_t n = p->n_;
  run_threads(threads, [&](int t) {
    const uint64_t per = (n / threads) & ~uint64_t{7};
    const uint64_t b = per * t, c = t == threads - 1 ? n - b : per;
    for (uint64_t i = 0; i < c; ++i) data[b + i] = (b + i) * 0x9E3779B97F4A7C15ull;
  });
  return p;
}

MemBandwidthProbe::~MemBandwidthProbe() { std::free(data_); }

Result<MemBandwidth> MemBandwidthProbe::measure(int runs) {
  if (runs < 1 || runs > 100) {
    return make_error(ErrorCode::kInvalidArgument, "membw: %d runs; 1..100 allowed", runs);
  }
  static const std::vector<Reader> readers = widest_readers();
  const int threads = threads_;
  const uint64_t n = n_;
  std::vector<uint64_t> sums(static_cast<size_t>(threads) * 8, 0);  // one cache line each
  std::vector<double> rates;
  double best = 0.0;
  const char* best_name = readers[0].name;
  for (int r = 0; r < runs; ++r) {
    for (const Reader& reader : readers) {
      const auto t0 = std::chrono::steady_clock::now();
      run_threads(threads, [&](int t) {
        const uint64_t per = (n / threads) & ~uint64_t{7};
        const uint64_t b = per * t, c = t == threads - 1 ? n - b : per;
        sums[static_cast<size_t>(t) * 8] += reader.fn(data_ + b, c);
      });
      const double s =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const double rate = static_cast<double>(n * sizeof(uint64_t)) / std::max(s, 1e-9) / 1e9;
      rates.push_back(rate);
      if (rate > best) {
        best = rate;
        best_name = reader.name;
      }
    }
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
  m.runs = static_cast<int>(rates.size());
  m.loads = best_name;
  return m;
}

Result<MemBandwidth> measure_memory_bandwidth(uint64_t buffer_bytes, int runs, int threads) {
  if (runs < 1 || runs > 100) {
    return make_error(ErrorCode::kInvalidArgument, "membw: %d runs; 1..100 allowed", runs);
  }
  NIBBLE_ASSIGN_OR_RETURN(auto probe, MemBandwidthProbe::create(buffer_bytes, threads));
  return probe->measure(runs);
}

}  // namespace nibble
