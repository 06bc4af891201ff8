#include "gguf/tensor_groups.h"

namespace nibble {

namespace {
bool has(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }
}  // namespace

std::string tensor_group(const std::string& n) {
  if (n == "token_embd.weight") return "embedding";
  if (n == "per_layer_token_embd.weight") return "per-layer embedding (PLE)";
  if (n == "output.weight") return "output head";
  if (has(n, "_norm") || has(n, ".scale") || has(n, "layer_output_scale") || n == "rope_freqs.weight") {
    return "norms & scalars";
  }
  if (has(n, "per_layer_model_proj") || has(n, ".inp_gate.") || has(n, ".proj.")) return "PLE projections";
  if (has(n, "_exps")) return "MoE experts";
  if (has(n, "ffn_gate_inp")) return "router";
  if (has(n, ".attn_")) return "attention";
  if (has(n, ".ffn_")) return "dense FFN";
  return "other";
}

}  // namespace nibble
