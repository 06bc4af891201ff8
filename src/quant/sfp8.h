// SFP8: gemma.cpp's 8-bit "switched floating point" (spec gguf-and-quant-formats §7.1), carried by
// nibble as the GGUF tensor type GgmlType::SFP8 (id kNibbleSfp8TypeId = 1000, a nibble extension
// that llama.cpp and Ollama cannot read). This header is the value codec; the row codecs and the
// type-table row are in quant/reference/sfp8.cpp and quant/quant.cpp.
//
// Byte layout, one byte per value, no side information:
//   bit 7      sign (0x80 = -0 is reserved and never produced)
//   v = b&0x7F  0: zero
//              1..63  (bit 6 clear): small, e = v>>2, m = v&3:  (1 + m/4) * 2^(e-23)
//              64..127 (bit 6 set):  large, e = v>>3, m = v&7:  (1 + m/8) * 2^(e-15)
// Magnitudes run from 1.25*2^-23 (code 1) to 1.875 (code 127, kSfp8Max), strictly increasing with
// the code. Every decoded value is a bf16 (and an f32) exactly.
//
// What it is not: gemma.cpp also stores a per-tensor f32 scale (max|x| / 1.875 when a tensor
// exceeds the range). nibble's GGUF has no slot the engine reads for such a scale, so the quantize
// driver keeps tensors that exceed the range in BF16 instead (quantize_model.cpp).
#pragma once

#include <cstdint>

namespace nibble {

inline constexpr float kSfp8Max = 1.875f;

// Decodes one byte to its bf16 bit pattern (a pure bit operation, spec §7.1). 0x80 decodes to
// -0 (bf16 0x8000); the encoder never produces it.
uint16_t sfp8_to_bf16(uint8_t code);
// Decodes one byte to f32 (exact).
float sfp8_to_f32(uint8_t code);
// Encodes a bf16 bit pattern with |x| <= 1.875 (callers clamp first) with the spec's
// round-half-to-even on the dropped mantissa bits; values below 2^-23 give 0x00 (sign dropped).
uint8_t sfp8_from_bf16(uint16_t bf16);
// Encodes an f32: clamps |x| to 1.875, truncates (does not round) to bf16 as gemma.cpp's encoder
// input does, then sfp8_from_bf16. NaN encodes as 0x00.
uint8_t sfp8_from_f32(float x);

}  // namespace nibble
