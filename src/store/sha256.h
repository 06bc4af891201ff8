// SHA-256 (FIPS 180-4), streaming: for store IDs and checking downloads (`nibble pull`).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace nibble {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t n);
  // Lowercase hex of the digest; the object is finished afterwards.
  std::string hex_digest();

 private:
  void block(const uint8_t* p);
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};

std::string sha256_hex(std::string_view data);

}  // namespace nibble
