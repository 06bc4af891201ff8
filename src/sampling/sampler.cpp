// The sampler chain.
#include "sampling/sampler.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

#include "util/check.h"

namespace nibble {

Status SamplerParams::validate() const {
  if (!(temperature >= 0.0f) || !std::isfinite(temperature)) {
    return make_error(ErrorCode::kInvalidArgument, "--temp must be a finite number >= 0, got %g",
                      static_cast<double>(temperature));
  }
  if (top_k < 0)
    return make_error(ErrorCode::kInvalidArgument, "--top-k must be >= 0, got %d", top_k);
  if (!(top_p > 0.0f && top_p <= 1.0f)) {
    return make_error(ErrorCode::kInvalidArgument, "--top-p must be in (0, 1], got %g",
                      static_cast<double>(top_p));
  }
  if (!(min_p >= 0.0f && min_p <= 1.0f)) {
    return make_error(ErrorCode::kInvalidArgument, "--min-p must be in [0, 1], got %g",
                      static_cast<double>(min_p));
  }
  if (!(repeat_penalty > 0.0f) || !std::isfinite(repeat_penalty)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "--repeat-penalty must be a finite number > 0, got %g",
                      static_cast<double>(repeat_penalty));
  }
  if (repeat_last_n < 0) {
    return make_error(ErrorCode::kInvalidArgument, "--repeat-last-n must be >= 0, got %d",
                      repeat_last_n);
  }
  return ok_status();
}

int32_t argmax(std::span<const float> logits) {
  NIBBLE_CHECK(!logits.empty(), "argmax of nothing");
  int32_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i) {
    if (logits[i] > logits[best]) best = static_cast<int32_t>(i);
  }
  return best;
}

Sampler::Sampler(const SamplerParams& params) : p_(params), rng_(params.seed) {}

void Sampler::accept(int32_t id) {
  if (p_.repeat_last_n == 0) return;
  history_.push_back(id);
  while (static_cast<int32_t>(history_.size()) > p_.repeat_last_n) history_.pop_front();
}

std::vector<std::pair<int32_t, float>> Sampler::distribution(std::span<const float> logits) const {
  const int32_t n = static_cast<int32_t>(logits.size());
  std::vector<float> l(logits.begin(), logits.end());
  // Repetition penalty (llama.cpp / CTRL): shrink the logits of recently seen tokens.
  if (p_.repeat_penalty != 1.0f) {
    std::unordered_set<int32_t> seen(history_.begin(), history_.end());
    for (int32_t id : seen) {
      if (id < 0 || id >= n) continue;
      l[id] = l[id] > 0.0f ? l[id] / p_.repeat_penalty : l[id] * p_.repeat_penalty;
    }
  }
  std::vector<std::pair<int32_t, float>> c(static_cast<size_t>(n));  // (id, logit) candidates
  for (int32_t i = 0; i < n; ++i) c[i] = {i, l[i]};
  auto by_logit = [](const auto& a, const auto& b) {
    return a.second > b.second || (a.second == b.second && a.first < b.first);
  };
  if (p_.temperature == 0.0f) {
    const auto best = *std::min_element(c.begin(), c.end(), by_logit);
    return {{best.first, 1.0f}};
  }
  if (p_.top_k > 0 && p_.top_k < n) {
    // Only the k best need an order (a full sort of a 262,144-token vocabulary costs ~20 ms).
    std::partial_sort(c.begin(), c.begin() + p_.top_k, c.end(), by_logit);
    c.resize(static_cast<size_t>(p_.top_k));
  } else {
    std::sort(c.begin(), c.end(), by_logit);
  }
  // Probabilities of the remaining candidates at temperature 1 (for top-p / min-p).
  auto probs = [&](float temp) {
    std::vector<double> p(c.size());
    double sum = 0.0;
    for (size_t i = 0; i < c.size(); ++i) {
      p[i] = std::exp(static_cast<double>(c[i].second - c[0].second) / temp);
      sum += p[i];
    }
    for (auto& x : p) x /= sum;
    return p;
  };
  if (p_.top_p < 1.0f) {
    const std::vector<double> p = probs(1.0f);
    double cum = 0.0;
    size_t keep = c.size();
    for (size_t i = 0; i < c.size(); ++i) {
      cum += p[i];
      if (cum >= p_.top_p) {
        keep = i + 1;
        break;
      }
    }
    c.resize(keep);
  }
  if (p_.min_p > 0.0f) {
    const std::vector<double> p = probs(1.0f);
    size_t keep = 1;
    while (keep < c.size() && p[keep] >= p_.min_p * p[0]) ++keep;
    c.resize(keep);
  }
  const std::vector<double> p = probs(p_.temperature);
  std::vector<std::pair<int32_t, float>> out(c.size());
  for (size_t i = 0; i < c.size(); ++i) out[i] = {c[i].first, static_cast<float>(p[i])};
  return out;
}

int32_t Sampler::sample(std::span<const float> logits) {
  if (p_.temperature == 0.0f && p_.repeat_penalty == 1.0f) return argmax(logits);
  const auto d = distribution(logits);
  double r = rng_.uniform(), cum = 0.0;
  for (const auto& [id, p] : d) {
    cum += p;
    if (r < cum) return id;
  }
  return d.back().first;
}

}  // namespace nibble
