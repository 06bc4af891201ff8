// Int8Acts: activation rows quantized for the integer dot products (ops/int8_dot.h), the way
// llama.cpp quantizes activations to Q8_0: per block of 32 values d = max|x| / 127 and
// q = round(x / d) in [-127, 127]. Also kept: per 16 values, sum16 = d * sum(q) (the term that
// weight types with an offset need). Buffers grow and are reused: no allocation once warm.
#pragma once

#include <cstdint>
#include <vector>

namespace nibble {

// The lane of block k (0..7) of a group in the AVX2 Q4_0 block-sum kernel's layout (after its
// three vphaddw folds), shared by that kernel and add_q4_0_pair_terms.
inline constexpr int kQ4PairLane[8] = {0, 4, 1, 5, 2, 6, 3, 7};

struct Int8Acts {
  int64_t n = 0;         // values per token (a multiple of 32)
  int64_t n_tokens = 0;
  std::vector<int8_t> q;      // [n_tokens][n]
  std::vector<float> d;       // [n_tokens][n / 32]
  std::vector<float> sum16;   // [n_tokens][n / 16], only when quantized with sums
  std::vector<uint8_t> u;     // [n_tokens][n]: q + 128, only after add_unsigned_acts
  // Token 0 only, after add_decode_terms: per lane of 4 values, -8 * their sum (an offset of -8
  // on unsigned weights; Q6_K's -32 is 4 times it) and the d of their block.
  std::vector<int32_t> neg8sum4;  // [n / 4]
  std::vector<float> dlane;       // [n / 4]
  // Token 0 only, after add_q4_0_decode_terms (ops/q4_0_decode_avx512.cpp's layout): per group
  // of 4 blocks, the 4 x 16 values that meet low nibbles then the 4 x 16 that meet high ones;
  // per lane of that layout -8 * the sum of its 8 values; per chunk of 16 blocks the blocks' d
  // with lane 4k + m holding block 4m + k (zero past the last full group).
  std::vector<int8_t> q4_lohi;    // [n / 128 groups][128]
  std::vector<int32_t> q4_bcorr;  // [chunks][16]: -8 * sum of a block, in q4_dperm's lane order
  std::vector<float> q4_dperm;    // [chunks][16]
  // Every token, after add_q4_0_pair_terms (ops/block_sums_avx2.cpp's layout): per group of 8
  // blocks and pair j of it (blocks 8g + 2j, 8g + 2j + 1), 32 values that meet low nibbles
  // ([a_b[0..15], a_b+1[0..15]]) then 32 that meet high ones; per block -8 * its sum and its d,
  // both in the kernel's lane order within a group (the blocks past the last group: unused).
  // (kQ4PairLane[k]: the lane of block 8g + k.)
  std::vector<int8_t> q4p;        // [n_tokens][n]
  std::vector<int32_t> q4p_corr;  // [n_tokens][n / 32]
  std::vector<float> q4p_d;       // [n_tokens][n / 32]
  std::vector<int16_t> isum16;    // [n_tokens][n / 16]: sum(q) per 16 values (add_isum16)
  bool has_sums = false;          // sum16 is current (quantize_acts with_sums)
  bool has_isum16 = false;        // isum16 is current
  bool has_decode_terms = false;  // neg8sum4 / dlane are current (add_decode_terms)
  bool has_q4_0_terms = false;    // q4_lohi / q4_bcorr / q4_dperm are current
  bool has_q4_0_pair_terms = false;  // q4p / q4p_corr / q4p_d are current

  const int8_t* q_of(int64_t t) const { return q.data() + t * n; }
  const float* d_of(int64_t t) const { return d.data() + t * (n / 32); }
  const float* sum16_of(int64_t t) const { return sum16.data() + t * (n / 16); }
  const uint8_t* u_of(int64_t t) const { return u.data() + t * n; }
  const int8_t* q4p_of(int64_t t) const { return q4p.data() + t * n; }
  const int32_t* q4p_corr_of(int64_t t) const { return q4p_corr.data() + t * (n / 32); }
  const float* q4p_d_of(int64_t t) const { return q4p_d.data() + t * (n / 32); }
  const int16_t* isum16_of(int64_t t) const { return isum16.data() + t * (n / 16); }
};

// x: [n_tokens, n] floats (n a multiple of 32). with_sums: also fill sum16. Splits the tokens
// over the thread pool when the batch is large; must not be called from inside parallel_for.
void quantize_acts(const float* x, int64_t n_tokens, int64_t n, bool with_sums, Int8Acts& out);

// Fills a.u (the unsigned form q + 128 that VNNI's u8 x s8 products take) from a.q.
void add_unsigned_acts(Int8Acts& a);

// Fills a.neg8sum4 and a.dlane for token 0 (decoding Q4_K and Q6_K straight from blocks).
void add_decode_terms(Int8Acts& a);
// Fills a.q4_lohi, a.q4_bcorr and a.q4_dperm for token 0 (Q4_0 decoding with block sums).
void add_q4_0_decode_terms(Int8Acts& a);
// Fills a.q4p, a.q4p_corr and a.q4p_d for every token (Q4_0 with block sums on AVX2).
void add_q4_0_pair_terms(Int8Acts& a);
// Fills a.isum16 for every token (Q6_K, Q2_K and Q3_K with block sums on AVX2; Q2_K, Q3_K and
// IQ4_XS decoding on AVX-512).
void add_isum16(Int8Acts& a);

// One token's row: the plain scalar form, and the vectorised one quantize_acts uses (same bytes).
void quantize_act_row(const float* x, int64_t n, int8_t* q, float* d, float* sum16);
void quantize_act_row_fast(const float* x, int64_t n, int8_t* q, float* d, float* sum16);

}  // namespace nibble
