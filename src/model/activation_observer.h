// ActivationObserver: an optional hook that sees the input of every weight matmul of a forward
// pass (attention q/k/v/o, the dense and expert GeGLU projections, the MoE router, the PLE
// projections). `nibble imatrix` uses it to sum squared activations per input column (llama.cpp's
// imatrix). Not called for the output head (llama-imatrix skips it too) nor for embedding lookups.
// Absent (nullptr, the default) it costs one branch per matmul and changes nothing.
#pragma once

#include <cstdint>

#include "ops/weight_matrix.h"

namespace nibble {

class ActivationObserver {
 public:
  virtual ~ActivationObserver() = default;
  // x: [n_tokens, w.n_in], the rows about to be multiplied by `w`. w.name is the GGUF tensor name;
  // for a slice of a 3-D expert tensor, w.expert is the expert (of w.n_expert) and n_tokens the
  // tokens routed to it. A fused gate_up expert slice is reported once per batch, not per half.
  // Called on the thread running the forward pass, in forward order.
  virtual void on_matmul_input(const WeightMatrix& w, const float* x, int64_t n_tokens) = 0;
};

inline void observe_input(ActivationObserver* obs, const WeightMatrix& w, const float* x,
                          int64_t n_tokens) {
  if (obs != nullptr) obs->on_matmul_input(w, x, n_tokens);
}

}  // namespace nibble
