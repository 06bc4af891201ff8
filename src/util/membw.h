// Memory bandwidth of this machine: a multi-threaded streaming read over a buffer far larger than
// the last-level cache, best of several runs (`nibble bench --membw`; the denominator of the
// "% of memory bandwidth" that `nibble bench` reports). Not a full STREAM suite: reads only,
// since reading weights is what inference does. Each run reads with the widest vector loads the
// CPU has (AVX-512, AVX2; else 64-bit words), once as they are and once with software prefetches
// 4 KiB ahead, and the best read counts: on Zen 5 64-bit loads read ~10% less than vector loads
// and prefetching adds ~10% (as the decoding kernels do), and a denominator that low would
// flatter the engine.
//
// Shared machines (VMs, neighbours) move this number by tens of percent within minutes, so
// `nibble bench` keeps one probe and measures again before every timed run (MemBandwidthProbe).
#pragma once

#include <cstdint>
#include <memory>

#include "util/result.h"

namespace nibble {

struct MemBandwidth {
  double gb_per_s = 0.0;      // best run, 1e9 bytes per second
  double median_gb_per_s = 0.0;
  int threads = 0;
  uint64_t buffer_bytes = 0;
  int runs = 0;               // reads timed (2 per run: without and with prefetches)
  const char* loads = "";     // the best read's: "avx512", "avx2+prefetch", ...
};

// A buffer, allocated and touched once, read again on every measure().
class MemBandwidthProbe {
 public:
  // Errors: sizes out of range (buffer 1 MiB .. 64 GiB, threads 0..1024; 0 = all hardware
  // threads) or the buffer cannot be allocated.
  static Result<std::unique_ptr<MemBandwidthProbe>> create(uint64_t buffer_bytes, int threads);
  ~MemBandwidthProbe();
  MemBandwidthProbe(const MemBandwidthProbe&) = delete;
  MemBandwidthProbe& operator=(const MemBandwidthProbe&) = delete;

  // Reads the whole buffer `runs` times (1..100) each way. Errors: runs out of range.
  Result<MemBandwidth> measure(int runs);

 private:
  MemBandwidthProbe() = default;
  uint64_t* data_ = nullptr;
  uint64_t n_ = 0;  // 64-bit words
  int threads_ = 0;
};

// create() then measure(runs).
Result<MemBandwidth> measure_memory_bandwidth(uint64_t buffer_bytes = 1ull << 30, int runs = 5,
                                              int threads = 0);

}  // namespace nibble
