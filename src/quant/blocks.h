// Block layouts of the ggml quant types, byte for byte as ggml-common.h (spec §2).
#pragma once

#include <cstdint>

namespace nibble {

inline constexpr int kQK4_0 = 32;
inline constexpr int kQK8_0 = 32;

#pragma pack(push, 1)
struct BlockQ4_0 {
  uint16_t d;          // f16 scale
  uint8_t qs[16];      // byte j: element j (low nibble), element j+16 (high nibble)
};
struct BlockQ8_0 {
  uint16_t d;          // f16 scale
  int8_t qs[32];
};
#pragma pack(pop)
static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ8_0) == 34);

}  // namespace nibble
