// Dot kernels with GCC vector extensions (lane-wise semantics are the same on every ISA, so
// the clones agree bit for bit) and target_clones dispatch.
#include "ops/dot.h"


// The v8 helpers below are internal (inlined); the ABI note for the baseline clone does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace nibble {

namespace {

typedef float v8 __attribute__((vector_size(32)));
// Unaligned, aliasing view of 8 floats: loads are plain dereferences, so no helper passes or
// returns a vector by value (clang refuses that in the baseline clone: it would change the ABI).
typedef float v8u __attribute__((vector_size(32), aligned(4), may_alias));
#define NIBBLE_LOAD8(p) (*reinterpret_cast<const v8u*>(p))

// Fixed-order reduction of the 8 lanes.
[[gnu::always_inline]] inline float hsum(const v8& v) {
  const float a = (v[0] + v[4]) + (v[2] + v[6]);
  const float b = (v[1] + v[5]) + (v[3] + v[7]);
  return a + b;
}

inline float tail(const float* a, const float* b, int64_t i, int64_t n) {
  float s = 0.0f;
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

// BF16 weights: widened to float exactly (the 16 bits become the high half), then the same
// arithmetic as the float kernels.
typedef uint16_t v8h __attribute__((vector_size(16), aligned(2), may_alias));
typedef uint32_t v8i __attribute__((vector_size(32)));

// A macro, not a helper returning a vector (clang refuses that in the baseline clone); a cast
// between vector types of the same size reinterprets the bits.
#define NIBBLE_BF16X8(p) \
  ((v8)(__builtin_convertvector(*reinterpret_cast<const v8h*>(p), v8i) << 16))

inline float bf16_value(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  __builtin_memcpy(&f, &bits, sizeof f);
  return f;
}

inline float tail_bf16(const uint16_t* a, const float* b, int64_t i, int64_t n) {
  float s = 0.0f;
  for (; i < n; ++i) s += bf16_value(a[i]) * b[i];
  return s;
}

}  // namespace

#define NIBBLE_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))

NIBBLE_CLONES
float dot_f32(const float* a, const float* b, int64_t n) {
  v8 acc = {};
  const int64_t n8 = n & ~int64_t{7};
  for (int64_t i = 0; i < n8; i += 8) acc += NIBBLE_LOAD8(a + i) * NIBBLE_LOAD8(b + i);
  return hsum(acc) + tail(a, b, n8, n);
}

NIBBLE_CLONES
void dot_4rows(const float* const* w, const float* x, int64_t n, float* out) {
  v8 a0 = {}, a1 = {}, a2 = {}, a3 = {};
  const float *w0 = w[0], *w1 = w[1], *w2 = w[2], *w3 = w[3];
  const int64_t n8 = n & ~int64_t{7};
  for (int64_t i = 0; i < n8; i += 8) {
    const v8 xv = NIBBLE_LOAD8(x + i);
    a0 += NIBBLE_LOAD8(w0 + i) * xv;
    a1 += NIBBLE_LOAD8(w1 + i) * xv;
    a2 += NIBBLE_LOAD8(w2 + i) * xv;
    a3 += NIBBLE_LOAD8(w3 + i) * xv;
  }
  out[0] = hsum(a0) + tail(w0, x, n8, n);
  out[1] = hsum(a1) + tail(w1, x, n8, n);
  out[2] = hsum(a2) + tail(w2, x, n8, n);
  out[3] = hsum(a3) + tail(w3, x, n8, n);
}

NIBBLE_CLONES
void dot_4rows_2tok(const float* const* w, const float* x, int64_t ldx, int64_t n, float* out) {
  v8 a0 = {}, a1 = {}, a2 = {}, a3 = {}, b0 = {}, b1 = {}, b2 = {}, b3 = {};
  const float *w0 = w[0], *w1 = w[1], *w2 = w[2], *w3 = w[3];
  const float* x1 = x + ldx;
  const int64_t n8 = n & ~int64_t{7};
  for (int64_t i = 0; i < n8; i += 8) {
    const v8 xa = NIBBLE_LOAD8(x + i), xb = NIBBLE_LOAD8(x1 + i);
    const v8 r0 = NIBBLE_LOAD8(w0 + i), r1 = NIBBLE_LOAD8(w1 + i), r2 = NIBBLE_LOAD8(w2 + i), r3 = NIBBLE_LOAD8(w3 + i);
    a0 += r0 * xa;
    a1 += r1 * xa;
    a2 += r2 * xa;
    a3 += r3 * xa;
    b0 += r0 * xb;
    b1 += r1 * xb;
    b2 += r2 * xb;
    b3 += r3 * xb;
  }
  out[0] = hsum(a0) + tail(w0, x, n8, n);
  out[1] = hsum(a1) + tail(w1, x, n8, n);
  out[2] = hsum(a2) + tail(w2, x, n8, n);
  out[3] = hsum(a3) + tail(w3, x, n8, n);
  out[4] = hsum(b0) + tail(w0, x1, n8, n);
  out[5] = hsum(b1) + tail(w1, x1, n8, n);
  out[6] = hsum(b2) + tail(w2, x1, n8, n);
  out[7] = hsum(b3) + tail(w3, x1, n8, n);
}

NIBBLE_CLONES
float dot_bf16(const uint16_t* a, const float* b, int64_t n) {
  v8 acc = {};
  const int64_t n8 = n & ~int64_t{7};
  for (int64_t i = 0; i < n8; i += 8) acc += NIBBLE_BF16X8(a + i) * NIBBLE_LOAD8(b + i);
  return hsum(acc) + tail_bf16(a, b, n8, n);
}

NIBBLE_CLONES
void dot_4rows_bf16(const uint16_t* const* w, const float* x, int64_t n, float* out) {
  v8 a0 = {}, a1 = {}, a2 = {}, a3 = {};
  const uint16_t *w0 = w[0], *w1 = w[1], *w2 = w[2], *w3 = w[3];
  const int64_t n8 = n & ~int64_t{7};
  // The rows are adjacent and read 4 at a time: each row's prefetch goes to the same place in the
  // row 4 further on, which the next call reads (a fixed 4 KiB ahead fell into the middle of the
  // next rows and left most of the next group cold: E2B's BF16 PLE projection 30 -> 37 GB/s).
  const int64_t ahead = 4 * n;
  for (int64_t i = 0; i < n8; i += 8) {
    if ((i & 31) == 0) {  // once per 64-byte line of each row
      __builtin_prefetch(w0 + i + ahead);
      __builtin_prefetch(w1 + i + ahead);
      __builtin_prefetch(w2 + i + ahead);
      __builtin_prefetch(w3 + i + ahead);
    }
    const v8 xv = NIBBLE_LOAD8(x + i);
    a0 += NIBBLE_BF16X8(w0 + i) * xv;
    a1 += NIBBLE_BF16X8(w1 + i) * xv;
    a2 += NIBBLE_BF16X8(w2 + i) * xv;
    a3 += NIBBLE_BF16X8(w3 + i) * xv;
  }
  out[0] = hsum(a0) + tail_bf16(w0, x, n8, n);
  out[1] = hsum(a1) + tail_bf16(w1, x, n8, n);
  out[2] = hsum(a2) + tail_bf16(w2, x, n8, n);
  out[3] = hsum(a3) + tail_bf16(w3, x, n8, n);
}

NIBBLE_CLONES
void axpy_f32(float a, const float* x, float* y, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

}  // namespace nibble
