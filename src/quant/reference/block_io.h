// Copying packed blocks in and out of byte buffers (no alignment or aliasing assumptions).
#pragma once

#include <cstdint>
#include <cstring>

namespace nibble::qref {

template <class Block>
inline Block load_block(const uint8_t* src, uint64_t i) {
  Block b;
  std::memcpy(&b, src + i * sizeof(Block), sizeof(Block));
  return b;
}

template <class Block>
inline void store_block(uint8_t* dst, uint64_t i, const Block& b) {
  std::memcpy(dst + i * sizeof(Block), &b, sizeof(Block));
}

}  // namespace nibble::qref
