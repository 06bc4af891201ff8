// Speed measurement with llama-bench's semantics (`nibble bench`): pp = one prompt of n random
// tokens evaluated in batches of n_batch (logits only for the last token), tg = n tokens decoded
// one at a time from an empty context; one warm-up run, then `reps` timed runs, each from an
// empty cache. Also the bytes of weights a token reads, to turn tokens/s into GB/s.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "gguf/gguf_file.h"
#include "model/model.h"
#include "runtime/session.h"
#include "util/result.h"

namespace nibble {

// Bytes of weights read to evaluate one token, from the GGUF tensor list: every tensor in full,
// except the token embedding and PLE tables (one row per token; a tied token_embd also serves as
// the output head and counts in full once more) and MoE expert tensors (*_exps.weight: only
// expert_used_count / expert_count of them).
Result<uint64_t> weight_bytes_per_token(const GgufFile& file);

struct BenchParams {
  int64_t n_prompt = 512;  // pp test: prompt length (0 = no pp test)
  int64_t n_gen = 128;     // tg test: tokens generated (0 = no tg test)
  int64_t n_batch = 512;   // pp batch size
  int reps = 5;
  uint32_t seed = 1;       // random token ids
  SessionOptions session;  // n_ctx and n_batch are set per test; KV types, flash attention used
  // Called before each timed run, outside the timing (nibble bench measures the memory bandwidth
  // there, so that the share it reports compares numbers from the same minutes).
  std::function<void()> before_run;
};

struct BenchResult {
  std::string test;                 // "pp512", "tg128"
  int64_t n_tokens = 0;
  std::vector<double> tokens_per_s;  // one per timed run
  double median = 0, mean = 0, stddev = 0;  // of tokens_per_s; stddev with n-1 (llama-bench)
};

// Checks the parameters (counts >= 0, reps 1..1000, batch >= 1) before running anything.
Status check_bench_params(const BenchParams& p);

// The pp test. The warm-up run's logits are checked to be finite before timing.
Result<BenchResult> bench_prompt(const Model& model, const BenchParams& p);
// The tg test (warm-up: one token, as llama-bench does).
Result<BenchResult> bench_generate(const Model& model, const BenchParams& p);

// Median, mean and sample standard deviation of `r.tokens_per_s`.
void summarize_bench(BenchResult& r);

}  // namespace nibble
