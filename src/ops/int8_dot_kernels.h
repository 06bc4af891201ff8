// The per-ISA implementations behind ops/int8_dot.h (internal to ops/).
#pragma once

#include "ops/int8_dot.h"
#include "tensor/ggml_type.h"

namespace nibble::int8_kernels {

// How far ahead (bytes) the decoding kernels that read Q4_0 / Q8_0 / Q4_K / Q6_K blocks directly
// prefetch the row they stream (rows are read one after another, so this runs into the next).
// 8 KiB: on the development machine (AMD EPYC Zen 5, 2 threads) 1 KiB left the Q4_0 and Q6_K
// kernels at 33 / 29 GB/s out of cache, 4 KiB gave 36 / 35 (nibble_kernel_bench); with the
// machine's memory at ~75 GB/s, 8 KiB lifts E2B generation by 2-4% over 4 KiB (Q4_0 31.5-32.5
// -> 32.5-33.2 tok/s, Q4_K_M 28.6-30.3 -> 30.0-30.7, `nibble bench -n 48`, runs alternated)
// and changes nothing at ~48 GB/s; 16 KiB is no better than 8 KiB end to end.
inline constexpr int kDecodePrefetch = 8192;

using DotFn = void (*)(const Int8Row* rows, int n_rows, const Int8Acts& a, int64_t tok0,
                       int64_t n_tok, float* out, int64_t ldo);

void dot_generic(const Int8Row* rows, int n_rows, const Int8Acts& a, int64_t tok0, int64_t n_tok,
                 float* out, int64_t ldo);
void dot_avx2(const Int8Row* rows, int n_rows, const Int8Acts& a, int64_t tok0, int64_t n_tok,
              float* out, int64_t ldo);
void dot_avx512(const Int8Row* rows, int n_rows, const Int8Acts& a, int64_t tok0, int64_t n_tok,
                float* out, int64_t ldo);

// Decoding straight from the stored blocks of Q4_0 / Q8_0 / Q4_K / Q6_K rows (AVX-512 VNNI): out[r] for
// r < n_rows (1..4), the bits of dot_avx512 on the unpacked rows. False for other types.
bool direct_dot_avx512(GgmlType type, const uint8_t* const* rows, int n_rows, const Int8Acts& a,
                       int64_t tok, float* out);

// Decoding Q4_0 rows with per-block integer sums (AVX-512 VBMI + VNNI + GFNI; needs
// add_q4_0_decode_terms): out[r] for r < n_rows, the arithmetic in ops/q4_0_decode_avx512.cpp.
void q4_0_decode_rows(const uint8_t* const* rows, int n_rows, const Int8Acts& a, float* out);
// True when this CPU runs q4_0_decode_row.
bool q4_0_decode_available();

// Decoding Q2_K and Q3_K rows on AVX-512 BW, IQ4_XS rows on AVX-512 BW + VNNI (all need
// add_isum16): out[r] for r < n_rows, the bits of the AVX2 block-sum kernels
// (ops/low_bit_decode_avx512.cpp). False (nothing written) for other types, without the terms,
// or on a CPU without those extensions.
bool low_bit_decode_rows(GgmlType type, const uint8_t* const* rows, int n_rows, const Int8Acts& a,
                         float* out);
bool q2_3_k_decode_available();
bool iq4_xs_decode_available();

// Q4_0, Q8_0, Q4_K, Q5_K and Q6_K with per-block integer sums on AVX2 + FMA + F16C, decoding and
// batches (Q4_0 needs add_q4_0_pair_terms, Q4_K/Q5_K sums, Q6_K add_isum16, K types
// n % 256 == 0): out[t * ldo + r] for
// r < n_rows, t < n_tok, the arithmetic in ops/block_sums_avx2.cpp; false for other types or
// without those terms. One token prefetches the rows (they stream from memory).
bool block_sums_dot_avx2(GgmlType type, const uint8_t* const* rows, int n_rows, const Int8Acts& a,
                         int64_t tok0, int64_t n_tok, float* out, int64_t ldo);
// True when this CPU runs block_sums_dot_avx2.
bool block_sums_available();

// The offset term of one (row, token), in the fixed order of ops/int8_dot.h (shared by all ISAs:
// it is n/16 multiply-adds against the main loop's n).
float offset_term(const float* offset, const float* sum16, int64_t n_groups);

}  // namespace nibble::int8_kernels
