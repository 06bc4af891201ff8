// SFP8 row codecs (nibble extension, spec §7.1): one byte per element, element order.
#include "quant/sfp8.h"

#include "quant/reference/codecs.h"

namespace nibble::qref {

void dequantize_sfp8(const uint8_t* src, float* dst, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) dst[i] = sfp8_to_f32(src[i]);
}

void quantize_sfp8(const float* src, uint8_t* dst, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) dst[i] = sfp8_from_f32(src[i]);
}

}  // namespace nibble::qref
