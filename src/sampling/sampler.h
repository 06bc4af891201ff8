// Sampler: turns a row of logits into the next token id. Chain (llama.cpp's order): repetition
// penalty over the last repeat_last_n tokens -> top-k -> top-p -> min-p -> temperature ->
// draw from the seeded Rng. Temperature 0 is greedy (argmax, ties to the lowest id).
#pragma once

#include <cstdint>
#include <deque>
#include <span>
#include <vector>

#include "sampling/rng.h"
#include "util/result.h"

namespace nibble {

struct SamplerParams {
  float temperature = 0.8f;     // 0 = greedy
  int32_t top_k = 40;           // 0 = off
  float top_p = 0.95f;          // 1 = off; (0, 1]
  float min_p = 0.05f;          // 0 = off; [0, 1]
  float repeat_penalty = 1.0f;  // 1 = off; > 0
  int32_t repeat_last_n = 64;   // tokens of history the penalty looks at
  uint64_t seed = 0;

  // Errors name the flag-style parameter and the value.
  Status validate() const;
};

// Index of the largest logit (lowest index on ties).
int32_t argmax(std::span<const float> logits);

class Sampler {
 public:
  // params must have passed validate().
  explicit Sampler(const SamplerParams& params);

  // Picks the next id. Does not record it: call accept() with the id that was used.
  int32_t sample(std::span<const float> logits);
  // Adds an id (prompt or generated) to the penalty history.
  void accept(int32_t id);

  // The probabilities the draw would use for `logits`, after every filter (for tests):
  // pairs (id, p), sorted by descending p.
  std::vector<std::pair<int32_t, float>> distribution(std::span<const float> logits) const;

 private:
  SamplerParams p_;
  Rng rng_;
  std::deque<int32_t> history_;
};

}  // namespace nibble
