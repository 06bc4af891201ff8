// Memory bandwidth of this machine: a multi-threaded streaming read over a buffer far larger than
// the last-level cache, best of several runs (`nibble bench --membw`; the denominator of the
// "% of memory bandwidth" that `nibble bench` reports). Not a full STREAM suite: reads only,
// since reading weights is what inference does.
#pragma once

#include <cstdint>

#include "util/result.h"

namespace nibble {

struct MemBandwidth {
  double gb_per_s = 0.0;      // best run, 1e9 bytes per second
  double median_gb_per_s = 0.0;
  int threads = 0;
  uint64_t buffer_bytes = 0;
  int runs = 0;
};

// Reads a `buffer_bytes` buffer with `threads` threads (0: all hardware threads), `runs` times.
// Errors: sizes out of range (buffer 1 MiB .. 64 GiB, runs 1..100, threads 0..1024), or the
// buffer cannot be allocated.
Result<MemBandwidth> measure_memory_bandwidth(uint64_t buffer_bytes = 1ull << 30, int runs = 5,
                                              int threads = 0);

}  // namespace nibble
