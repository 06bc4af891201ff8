// Row dequantization for the fast path: vectorisable loops for BF16, Q8_0 and Q4_0 (compiled
// per ISA), falling back to quant/'s reference codec for other types. The arithmetic is the
// reference's (int × f16 scale in float32), so results are identical to dequantize_row.
#pragma once

#include <cstdint>

#include "tensor/ggml_type.h"

namespace nibble {

void dequantize_row_fast(GgmlType type, const uint8_t* src, float* dst, int64_t n);

}  // namespace nibble
