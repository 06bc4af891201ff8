// The forward pass's working memory, by formula: the std::vectors that model/gemma4.cpp,
// model/blocks/ and runtime/session.cpp allocate per call, and the kernels' per-thread buffers
// (ops/matmul.cpp, ops/attention.cpp), at their peak: one full batch of n_batch tokens with the
// context filled. tests/plan checks this against the heap actually used by `nibble run
// --memory-report`; when the forward pass changes its buffers, change this file with it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"

namespace nibble {

struct ScratchItem;

struct ScratchInput {
  const Gemma4Config* cfg = nullptr;
  int64_t n_vocab = 0;
  int64_t n_batch = 0;  // tokens of one forward call (resolved: <= n_ctx)
  int64_t n_ctx = 0;  // positions the attention reaches (the context, or what a run used)
  int n_threads = 1;
  // Widest input (n_in) among the matmul weights of each kernel path (ops/matmul.cpp): the
  // integer path (int8_rows_supported types, n_in % 32 == 0) and the float path (dequantized
  // rows; F32 weights are read in place). 0 = the path is not used.
  int64_t int8_n_in_max = 0;
  bool int8_has_min = false;  // some int8-path type carries per-16 offsets (K-quants, Q4_1, ...)
  int64_t float_n_in_max = 0;
  bool int8_k_groups = false;  // some int8-path type has 16-element scale groups (Q2_K, Q3_K, Q6_K)
  bool int8_panels = false;    // the AVX-512 VNNI panel kernel runs prompt batches (ops/int8_panel.h)
  int64_t int8_row_max = 0;    // longest row read one at a time through the int8 form (weight_row)
  bool kv_quantized_full = true, kv_quantized_swa = true;  // KV rows decoded into tiles (not f32)
  bool kv_rotated_full = false, kv_rotated_swa = false;    // block types (q8_0, q4_0): Hadamard-rotated rows
  bool kv_q4_full = false, kv_q4_swa = false;              // q4_0 caches (kv_rows encode buffer)
  bool kv_recent_full = false, kv_recent_swa = false;      // quantized caches with f16 recent rows
};

// The live buffers at the peak, largest first in meaning (the sum is the peak).
std::vector<ScratchItem> forward_scratch(const ScratchInput& in);

}  // namespace nibble
