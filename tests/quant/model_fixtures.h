// Model files for the quantize tests: the fixture checkpoints converted to GGUF once per process,
// and small synthetic GGUF models and imatrix files written with GgufWriter.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "convert/gemma4_converter.h"
#include "gguf/gguf_file.h"
#include "gguf/gguf_writer.h"
#include "quant/quant.h"
#include "test_util.h"

namespace nibble::qtest {

// tests/fixtures/models/<name>/hf converted to an f32 GGUF (cached for the process).
inline std::string fixture_gguf(const std::string& name, GgmlType type = GgmlType::F32) {
  static std::map<std::string, std::string> cache;
  const std::string key = name + "/" + ggml_type_name(type);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  ConvertOptions o;
  o.hf_dir = test::source_dir() + "/tests/fixtures/models/" + name + "/hf";
  o.out_path = test::temp_dir() + "/" + name + "-" + ggml_type_name(type) + ".gguf";
  o.type = type;
  auto r = convert_gemma4_checkpoint(o);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  cache[key] = o.out_path;
  return o.out_path;
}

// Deterministic values (the Appendix B LCG), roughly uniform in [-scale, scale).
struct Lcg {
  uint32_t s;
  float next(float scale) {
    s = s * 1664525u + 1013904223u;
    return scale * static_cast<float>(static_cast<int32_t>(s >> 8) - 8388608) / 8388608.0f;
  }
};

// A small "llama"-architecture model (width 256, so K-quants need no fallback): n_layer layers,
// f32 weights seeded by tensor index. `poison` names a tensor whose first value becomes NaN;
// `big` names a tensor scaled to exceed SFP8's range.
inline std::string write_llama_gguf(const std::string& path, int n_layer = 4, bool tied = false,
                                    const std::string& poison = "", const std::string& big = "") {
  GgufWriter w;
  auto& md = w.metadata();
  md.set("general.architecture", GgufValue::str("llama"));
  md.set("general.name", GgufValue::str("synthetic"));
  md.set("llama.block_count", GgufValue::u32(static_cast<uint32_t>(n_layer)));
  md.set("llama.embedding_length", GgufValue::u32(256));
  md.set("llama.attention.head_count", GgufValue::u32(8));
  md.set("llama.attention.head_count_kv", GgufValue::u32(2));
  md.set("general.file_type", GgufValue::u32(0));
  std::vector<std::pair<std::string, std::vector<uint64_t>>> shapes = {
      {"token_embd.weight", {256, 512}}, {"output_norm.weight", {256}}};
  if (!tied) shapes.push_back({"output.weight", {256, 512}});
  for (int i = 0; i < n_layer; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    shapes.push_back({p + "attn_norm.weight", {256}});
    shapes.push_back({p + "attn_q.weight", {256, 256}});
    shapes.push_back({p + "attn_k.weight", {256, 64}});
    shapes.push_back({p + "attn_v.weight", {256, 64}});
    shapes.push_back({p + "attn_output.weight", {256, 256}});
    shapes.push_back({p + "ffn_gate.weight", {256, 512}});
    shapes.push_back({p + "ffn_up.weight", {256, 512}});
    shapes.push_back({p + "ffn_down.weight", {512, 256}});
  }
  static std::vector<std::vector<float>> keep;  // data must outlive the writer
  uint32_t seed = 1;
  for (const auto& [name, shape] : shapes) {
    uint64_t n = 1;
    for (uint64_t d : shape) n *= d;
    std::vector<float> v(n);
    Lcg g{seed++};
    for (auto& x : v) x = shape.size() == 1 ? 1.0f + g.next(0.1f) : g.next(0.05f);
    if (name == poison) v[0] = NAN;
    if (name == big) v[7] = 3.0f;
    keep.push_back(std::move(v));
    const auto& d = keep.back();
    EXPECT_TRUE(w.add_tensor(name, GgmlType::F32, shape, reinterpret_cast<const uint8_t*>(d.data()),
                             d.size() * 4)
                    .ok());
  }
  EXPECT_TRUE(w.write(path).ok());
  return path;
}

// An imatrix entry: name -> (ne0, per-matrix sums [n_mat][ne0], per-matrix counts).
struct ImatrixEntry {
  uint64_t ne0 = 0;
  std::vector<float> sums;    // ne0 * n_mat
  std::vector<float> counts;  // n_mat
};

// A llama-imatrix GGUF file.
inline void write_imatrix_gguf(const std::string& path,
                               const std::map<std::string, ImatrixEntry>& entries,
                               bool with_metadata = true) {
  GgufWriter w;
  if (with_metadata) {
    w.metadata().set("general.type", GgufValue::str("imatrix"));
    w.metadata().set("imatrix.datasets", GgufValue::str_array({"unit-test.txt"}));
    w.metadata().set("imatrix.chunk_count", GgufValue::u32(7));
    w.metadata().set("imatrix.chunk_size", GgufValue::u32(512));
  }
  for (const auto& [name, e] : entries) {
    const uint64_t n_mat = e.counts.size();
    EXPECT_TRUE(w.add_tensor(name + ".in_sum2", GgmlType::F32, {e.ne0, n_mat},
                             reinterpret_cast<const uint8_t*>(e.sums.data()), e.sums.size() * 4)
                    .ok());
    EXPECT_TRUE(w.add_tensor(name + ".counts", GgmlType::F32, {1, n_mat},
                             reinterpret_cast<const uint8_t*>(e.counts.data()), e.counts.size() * 4)
                    .ok());
  }
  EXPECT_TRUE(w.write(path).ok());
}

// The legacy .dat format of the same data (one ncall per entry: counts[0]).
inline void write_imatrix_dat(const std::string& path,
                              const std::map<std::string, ImatrixEntry>& entries) {
  std::vector<uint8_t> b;
  auto put = [&b](const void* p, size_t n) {
    b.insert(b.end(), static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + n);
  };
  const int32_t n = static_cast<int32_t>(entries.size());
  put(&n, 4);
  for (const auto& [name, e] : entries) {
    const int32_t len = static_cast<int32_t>(name.size());
    put(&len, 4);
    put(name.data(), name.size());
    const int32_t ncall = static_cast<int32_t>(e.counts[0]);
    const int32_t nval = static_cast<int32_t>(e.sums.size());
    put(&ncall, 4);
    put(&nval, 4);
    put(e.sums.data(), e.sums.size() * 4);
  }
  const int32_t chunks = 7;
  put(&chunks, 4);
  const std::string ds = "unit-test.txt";
  const int32_t dlen = static_cast<int32_t>(ds.size());
  put(&dlen, 4);
  put(ds.data(), ds.size());
  test::write_bytes(path, b);
}

// Per-column weights llama-quantize derives from an entry (sum / count per matrix).
inline std::vector<float> imatrix_values(const ImatrixEntry& e) {
  std::vector<float> v(e.sums.size());
  for (size_t j = 0; j < e.counts.size(); ++j) {
    for (uint64_t i = 0; i < e.ne0; ++i) v[j * e.ne0 + i] = e.sums[j * e.ne0 + i] / e.counts[j];
  }
  return v;
}

// A tensor's values as f32.
inline std::vector<float> values_of(const GgufTensorInfo& t) {
  std::vector<float> v(t.n_elements);
  dequantize_row(t.type, t.data, v.data(), t.n_elements);
  return v;
}

}  // namespace nibble::qtest
