// Logit reference files: writer, validating reader, top-k + rest KL divergence.
#include "quality/logit_reference.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "util/checked_math.h"

namespace nibble {

namespace {

constexpr char kMagic[8] = {'N', 'B', 'R', 'E', 'F', 0, 0, 0};
constexpr uint64_t kFixedHeaderBytes = 8 + 4 + 4 + 8 * 5 + 4;  // up to and including name_len
constexpr int64_t kMaxVocab = int64_t{1} << 30;
constexpr int64_t kMaxCtx = int64_t{1} << 24;
constexpr int64_t kMaxTokens = int64_t{1} << 40;

uint64_t record_bytes(uint32_t top_k) { return 4 + 8 + 8 + uint64_t{8} * top_k; }

template <typename T>
void put(std::vector<uint8_t>& b, T v) {
  uint8_t raw[sizeof(T)];
  std::memcpy(raw, &v, sizeof(T));
  b.insert(b.end(), raw, raw + sizeof(T));
}

template <typename T>
T get(const uint8_t*& p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  p += sizeof(T);
  return v;
}

// Ids ordered by descending logit, ties to the lower id.
struct ByLogit {
  const float* l;
  bool operator()(int32_t a, int32_t b) const { return l[a] > l[b] || (l[a] == l[b] && a < b); }
};

}  // namespace

double log_sum_exp(const float* logits, int64_t n_vocab) {
  float mx = logits[0];
  for (int64_t v = 1; v < n_vocab; ++v) mx = logits[v] > mx ? logits[v] : mx;
  double sum = 0.0;
  for (int64_t v = 0; v < n_vocab; ++v) sum += std::exp(static_cast<double>(logits[v]) - mx);
  return std::log(sum) + mx;
}

void make_logit_record(const float* logits, int64_t n_vocab, uint32_t top_k, int32_t token,
                       LogitRefRecord& out, std::vector<int32_t>& scratch) {
  const int64_t k = std::min<int64_t>(top_k, n_vocab);
  scratch.resize(static_cast<size_t>(n_vocab));
  for (int64_t v = 0; v < n_vocab; ++v) scratch[v] = static_cast<int32_t>(v);
  std::partial_sort(scratch.begin(), scratch.begin() + k, scratch.end(), ByLogit{logits});
  out.token = token;
  out.lse = log_sum_exp(logits, n_vocab);
  out.nll = out.lse - logits[token];
  out.ids.assign(scratch.begin(), scratch.begin() + k);
  out.logits.resize(static_cast<size_t>(k));
  for (int64_t i = 0; i < k; ++i) out.logits[i] = logits[out.ids[i]];
}

uint64_t reference_token_hash(std::span<const int32_t> scored, int64_t ctx, int32_t bos) {
  uint64_t h = 14695981039346656037ull;
  auto mix = [&h](const void* data, size_t n) {
    const auto* p = static_cast<const uint8_t*>(data);
    for (size_t i = 0; i < n; ++i) {
      h ^= p[i];
      h *= 1099511628211ull;
    }
  };
  mix(&ctx, sizeof(ctx));
  mix(&bos, sizeof(bos));
  for (int32_t id : scored) mix(&id, sizeof(id));
  return h;
}

// ---- writer ----------------------------------------------------------------------------------

Result<LogitRefWriter> LogitRefWriter::create(const std::string& path,
                                              const LogitRefHeader& header) {
  if (header.top_k < 1 || header.top_k > kLogitRefMaxTopK ||
      static_cast<int64_t>(header.top_k) > header.n_vocab) {
    return make_error(ErrorCode::kInvalidArgument,
                      "reference %s: top-k %u must be between 1 and min(%u, n_vocab %lld)",
                      path.c_str(), header.top_k, kLogitRefMaxTopK,
                      static_cast<long long>(header.n_vocab));
  }
  NIBBLE_ASSIGN_OR_RETURN(AtomicFile f, AtomicFile::create(path));
  LogitRefWriter w(std::move(f), header);
  std::string name = header.model_name.substr(0, kLogitRefMaxName);
  w.buf_.insert(w.buf_.end(), kMagic, kMagic + 8);
  put<uint32_t>(w.buf_, kLogitRefVersion);
  put<uint32_t>(w.buf_, header.top_k);
  put<int64_t>(w.buf_, header.n_vocab);
  put<int64_t>(w.buf_, header.ctx);
  put<int64_t>(w.buf_, header.n_chunks);
  put<int64_t>(w.buf_, header.n_tokens);
  put<uint64_t>(w.buf_, header.token_hash);
  put<uint32_t>(w.buf_, static_cast<uint32_t>(name.size()));
  w.buf_.insert(w.buf_.end(), name.begin(), name.end());
  return w;
}

Status LogitRefWriter::add(const LogitRefRecord& r) {
  if (r.ids.size() != header_.top_k || r.logits.size() != header_.top_k) {
    return make_error(ErrorCode::kInternal, "reference: record has %zu ids, the file keeps %u",
                      r.ids.size(), header_.top_k);
  }
  if (n_written_ >= header_.n_tokens) {
    return make_error(ErrorCode::kInternal, "reference: more than the %lld records declared",
                      static_cast<long long>(header_.n_tokens));
  }
  put<int32_t>(buf_, r.token);
  put<double>(buf_, r.lse);
  put<double>(buf_, r.nll);
  for (int32_t id : r.ids) put<int32_t>(buf_, id);
  for (float l : r.logits) put<float>(buf_, l);
  ++n_written_;
  if (buf_.size() >= (size_t{1} << 20)) return flush();
  return ok_status();
}

Status LogitRefWriter::flush() {
  if (buf_.empty()) return ok_status();
  NIBBLE_TRY(file_.write(buf_.data(), buf_.size()));
  buf_.clear();
  return ok_status();
}

Status LogitRefWriter::commit() {
  if (n_written_ != header_.n_tokens) {
    return make_error(ErrorCode::kInternal, "reference: %lld records written, %lld declared",
                      static_cast<long long>(n_written_), static_cast<long long>(header_.n_tokens));
  }
  NIBBLE_TRY(flush());
  return file_.commit();
}

// ---- reader ----------------------------------------------------------------------------------

Result<LogitRefReader> LogitRefReader::open(const std::string& path) {
  LogitRefReader r;
  r.path_ = path;
  const char* p = path.c_str();
  std::error_code ec;
  const uint64_t size = std::filesystem::file_size(path, ec);
  if (ec) {
    return make_error(ErrorCode::kNotFound, "reference %s: cannot open: %s", p,
                      ec.message().c_str());
  }
  r.file_.reset(std::fopen(p, "rb"));
  if (!r.file_) {
    return make_error(ErrorCode::kNotFound, "reference %s: cannot open: %s", p,
                      std::strerror(errno));
  }
  uint8_t fixed[kFixedHeaderBytes];
  if (size < kFixedHeaderBytes ||
      std::fread(fixed, 1, sizeof(fixed), r.file_.get()) != sizeof(fixed)) {
    return make_error(ErrorCode::kFormat,
                      "reference %s: %llu bytes is too short for a reference file header (%llu)", p,
                      static_cast<unsigned long long>(size),
                      static_cast<unsigned long long>(kFixedHeaderBytes));
  }
  if (std::memcmp(fixed, kMagic, 8) != 0) {
    return make_error(ErrorCode::kFormat,
                      "reference %s: not a nibble reference file (no NBREF magic; make one with "
                      "`nibble perplexity --save-reference`)",
                      p);
  }
  const uint8_t* q = fixed + 8;
  const uint32_t version = get<uint32_t>(q);
  LogitRefHeader& h = r.header_;
  h.top_k = get<uint32_t>(q);
  h.n_vocab = get<int64_t>(q);
  h.ctx = get<int64_t>(q);
  h.n_chunks = get<int64_t>(q);
  h.n_tokens = get<int64_t>(q);
  h.token_hash = get<uint64_t>(q);
  const uint32_t name_len = get<uint32_t>(q);
  if (version != kLogitRefVersion) {
    return make_error(ErrorCode::kUnsupported,
                      "reference %s: format version %u, this nibble reads version %u", p, version,
                      kLogitRefVersion);
  }
  if (h.n_vocab < 1 || h.n_vocab > kMaxVocab) {
    return make_error(ErrorCode::kFormat, "reference %s: n_vocab %lld is out of range [1, %lld]", p,
                      static_cast<long long>(h.n_vocab), static_cast<long long>(kMaxVocab));
  }
  if (h.top_k < 1 || h.top_k > kLogitRefMaxTopK || static_cast<int64_t>(h.top_k) > h.n_vocab) {
    return make_error(ErrorCode::kFormat,
                      "reference %s: top_k %u is out of range [1, min(%u, n_vocab %lld)]", p,
                      h.top_k, kLogitRefMaxTopK, static_cast<long long>(h.n_vocab));
  }
  if (h.ctx < 2 || h.ctx > kMaxCtx) {
    return make_error(ErrorCode::kFormat, "reference %s: ctx %lld is out of range [2, %lld]", p,
                      static_cast<long long>(h.ctx), static_cast<long long>(kMaxCtx));
  }
  if (h.n_chunks < 1 || h.n_tokens < 1 || h.n_tokens > kMaxTokens ||
      h.n_tokens / (h.ctx - 1) != h.n_chunks || h.n_tokens % (h.ctx - 1) != 0) {
    return make_error(ErrorCode::kFormat,
                      "reference %s: %lld tokens is not %lld chunks of ctx - 1 = %lld", p,
                      static_cast<long long>(h.n_tokens), static_cast<long long>(h.n_chunks),
                      static_cast<long long>(h.ctx - 1));
  }
  if (name_len > kLogitRefMaxName) {
    return make_error(ErrorCode::kFormat, "reference %s: model name of %u bytes (at most %u)", p,
                      name_len, kLogitRefMaxName);
  }
  const auto records = checked_mul(static_cast<uint64_t>(h.n_tokens), record_bytes(h.top_k));
  const auto expected =
      records ? checked_add(*records, kFixedHeaderBytes + name_len) : std::optional<uint64_t>();
  if (!expected || *expected != size) {
    return make_error(ErrorCode::kFormat,
                      "reference %s: file has %llu bytes, its header (%lld tokens, top-k %u) "
                      "needs %llu",
                      p, static_cast<unsigned long long>(size), static_cast<long long>(h.n_tokens),
                      h.top_k, expected ? static_cast<unsigned long long>(*expected) : 0ull);
  }
  h.model_name.resize(name_len);
  if (name_len > 0 && std::fread(h.model_name.data(), 1, name_len, r.file_.get()) != name_len) {
    return make_error(ErrorCode::kIo, "reference %s: cannot read the model name", p);
  }
  r.buf_.resize(static_cast<size_t>(record_bytes(h.top_k)));
  return r;
}

Status LogitRefReader::next(LogitRefRecord& r) {
  const char* p = path_.c_str();
  const LogitRefHeader& h = header_;
  const long long at = static_cast<long long>(n_read_);
  if (n_read_ >= h.n_tokens) {
    return make_error(ErrorCode::kOutOfRange, "reference %s: all %lld records already read", p,
                      static_cast<long long>(h.n_tokens));
  }
  if (std::fread(buf_.data(), 1, buf_.size(), file_.get()) != buf_.size()) {
    return make_error(ErrorCode::kIo, "reference %s: record %lld: read failed", p, at);
  }
  ++n_read_;
  const uint8_t* q = buf_.data();
  r.token = get<int32_t>(q);
  r.lse = get<double>(q);
  r.nll = get<double>(q);
  const size_t k = h.top_k;
  r.ids.resize(k);
  r.logits.resize(k);
  for (size_t i = 0; i < k; ++i) r.ids[i] = get<int32_t>(q);
  for (size_t i = 0; i < k; ++i) r.logits[i] = get<float>(q);

  if (r.token < 0 || r.token >= h.n_vocab) {
    return make_error(ErrorCode::kFormat,
                      "reference %s: record %lld: token %d is outside [0, %lld)", p, at, r.token,
                      static_cast<long long>(h.n_vocab));
  }
  if (!std::isfinite(r.lse) || !std::isfinite(r.nll) || r.nll < 0.0) {
    return make_error(ErrorCode::kFormat,
                      "reference %s: record %lld: log-sum-exp %g / NLL %g must be finite, NLL >= 0",
                      p, at, r.lse, r.nll);
  }
  double p_sum = 0.0;
  for (size_t i = 0; i < k; ++i) {
    if (r.ids[i] < 0 || r.ids[i] >= h.n_vocab) {
      return make_error(ErrorCode::kFormat,
                        "reference %s: record %lld: top-k id %d is outside [0, %lld)", p, at,
                        r.ids[i], static_cast<long long>(h.n_vocab));
    }
    if (!std::isfinite(r.logits[i]) || (i > 0 && r.logits[i] > r.logits[i - 1])) {
      return make_error(ErrorCode::kFormat,
                        "reference %s: record %lld: top-k logit %zu (%g) is not finite or not in "
                        "descending order",
                        p, at, i, static_cast<double>(r.logits[i]));
    }
    p_sum += std::exp(static_cast<double>(r.logits[i]) - r.lse);
  }
  if (!(p_sum <= 1.0 + 1e-6)) {
    return make_error(ErrorCode::kFormat,
                      "reference %s: record %lld: top-k probabilities sum to %.9g > 1 (log-sum-exp "
                      "%g is too small)",
                      p, at, p_sum, r.lse);
  }
  sorted_.assign(r.ids.begin(), r.ids.end());
  std::sort(sorted_.begin(), sorted_.end());
  if (std::adjacent_find(sorted_.begin(), sorted_.end()) != sorted_.end()) {
    return make_error(ErrorCode::kFormat, "reference %s: record %lld: duplicate top-k id %d", p, at,
                      *std::adjacent_find(sorted_.begin(), sorted_.end()));
  }
  return ok_status();
}

// ---- KL divergence ---------------------------------------------------------------------------

KldPoint KldCalculator::compare(const LogitRefRecord& ref, const float* logits) {
  const int64_t n_vocab = static_cast<int64_t>(in_top_.size());
  const double lse_q = log_sum_exp(logits, n_vocab);
  double kld = 0.0, p_top = 0.0;
  for (size_t i = 0; i < ref.ids.size(); ++i) {
    const double log_p = static_cast<double>(ref.logits[i]) - ref.lse;
    const double log_q = static_cast<double>(logits[ref.ids[i]]) - lse_q;
    const double p = std::exp(log_p);
    kld += p * (log_p - log_q);
    p_top += p;
    in_top_[ref.ids[i]] = 1;
  }
  // Q's rest mass summed directly (1 - Σ q would cancel catastrophically when the top-k hold
  // nearly everything); the model's top-1 on the way.
  double q_rest = 0.0;
  int64_t best = 0;
  for (int64_t v = 0; v < n_vocab; ++v) {
    if (logits[v] > logits[best]) best = v;
    if (!in_top_[v]) q_rest += std::exp(static_cast<double>(logits[v]) - lse_q);
  }
  for (int32_t id : ref.ids) in_top_[id] = 0;
  const double p_rest = 1.0 - p_top;
  if (p_rest > 0.0) {
    kld += p_rest * (std::log(p_rest) - std::log(std::max(q_rest, 1e-300)));
  }
  return {kld, best == ref.ids[0], p_top};
}

double quantile(std::vector<double>& values, double q) {
  if (values.empty()) return 0.0;
  std::sort(values.begin(), values.end());
  const double pos = std::clamp(q, 0.0, 1.0) * static_cast<double>(values.size() - 1);
  const size_t lo = static_cast<size_t>(pos);
  const size_t hi = std::min(lo + 1, values.size() - 1);
  return values[lo] + (pos - static_cast<double>(lo)) * (values[hi] - values[lo]);
}

}  // namespace nibble
