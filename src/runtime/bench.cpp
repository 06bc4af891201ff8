// nibble bench's measurements; see bench.h. Mirrors test_prompt / test_gen of llama.cpp's
// tools/llama-bench/llama-bench.cpp: the first prompt token is BOS when the vocabulary adds one,
// the rest are uniform random ids; tg feeds random ids (no sampling).
#include "runtime/bench.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>

namespace nibble {

namespace {

using ull = unsigned long long;

bool ends_with(const std::string& s, const char* suffix) {
  const size_t n = std::char_traits<char>::length(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

// BOS when the model's vocabulary adds one (tokenizer.ggml.add_bos_token, default true), else -1.
int32_t bos_token(const Model& model) {
  const GgufMetadata& md = model.file().metadata();
  if (md.contains("tokenizer.ggml.add_bos_token")) {
    auto add = md.get_bool("tokenizer.ggml.add_bos_token");
    if (add.ok() && !add.value()) return -1;
  }
  auto bos = md.get_u32("tokenizer.ggml.bos_token_id");
  if (!bos.ok() || bos.value() >= static_cast<uint64_t>(model.info().n_vocab)) return -1;
  return static_cast<int32_t>(bos.value());
}

Status check_finite(const std::vector<float>& logits, const char* test) {
  for (size_t i = 0; i < logits.size(); ++i) {
    if (!std::isfinite(logits[i])) {
      return make_error(ErrorCode::kFormat, "bench %s: logit %zu of the warm-up run is %g", test, i,
                        static_cast<double>(logits[i]));
    }
  }
  return ok_status();
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

Result<uint64_t> weight_bytes_per_token(const GgufFile& f) {
  const GgufMetadata& md = f.metadata();
  std::string arch = "gemma4";
  if (auto a = md.get_string("general.architecture"); a.ok()) arch = a.value();
  uint64_t n_expert = 0, n_used = 0;
  if (md.contains(arch + ".expert_count")) {
    NIBBLE_ASSIGN_OR_RETURN(uint32_t e, md.get_u32(arch + ".expert_count"));
    NIBBLE_ASSIGN_OR_RETURN(uint32_t u, md.get_u32(arch + ".expert_used_count"));
    if (e == 0 || u > e) {
      return make_error(ErrorCode::kFormat, "%s: %s.expert_used_count %u of expert_count %u",
                        f.path().c_str(), arch.c_str(), u, e);
    }
    n_expert = e;
    n_used = u;
  }
  bool has_output = false;
  for (const auto& t : f.tensors()) has_output |= t.name == "output.weight";
  uint64_t bytes = 0;
  for (const auto& t : f.tensors()) {
    const uint64_t row = t.n_rows() == 0 ? 0 : t.n_bytes / t.n_rows();
    if (t.name == "token_embd.weight") {
      bytes += row;                         // the embedding lookup
      if (!has_output) bytes += t.n_bytes;  // tied: also the output head
    } else if (t.name == "per_layer_token_embd.weight") {
      bytes += row;
    } else if (ends_with(t.name, "_exps.weight") && n_expert > 0) {
      bytes += t.n_bytes / n_expert * n_used;
    } else {
      bytes += t.n_bytes;
    }
  }
  return bytes;
}

Status check_bench_params(const BenchParams& p) {
  if (p.n_prompt < 0 || p.n_prompt > (1 << 20)) {
    return make_error(ErrorCode::kInvalidArgument, "bench: -p %lld: 0..1048576 tokens allowed",
                      static_cast<long long>(p.n_prompt));
  }
  if (p.n_gen < 0 || p.n_gen > (1 << 20)) {
    return make_error(ErrorCode::kInvalidArgument, "bench: -n %lld: 0..1048576 tokens allowed",
                      static_cast<long long>(p.n_gen));
  }
  if (p.n_prompt == 0 && p.n_gen == 0) {
    return make_error(ErrorCode::kInvalidArgument, "bench: -p and -n are both 0: nothing to measure");
  }
  if (p.n_batch < 1 || p.n_batch > (1 << 16)) {
    return make_error(ErrorCode::kInvalidArgument, "bench: -b %lld: 1..65536 allowed",
                      static_cast<long long>(p.n_batch));
  }
  if (p.reps < 1 || p.reps > 1000) {
    return make_error(ErrorCode::kInvalidArgument, "bench: -r %d: 1..1000 repetitions allowed",
                      p.reps);
  }
  return ok_status();
}

void summarize_bench(BenchResult& r) {
  std::vector<double> v = r.tokens_per_s;
  if (v.empty()) return;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  r.median = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  double sum = 0;
  for (double x : v) sum += x;
  r.mean = sum / n;
  double ss = 0;
  for (double x : v) ss += (x - r.mean) * (x - r.mean);
  r.stddev = n > 1 ? std::sqrt(ss / (n - 1)) : 0.0;
}

Result<BenchResult> bench_prompt(const Model& model, const BenchParams& p) {
  NIBBLE_TRY(check_bench_params(p));
  BenchResult r;
  r.test = "pp" + std::to_string(p.n_prompt);
  r.n_tokens = p.n_prompt;
  if (p.n_prompt == 0) {
    return make_error(ErrorCode::kInvalidArgument, "bench: the pp test needs -p > 0");
  }
  SessionOptions so = p.session;
  so.n_ctx = p.n_prompt;
  so.n_batch = std::min(p.n_batch, p.n_prompt);
  NIBBLE_ASSIGN_OR_RETURN(std::unique_ptr<Session> s, Session::create(model, so));
  const int32_t bos = bos_token(model);
  const int64_t n_vocab = model.info().n_vocab;
  std::mt19937 rng(p.seed);
  std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(n_vocab - 1));
  std::vector<int32_t> batch;
  std::vector<float> logits;
  auto run_once = [&]() -> Status {
    s->reset();
    for (int64_t done = 0; done < p.n_prompt;) {
      const int64_t n = std::min(so.n_batch, p.n_prompt - done);
      batch.resize(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) batch[i] = tok(rng);
      if (done == 0 && bos >= 0) batch[0] = bos;
      NIBBLE_TRY(s->eval(batch, /*all_logits=*/false, logits));
      done += n;
    }
    return ok_status();
  };
  NIBBLE_TRY(run_once());  // warm-up (pages the weights in)
  NIBBLE_TRY(check_finite(logits, r.test.c_str()));
  for (int k = 0; k < p.reps; ++k) {
    if (p.before_run) p.before_run();
    const auto t0 = std::chrono::steady_clock::now();
    NIBBLE_TRY(run_once());
    r.tokens_per_s.push_back(p.n_prompt / std::max(seconds_since(t0), 1e-9));
  }
  summarize_bench(r);
  return r;
}

Result<BenchResult> bench_generate(const Model& model, const BenchParams& p) {
  NIBBLE_TRY(check_bench_params(p));
  BenchResult r;
  r.test = "tg" + std::to_string(p.n_gen);
  r.n_tokens = p.n_gen;
  if (p.n_gen == 0) return make_error(ErrorCode::kInvalidArgument, "bench: the tg test needs -n > 0");
  SessionOptions so = p.session;
  so.n_ctx = p.n_gen;
  so.n_batch = 1;
  NIBBLE_ASSIGN_OR_RETURN(std::unique_ptr<Session> s, Session::create(model, so));
  const int32_t bos = bos_token(model);
  const int64_t n_vocab = model.info().n_vocab;
  std::mt19937 rng(p.seed);
  std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(n_vocab - 1));
  std::vector<float> logits;
  auto run_once = [&](int64_t n) -> Status {
    s->reset();
    int32_t t = bos >= 0 ? bos : tok(rng);
    for (int64_t i = 0; i < n; ++i) {
      NIBBLE_TRY(s->eval(std::span<const int32_t>(&t, 1), /*all_logits=*/false, logits));
      t = tok(rng);
    }
    return ok_status();
  };
  NIBBLE_TRY(run_once(1));  // warm-up: one token, as llama-bench does
  NIBBLE_TRY(check_finite(logits, r.test.c_str()));
  for (int k = 0; k < p.reps; ++k) {
    if (p.before_run) p.before_run();
    const auto t0 = std::chrono::steady_clock::now();
    NIBBLE_TRY(run_once(p.n_gen));
    r.tokens_per_s.push_back(p.n_gen / std::max(seconds_since(t0), 1e-9));
  }
  summarize_bench(r);
  return r;
}

}  // namespace nibble
