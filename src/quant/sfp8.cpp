// SFP8 value codec (spec §7.1); mirrors gemma.cpp compression/sfp-inl.h.
#include "quant/sfp8.h"

#include <cmath>

#include "util/fp16.h"

namespace nibble {

uint16_t sfp8_to_bf16(uint8_t code) {
  const uint32_t sign = static_cast<uint32_t>(code & 0x80u) << 8;
  const uint32_t v = code & 0x7Fu;
  if (v == 0) return static_cast<uint16_t>(sign);
  uint32_t hi, lo;
  if (v < 64) {  // small: 2 mantissa bits, exponent bias 23
    hi = 0x34u + (v >> 3);
    lo = (v << 5) & 0xFFu;
  } else {  // large: 3 mantissa bits, exponent bias 15
    hi = 0x38u + (v >> 4);
    lo = (v << 4) & 0xFFu;
  }
  return static_cast<uint16_t>(sign | (hi << 8) | lo);
}

float sfp8_to_f32(uint8_t code) { return bf16_to_f32(sfp8_to_bf16(code)); }

uint8_t sfp8_from_bf16(uint16_t bf16) {
  const uint32_t sign = (bf16 & 0x8000u) ? 0x80u : 0u;
  uint32_t e = (bf16 >> 7) & 0xFFu;         // biased exponent
  const uint32_t m6 = (bf16 & 0x7Fu) >> 1;  // drop the lowest mantissa bit
  // Large before rounding: >= 1.1111 * 2^-8 rounds up to 2^-7.
  const bool large = e > 119 || (e == 119 && m6 > 0x3Bu);
  // Round half to even: large keeps 3 of the 6 bits (3 dropped + an implicit 0 = 4 dropped),
  // small keeps 2 (4 dropped).
  const uint32_t n_drop = 4;
  const uint32_t wide = large ? (m6 << 1) : m6;  // large: append the implicit 0
  const uint32_t keep_bits = large ? 3 : 2;
  uint32_t kept = wide >> n_drop;
  const uint32_t dropped = wide & ((1u << n_drop) - 1u);
  const uint32_t half = 1u << (n_drop - 1);
  if (dropped > half || (dropped == half && (kept & 1u))) ++kept;
  if (kept >> keep_bits) {  // carried out of the mantissa
    kept = 0;
    ++e;
  }
  if (e < 104) return 0;  // below 2^-23: zero, sign dropped (-0 is reserved)
  if (e > 119) {
    // Large after rounding. A value that was small before rounding and carried to 2^-7 keeps
    // mantissa 0; a small value's 2-bit mantissa is never reinterpreted here because carry
    // already zeroed it.
    const uint32_t m3 = large ? kept : (kept << 1);
    return static_cast<uint8_t>(sign | ((e - 112) << 3) | m3);
  }
  uint32_t m2 = kept;
  if (e == 104 && m2 == 0) m2 = 1;  // code 0 means zero: 1.0*2^-23 becomes 1.25*2^-23
  return static_cast<uint8_t>(sign | ((e - 104) << 2) | m2);
}

uint8_t sfp8_from_f32(float x) {
  if (std::isnan(x)) return 0;
  if (x > kSfp8Max) x = kSfp8Max;
  if (x < -kSfp8Max) x = -kSfp8Max;
  return sfp8_from_bf16(static_cast<uint16_t>(f32_bits(x) >> 16));
}

}  // namespace nibble
