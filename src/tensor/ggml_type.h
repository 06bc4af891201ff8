// GgmlType: every ggml tensor type id with its block geometry (spec gguf-and-quant-formats §2.1),
// plus nibble's one extension, SFP8 (id 1000, see below). This table is the only place that
// enumerates types; quantizers hang off it in quant/.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace nibble {

enum class GgmlType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22,
  IQ4_XS = 23, I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30,
  TQ1_0 = 34, TQ2_0 = 35, MXFP4 = 39, NVFP4 = 40, Q1_0 = 41, Q2_0 = 42,
  // nibble extension, not a ggml type: gemma.cpp's 8-bit "switched floating point" (spec §7.1),
  // one byte per value, block size 1. The id sits far above ggml's (which end below 64) so it
  // can never collide with a future ggml type; llama.cpp and Ollama reject files that use it.
  SFP8 = 1000,
};

// Number of ggml type ids nibble knows (ids >= this are rejected, except kNibbleSfp8TypeId).
inline constexpr uint32_t kGgmlTypeCount = 43;
// The GGUF tensor type id of nibble's SFP8 extension (docs/quantize.md).
inline constexpr uint32_t kNibbleSfp8TypeId = 1000;

// True for types only nibble reads (today: SFP8).
inline constexpr bool is_nibble_extension(GgmlType t) { return t == GgmlType::SFP8; }

struct GgmlTypeTraits {
  const char* name;      // ggml_type_name: "f32", "q4_0", "q4_K", ...
  uint32_t block_size;   // elements per block; 0 = removed id
  uint32_t type_size;    // bytes per block
  bool quantized;
};

// Traits of a type id, or nullptr for unknown/removed ids (kNibbleSfp8TypeId is known).
const GgmlTypeTraits* ggml_type_traits(uint32_t id);
inline const GgmlTypeTraits& traits(GgmlType t) { return *ggml_type_traits(static_cast<uint32_t>(t)); }
inline const char* ggml_type_name(GgmlType t) { return traits(t).name; }
// Parses "q4_0", "Q4_0", "bf16", ... (case-insensitive).
std::optional<GgmlType> ggml_type_from_name(std::string_view name);

// Bytes of one row of `n` elements (n must be a multiple of the block size).
inline uint64_t ggml_row_size(GgmlType t, uint64_t n) {
  const auto& tr = traits(t);
  return n / tr.block_size * tr.type_size;
}

}  // namespace nibble
