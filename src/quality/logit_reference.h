// Logit reference files for quantization quality (`nibble perplexity --save-reference FILE` on a
// BF16/F32 model, then `--reference FILE` on a quantized one), and the KL divergence computed
// from them. Compact: per scored position the reference's top-k logits, not the whole vocabulary
// (llama.cpp's --kl-divergence-base keeps all n_vocab log-probabilities, about 1 MB per token for a
// 262k vocabulary; this keeps 20 + 8k bytes).
//
// The KL divergence approximation. For a position with reference distribution P and the
// quantized model's Q, let S be the reference's top-k token ids. Both distributions are reduced to
// k + 1 outcomes: the k tokens of S and one "rest" bucket holding everything else,
//   P_rest = 1 - Σ_{i∈S} P_i,   Q_rest = 1 - Σ_{i∈S} Q_i   (Q_rest is summed directly, exactly),
// and KLD = Σ_{i∈S} P_i ln(P_i / Q_i) + P_rest ln(P_rest / Q_rest).
// Merging outcomes never increases a KL divergence (log-sum inequality), so this is a lower bound
// of the full-vocabulary KL(P || Q); it is exact when k = n_vocab, and tight whenever the top-k
// hold nearly all of P's mass or Q is proportional to P inside the rest (the error is P_rest times
// the KL between the two distributions restricted to the rest). How tight depends on the model:
// for the small, high-entropy tiny-e (perplexity ~83, vocabulary 8192) q4_0 against f32 gives
// 67% of the exact mean KLD at k = 32, 87% at k = 256, 96% at k = 1024
// (tests/quality/kld_test.cpp); peaked distributions put more mass in the top-k and lose less. The
// mean top-k mass is reported (ref_top_k_mass) as a guide.
//
// File layout (little-endian; version 1):
//   header   char[8] magic "NBREF\0\0\0"; u32 version; u32 top_k; i64 n_vocab; i64 ctx;
//            i64 n_chunks; i64 n_tokens (= n_chunks * (ctx - 1) scored positions);
//            u64 token_hash (reference_token_hash of the scored tokens, ctx and BOS);
//            u32 name_len; name_len bytes model name (UTF-8, at most 1024)
//   records  n_tokens times, in scoring order (chunk by chunk, position by position):
//            i32 token (the scored token); f64 lse (log Σ_v exp(logit_v), whole vocabulary);
//            f64 nll (lse - logit[token]); i32 ids[top_k]; f32 logits[top_k]
//            (ids by descending logit, ties to the lower id)
// Everything is validated on read (sizes, ranges, order, finiteness); errors name the file.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "util/atomic_file.h"
#include "util/result.h"

namespace nibble {

inline constexpr uint32_t kLogitRefVersion = 1;
inline constexpr uint32_t kLogitRefMaxTopK = 1024;
inline constexpr uint32_t kLogitRefMaxName = 1024;
inline constexpr int kLogitRefDefaultTopK = 256;  // 2 KiB per position; 87% of the exact KLD on tiny-e

struct LogitRefHeader {
  std::string model_name;
  int64_t n_vocab = 0;
  uint32_t top_k = 0;
  int64_t ctx = 0;
  int64_t n_chunks = 0;
  int64_t n_tokens = 0;  // n_chunks * (ctx - 1)
  uint64_t token_hash = 0;
};

// One scored position of the reference run.
struct LogitRefRecord {
  int32_t token = 0;          // the token being predicted
  double lse = 0.0;           // log-sum-exp of all n_vocab logits
  double nll = 0.0;           // lse - logit[token]
  std::vector<int32_t> ids;   // [top_k] by descending logit (ties: lower id first)
  std::vector<float> logits;  // [top_k]
};

// log Σ_v exp(logits[v]) in double (max-shifted).
double log_sum_exp(const float* logits, int64_t n_vocab);

// The record of one position from its logits [n_vocab]. `scratch` is reused between calls.
void make_logit_record(const float* logits, int64_t n_vocab, uint32_t top_k, int32_t token,
                       LogitRefRecord& out, std::vector<int32_t>& scratch);

// FNV-1a 64 over ctx (i64), bos (i32) and the scored token ids (i32 each), little-endian: a file
// made from other text, another --ctx or another tokenizer does not match.
uint64_t reference_token_hash(std::span<const int32_t> scored, int64_t ctx, int32_t bos);

class LogitRefWriter {
 public:
  // Opens PATH atomically (nothing is left behind unless commit() succeeds) and writes the header.
  static Result<LogitRefWriter> create(const std::string& path, const LogitRefHeader& header);
  LogitRefWriter(LogitRefWriter&&) noexcept = default;
  Status add(const LogitRefRecord& r);
  // Checks that exactly header.n_tokens records were added, then renames into place.
  Status commit();

 private:
  LogitRefWriter(AtomicFile f, LogitRefHeader h) : file_(std::move(f)), header_(std::move(h)) {}
  Status flush();
  AtomicFile file_;
  LogitRefHeader header_;
  std::vector<uint8_t> buf_;
  int64_t n_written_ = 0;
};

class LogitRefReader {
 public:
  // Opens and validates the header and the file size.
  static Result<LogitRefReader> open(const std::string& path);
  const LogitRefHeader& header() const { return header_; }
  // Reads and validates the next record.
  Status next(LogitRefRecord& r);

 private:
  struct Closer {
    void operator()(std::FILE* f) const { std::fclose(f); }
  };
  LogitRefReader() = default;
  std::string path_;
  std::unique_ptr<std::FILE, Closer> file_;
  LogitRefHeader header_;
  int64_t n_read_ = 0;
  std::vector<uint8_t> buf_;
  std::vector<int32_t> sorted_;
};

// KL(P_ref || P_model) at one position by the top-k + rest approximation above, and whether the
// model's top-1 (first maximum) is the reference's.
struct KldPoint {
  double kld = 0.0;
  bool top1_same = false;
  double p_top = 0.0;  // the reference's probability mass in its top-k (1 - P_rest)
};

class KldCalculator {
 public:
  explicit KldCalculator(int64_t n_vocab) : in_top_(static_cast<size_t>(n_vocab), 0) {}
  // logits: the model's [n_vocab] at the position `ref` describes. The reference's ids must be
  // valid for n_vocab (LogitRefReader checks).
  KldPoint compare(const LogitRefRecord& ref, const float* logits);

 private:
  std::vector<uint8_t> in_top_;
};

// The q-quantile (0..1) of `values` by linear interpolation between order statistics
// (position q * (n - 1)); sorts `values`. 0 for an empty vector.
double quantile(std::vector<double>& values, double q);

}  // namespace nibble
