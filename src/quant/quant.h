// Row conversion between f32 and stored tensor types: the reference (scalar, bit-exact with
// llama.cpp) quantizers and dequantizers. Fast kernels live in backends/; they are tested
// against these.
#pragma once

#include <cstdint>

#include "tensor/ggml_type.h"
#include "util/result.h"

namespace nibble {

// True when dequantize_row supports `type`.
bool can_dequantize(GgmlType type);
// True when quantize_row can produce `type` from f32.
bool can_quantize(GgmlType type);

// Dequantizes `n` elements (a multiple of the block size) from `src` to f32.
// NIBBLE_CHECKs support: callers check can_dequantize first.
void dequantize_row(GgmlType type, const uint8_t* src, float* dst, uint64_t n);
// Quantizes `n` elements (a multiple of the block size) from f32 to `type`, writing
// ggml_row_size(type, n) bytes.
void quantize_row(GgmlType type, const float* src, uint8_t* dst, uint64_t n);

}  // namespace nibble
