// Integer dot products of int8 weight rows (ops/int8_rows.h) with int8 activations
// (ops/int8_acts.h): the kernels behind matmul for every integer-quantized weight type.
//
// Every ISA computes every (row, token) result with the same arithmetic, so results are
// bit-identical across AVX-512, AVX2 and the generic code, and a token's result does not depend
// on the batch it came in (prompt processing == one-token decoding). Three exceptions round
// differently (float rounding, ~1e-7 relative): the 16-row panels of batches of 16 tokens or
// more (ops/int8_panel.h), Q4_0 decoding on AVX-512 VBMI, which sums each block's products
// as integers first (ops/q4_0_decode_avx512.cpp; int8_decode_matches_batch), and on AVX2 the
// block-sum kernels of Q4_0, Q8_0, Q4_K, Q5_K, Q6_K, Q2_K, Q3_K and IQ4_XS
// (ops/block_sums_avx2.cpp, int8_block_sums:
// decoding and batches alike, so a token still matches its batch there). The arithmetic:
//   per block b of 32 and lane j (4 values): i = sum of 4 int8 products (exact int32);
//   acc[b odd][j] = fma(float(i), scale[8b+j] * d[b], acc[b odd][j]);
//   s[j] = acc[0][j] + acc[1][j];  r = ((s0+s4)+(s2+s6)) + ((s1+s5)+(s3+s7));
//   with offsets: m[l] = fma(offset[g], sum16[g], m[l]) for g = 8k + l, then the same reduction,
//   then the n/16 % 8 remaining groups in order; r += m.
#pragma once

#include <cstdint>

#include "ops/int8_acts.h"
#include "tensor/ggml_type.h"

namespace nibble {

struct Int8Row {
  const int8_t* q = nullptr;
  const float* scale = nullptr;   // n / 4
  const float* offset = nullptr;  // n / 16, or null
};

// out[t * ldo + r] = dot(rows[r], token tok0 + t) for r < n_rows (1..4), t < n_tok.
void int8_dot(const Int8Row* rows, int n_rows, const Int8Acts& a, int64_t tok0, int64_t n_tok,
              float* out, int64_t ldo);

// Decoding (one token) straight from stored rows of `type`, without unpacking, where this CPU
// has such a kernel. AVX-512 VNNI: Q4_0, Q8_0, Q4_K, Q6_K, all but Q8_0 with token 0's
// add_decode_terms (Q4_0 with AVX-512 VBMI: add_q4_0_decode_terms), bit-identical to int8_dot on
// the unpacked rows; Q5_K, Q2_K, Q3_K and IQ4_XS there with the AVX2 block sums (no AVX-512
// decoder; rounds differently from a batch: int8_decode_matches_batch; Q2_K and Q3_K need
// add_isum16). AVX2 + F16C: the types of int8_block_sums
// (int8_block_sums_dot, with its terms). False (nothing written) otherwise.
bool int8_dot_direct(GgmlType type, const uint8_t* const* rows, int n_rows, const Int8Acts& a,
                     int64_t tok, float* out);

// True when matmul runs `type` on the AVX2 block-sum kernels (ops/block_sums_avx2.cpp: Q4_0,
// Q8_0, Q4_K, Q5_K, Q6_K, Q2_K, Q3_K and IQ4_XS where the chosen ISA is AVX2 and the CPU has
// F16C), for decoding and batches alike; Q4_0 needs add_q4_0_pair_terms, Q4_K and Q5_K
// activations quantized with sums, Q6_K, Q2_K and Q3_K add_isum16.
// int8_block_sums_dot: out[t * ldo + r] = dot(row r, token tok0 + t); false (nothing written)
// when this CPU cannot run it or the type or terms do not fit (tests call it whatever matmul
// picks).
bool int8_block_sums(GgmlType type);
bool int8_block_sums_dot(GgmlType type, const uint8_t* const* rows, int n_rows, const Int8Acts& a,
                         int64_t tok0, int64_t n_tok, float* out, int64_t ldo);

// The activation terms (ops/int8_acts.h) the kernels matmul runs for `type` read beyond
// quantize_acts, for a call of n_tokens tokens (block_sums: the call runs the AVX2 block sums).
struct Int8Terms {
  bool q4_0_pair = false;    // add_q4_0_pair_terms (Q4_0 block sums)
  bool isum16 = false;       // add_isum16 (Q6_K, Q2_K, Q3_K block sums; AVX-512 low-bit decoders)
  bool decode = false;       // add_decode_terms (AVX-512 Q4_0 / Q4_K / Q6_K decoding)
  bool q4_0_decode = false;  // add_q4_0_decode_terms (AVX-512 VBMI Q4_0 decoding)
};
Int8Terms int8_terms(GgmlType type, int64_t n_tokens, bool block_sums);

// False when decoding rows of `type` rounds differently from the same token in a batch: Q4_0 on
// AVX-512 VBMI sums each block's products as integers first (ops/q4_0_decode_avx512.cpp), and
// Q5_K, Q2_K, Q3_K and IQ4_XS on AVX-512 decode with the AVX2 block sums.
bool int8_decode_matches_batch(GgmlType type);

// The instruction set the kernels use: "avx512-vnni", "avx2" or "generic". Chosen once from the
// CPU; $NIBBLE_ISA (one of those names) forces a lower one (tests, benchmarks).
const char* int8_dot_isa();

// For tests: int8_dot_direct with one specific ISA's kernels (false if this CPU cannot run them
// or they do not cover the case; always false for "avx2", which decodes with block sums).
bool int8_dot_direct_with(const char* isa, GgmlType type, const uint8_t* const* rows, int n_rows,
                          const Int8Acts& a, int64_t tok, float* out);

// For tests: run one specific implementation (false if this CPU cannot run it).
bool int8_dot_with(const char* isa, const Int8Row* rows, int n_rows, const Int8Acts& a,
                   int64_t tok0, int64_t n_tok, float* out, int64_t ldo);

}  // namespace nibble
