// GeGLU MLP over a batch of tokens.
#include "model/blocks/geglu_mlp.h"

#include <vector>

#include "ops/activation.h"
#include "ops/matmul.h"

namespace nibble {

void geglu_mlp(const WeightMatrix& gate, const WeightMatrix& up, const WeightMatrix& down,
               const float* x, int64_t n_tokens, float* out, ActivationObserver* obs) {
  const int64_t n_ff = gate.n_out;
  std::vector<float> g(static_cast<size_t>(n_tokens * n_ff));  // [n_tokens, n_ff]
  std::vector<float> u(static_cast<size_t>(n_tokens * n_ff));  // [n_tokens, n_ff]
  if (obs != nullptr) {
    obs->on_matmul_input(gate, x, n_tokens);
    const bool fused = up.name != nullptr && up.name == gate.name && up.expert == gate.expert;
    if (!fused) obs->on_matmul_input(up, x, n_tokens);
  }
  matmul(gate, x, n_tokens, g.data());
  matmul(up, x, n_tokens, u.data());
  geglu(g.data(), u.data(), n_tokens * n_ff);
  observe_input(obs, down, g.data(), n_tokens);
  matmul(down, g.data(), n_tokens, out);
}

}  // namespace nibble
