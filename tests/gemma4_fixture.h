// A tiny synthetic Gemma 4 GGUF built in memory (STYLE §2.5): any mix of sliding/full layers,
// KV sharing, per-layer embeddings, MoE and attention_k_eq_v, weights seeded by tensor name.
// Used by tests/runtime and tests/model; the real-checkpoint goldens are in tests/model.
#pragma once

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gguf/gguf_file.h"
#include "gguf/gguf_writer.h"
#include "model/registry.h"
#include "quant/quant.h"

namespace nibble::test {

struct Gemma4FixtureShape {
  int64_t n_embd = 32;
  int64_t n_head = 2;
  int64_t n_vocab = 64;
  std::vector<bool> sliding = {true, true, false, true, false};  // one entry per layer
  int64_t head_dim_swa = 8;
  int64_t head_dim_full = 16;
  int64_t n_head_kv_swa = 1;
  int64_t n_head_kv_full = 1;
  int64_t n_ff = 48;
  int64_t window = 4;
  int64_t n_shared_kv = 0;
  int64_t n_per_layer = 0;  // P
  int64_t n_expert = 0;
  int64_t n_expert_used = 0;
  int64_t n_ff_exp = 0;
  bool k_eq_v = false;               // full layers have no attn_v
  bool redundant_shared_kv = false;  // write (poisoned) attn_k/v on KV-shared layers
  float softcap = 30.0f;
  GgmlType type = GgmlType::F32;  // type of the 2-D weights
  uint32_t seed = 1;
};

// Deterministic values in [-1, 1) from a name and an index.
inline float fixture_value(const std::string& name, uint64_t i, uint32_t seed) {
  uint64_t h = 1469598103934665603ull ^ seed;
  for (char c : name) h = (h ^ static_cast<uint8_t>(c)) * 1099511628211ull;
  h ^= i * 0x9E3779B97F4A7C15ull;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return static_cast<float>(static_cast<double>(h >> 11) * 0x1.0p-53 * 2.0 - 1.0);
}

struct Gemma4Fixture {
  std::vector<uint8_t> bytes;
  std::unique_ptr<Model> model;
};

inline void fixture_tensor(GgufWriter& w, const std::string& name, std::vector<uint64_t> shape,
                           GgmlType type, float scale, float offset, uint32_t seed,
                           float poison = 0.0f) {
  uint64_t n = 1;
  for (auto d : shape) n *= d;
  std::vector<float> v(n);
  for (uint64_t i = 0; i < n; ++i) {
    v[i] = poison != 0.0f ? poison : offset + scale * fixture_value(name, i, seed);
  }
  if (shape.size() == 1) type = GgmlType::F32;
  std::vector<uint8_t> data(ggml_row_size(type, shape[0]) * (n / shape[0]));
  const uint64_t rb = ggml_row_size(type, shape[0]);
  for (uint64_t r = 0; r < n / shape[0]; ++r)
    quantize_row(type, v.data() + r * shape[0], data.data() + r * rb, shape[0]);
  auto st = w.add_tensor(name, type, shape, [data = std::move(data)](std::vector<uint8_t>& out) {
    out.insert(out.end(), data.begin(), data.end());
    return ok_status();
  });
  if (!st.ok()) throw std::runtime_error(st.error().message);
}

// Builds the GGUF bytes; `arch` lets tests write a wrong architecture.
inline std::vector<uint8_t> build_gemma4_gguf(const Gemma4FixtureShape& s,
                                              const std::string& arch = "gemma4",
                                              const std::string& skip_tensor = "",
                                              const std::string& misshape_tensor = "") {
  GgufWriter w;
  const int64_t L = static_cast<int64_t>(s.sliding.size()), H = s.n_embd, P = s.n_per_layer;
  auto& md = w.metadata();
  md.set("general.architecture", GgufValue::str(arch));
  const std::string p = "gemma4.";
  md.set(p + "context_length", GgufValue::u32(4096));
  md.set(p + "embedding_length", GgufValue::u32(static_cast<uint32_t>(H)));
  md.set(p + "block_count", GgufValue::u32(static_cast<uint32_t>(L)));
  md.set(p + "feed_forward_length", GgufValue::u32(static_cast<uint32_t>(s.n_ff)));
  md.set(p + "attention.head_count", GgufValue::u32(static_cast<uint32_t>(s.n_head)));
  std::vector<uint32_t> kv;
  for (bool sl : s.sliding)
    kv.push_back(static_cast<uint32_t>(sl ? s.n_head_kv_swa : s.n_head_kv_full));
  md.set(p + "attention.head_count_kv", GgufValue::array(GgufType::kUint32, kv));
  md.set(p + "attention.key_length", GgufValue::u32(static_cast<uint32_t>(s.head_dim_full)));
  md.set(p + "attention.value_length", GgufValue::u32(static_cast<uint32_t>(s.head_dim_full)));
  md.set(p + "attention.key_length_swa", GgufValue::u32(static_cast<uint32_t>(s.head_dim_swa)));
  md.set(p + "attention.value_length_swa", GgufValue::u32(static_cast<uint32_t>(s.head_dim_swa)));
  md.set(p + "attention.layer_norm_rms_epsilon", GgufValue::f32(1e-6f));
  md.set(p + "attention.sliding_window", GgufValue::u32(static_cast<uint32_t>(s.window)));
  md.set(p + "attention.sliding_window_pattern", GgufValue::bool_array(s.sliding));
  md.set(p + "attention.shared_kv_layers", GgufValue::u32(static_cast<uint32_t>(s.n_shared_kv)));
  md.set(p + "embedding_length_per_layer_input", GgufValue::u32(static_cast<uint32_t>(P)));
  md.set(p + "rope.freq_base", GgufValue::f32(1e6f));
  md.set(p + "rope.freq_base_swa", GgufValue::f32(1e4f));
  md.set(p + "final_logit_softcapping", GgufValue::f32(s.softcap));
  if (s.n_expert > 0) {
    md.set(p + "expert_count", GgufValue::u32(static_cast<uint32_t>(s.n_expert)));
    md.set(p + "expert_used_count", GgufValue::u32(static_cast<uint32_t>(s.n_expert_used)));
    md.set(p + "expert_feed_forward_length", GgufValue::u32(static_cast<uint32_t>(s.n_ff_exp)));
  }
  const GgmlType t = s.type;
  auto add = [&](const std::string& name, std::vector<uint64_t> shape, float scale,
                 float offset = 0.0f, float poison = 0.0f) {
    if (name == skip_tensor) return;
    if (name == misshape_tensor) shape[0] += 32;
    fixture_tensor(w, name, shape, t, scale, offset, s.seed, poison);
  };
  const uint64_t uH = static_cast<uint64_t>(H), uV = static_cast<uint64_t>(s.n_vocab);
  add("token_embd.weight", {uH, uV}, 0.5f);
  add("output_norm.weight", {uH}, 0.2f, 1.0f);
  if (skip_tensor != "rope_freqs.weight") {
    std::vector<float> f(static_cast<size_t>(s.head_dim_full / 2), 1e30f);
    for (int64_t j = 0; j < s.head_dim_full / 8; ++j) f[j] = 1.0f;  // partial rotary 0.25
    auto st = w.add_tensor("rope_freqs.weight", GgmlType::F32, {f.size()},
                           [f](std::vector<uint8_t>& out) {
                             const auto* b = reinterpret_cast<const uint8_t*>(f.data());
                             out.insert(out.end(), b, b + f.size() * sizeof(float));
                             return ok_status();
                           });
    if (!st.ok()) throw std::runtime_error(st.error().message);
  }
  if (P > 0) {
    add("per_layer_token_embd.weight", {static_cast<uint64_t>(L * P), uV}, 0.5f);
    add("per_layer_model_proj.weight", {uH, static_cast<uint64_t>(L * P)}, 0.1f);
    add("per_layer_proj_norm.weight", {static_cast<uint64_t>(P)}, 0.2f, 1.0f);
  }
  const int64_t first_shared = L - s.n_shared_kv;
  for (int64_t l = 0; l < L; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    const bool sl = s.sliding[l];
    const uint64_t d = static_cast<uint64_t>(sl ? s.head_dim_swa : s.head_dim_full);
    const uint64_t nkv = static_cast<uint64_t>(sl ? s.n_head_kv_swa : s.n_head_kv_full);
    const uint64_t nq = static_cast<uint64_t>(s.n_head) * d;
    const uint64_t F = static_cast<uint64_t>(s.n_ff);
    const float ws = 1.0f / std::sqrt(static_cast<float>(H));
    add(b + "attn_norm.weight", {uH}, 0.2f, 1.0f);
    add(b + "attn_q.weight", {uH, nq}, ws);
    add(b + "attn_q_norm.weight", {d}, 0.2f, 1.0f);
    add(b + "attn_output.weight", {nq, uH}, 1.0f / std::sqrt(static_cast<float>(nq)));
    const bool owns = l < first_shared;
    if (owns || s.redundant_shared_kv) {
      const float poison = owns ? 0.0f : NAN;
      add(b + "attn_k.weight", {uH, nkv * d}, ws, 0.0f, poison);
      add(b + "attn_k_norm.weight", {d}, 0.2f, 1.0f, poison);
      if (!(s.k_eq_v && !sl)) add(b + "attn_v.weight", {uH, nkv * d}, ws, 0.0f, poison);
    }
    add(b + "post_attention_norm.weight", {uH}, 0.2f, 1.0f);
    add(b + "ffn_norm.weight", {uH}, 0.2f, 1.0f);
    add(b + "ffn_gate.weight", {uH, F}, ws);
    add(b + "ffn_up.weight", {uH, F}, ws);
    add(b + "ffn_down.weight", {F, uH}, 1.0f / std::sqrt(static_cast<float>(F)));
    add(b + "post_ffw_norm.weight", {uH}, 0.2f, 1.0f);
    add(b + "layer_output_scale.weight", {1}, 0.2f, 0.8f);
    if (s.n_expert > 0) {
      const uint64_t E = static_cast<uint64_t>(s.n_expert), I = static_cast<uint64_t>(s.n_ff_exp);
      add(b + "ffn_gate_inp.weight", {uH, E}, 1.0f);
      add(b + "ffn_gate_inp.scale", {uH}, 0.2f, 1.0f);
      add(b + "ffn_down_exps.scale", {E}, 0.2f, 1.0f);
      add(b + "ffn_gate_up_exps.weight", {uH, 2 * I, E}, ws);
      add(b + "ffn_down_exps.weight", {I, uH, E}, 1.0f / std::sqrt(static_cast<float>(I)));
      add(b + "pre_ffw_norm_2.weight", {uH}, 0.2f, 1.0f);
      add(b + "post_ffw_norm_1.weight", {uH}, 0.2f, 1.0f);
      add(b + "post_ffw_norm_2.weight", {uH}, 0.2f, 1.0f);
    }
    if (P > 0) {
      add(b + "inp_gate.weight", {uH, static_cast<uint64_t>(P)}, ws);
      add(b + "proj.weight", {static_cast<uint64_t>(P), uH}, 0.3f);
      add(b + "post_norm.weight", {uH}, 0.2f, 1.0f);
    }
  }
  auto bytes = w.write_to_memory();
  if (!bytes.ok()) throw std::runtime_error(bytes.error().message);
  return std::move(bytes).value();
}

// Builds and loads the fixture; throws on failure (a test bug, not an input error).
inline std::unique_ptr<Gemma4Fixture> make_gemma4_fixture(const Gemma4FixtureShape& s) {
  auto f = std::make_unique<Gemma4Fixture>();
  f->bytes = build_gemma4_gguf(s);
  auto file = GgufFile::parse(f->bytes.data(), f->bytes.size(), "fixture.gguf");
  if (!file.ok()) throw std::runtime_error(file.error().message);
  auto model = load_model(std::move(file).value());
  if (!model.ok()) throw std::runtime_error(model.error().message);
  f->model = std::move(model).value();
  return f;
}

}  // namespace nibble::test
