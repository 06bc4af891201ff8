// F32, F16 and BF16 rows: exact conversions (spec §0.4, §2.3, §3.7). Not here: quantized types.
#include <cstring>

#include "quant/reference/codecs.h"
#include "util/fp16.h"

namespace nibble::qref {

void dequantize_f32(const uint8_t* src, float* dst, uint64_t n) { std::memcpy(dst, src, n * 4); }

void dequantize_f16(const uint8_t* src, float* dst, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, src + 2 * i, 2);
    dst[i] = f16_to_f32(h);
  }
}

void dequantize_bf16(const uint8_t* src, float* dst, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, src + 2 * i, 2);
    dst[i] = bf16_to_f32(h);
  }
}

void quantize_f32(const float* src, uint8_t* dst, uint64_t n) { std::memcpy(dst, src, n * 4); }

void quantize_f16(const float* src, uint8_t* dst, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) {
    const uint16_t h = f32_to_f16(src[i]);
    std::memcpy(dst + 2 * i, &h, 2);
  }
}

// ggml_fp32_to_bf16_row_ref: round to nearest even, subnormals kept.
void quantize_bf16(const float* src, uint8_t* dst, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) {
    const uint16_t h = f32_to_bf16(src[i]);
    std::memcpy(dst + 2 * i, &h, 2);
  }
}

}  // namespace nibble::qref
