// GeGLU MLP over a batch of tokens.
#include "model/blocks/geglu_mlp.h"


#include "ops/activation.h"
#include "ops/matmul.h"
#include "util/scratch.h"

namespace nibble {

void geglu_mlp(const WeightMatrix& gate, const WeightMatrix& up, const WeightMatrix& down,
               const float* x, int64_t n_tokens, float* out, ActivationObserver* obs) {
  const int64_t n_ff = gate.n_out;
  thread_local ScratchBuffer<float> g_buf, u_buf;
  float* g = g_buf.get(static_cast<size_t>(n_tokens * n_ff));  // [n_tokens, n_ff]
  float* u = u_buf.get(static_cast<size_t>(n_tokens * n_ff));  // [n_tokens, n_ff]
  if (obs != nullptr) {
    obs->on_matmul_input(gate, x, n_tokens);
    const bool fused = up.name != nullptr && up.name == gate.name && up.expert == gate.expert;
    if (!fused) obs->on_matmul_input(up, x, n_tokens);
  }
  matmul_pair(gate, up, x, n_tokens, g, u);
  geglu(g, u, n_tokens * n_ff);
  observe_input(obs, down, g, n_tokens);
  matmul(down, g, n_tokens, out);
}

}  // namespace nibble
