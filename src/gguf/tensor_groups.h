// Tensor groups for reports (inspect, plan): which part of a Gemma 4 model a GGUF tensor
// belongs to, by name.
#pragma once

#include <string>

namespace nibble {

// "embedding", "per-layer embedding (PLE)", "PLE projections", "output head", "attention",
// "dense FFN", "MoE experts", "router", "norms & scalars", "other".
std::string tensor_group(const std::string& gguf_name);

}  // namespace nibble
