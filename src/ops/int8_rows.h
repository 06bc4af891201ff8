// Int8 rows: the common form every integer-quantized weight type is brought into before its dot
// products with quantized activations (ops/int8_dot.h). A row of n elements becomes
//   q[n]        signed 8-bit integers,
//   scale[n/4]  one float per lane of 4 consecutive elements (the lanes of a 32-bit integer dot),
//   offset[n/16] one float per 16 elements, only for types with an offset (Q4_1, Q5_1: +m;
//               Q2_K, Q4_K, Q5_K: -min),
// such that element i == q[i] * scale[i/4] + offset[i/16] exactly as the reference dequantizer
// computes it (same float products, bit for bit; tested). The types and their integer ranges:
//   Q4_0 q-8, Q5_0 q-16, Q8_0 q, Q4_1/Q5_1 q (+min), Q2_K q (+min), Q3_K signed 3-bit,
//   Q4_K/Q5_K q (+min), Q6_K q-32, IQ4_NL/IQ4_XS codebook value (-127..113).
#pragma once

#include <cstdint>

#include "tensor/ggml_type.h"

namespace nibble {

// True for the types above (the ones matmul runs on integer dot products).
bool int8_rows_supported(GgmlType type);
// True when rows of this type carry an offset.
bool int8_rows_have_min(GgmlType type);

// Unpacks one row of n elements (n a multiple of the type's block size). offset may be null for
// types without one.
void unpack_int8_row(GgmlType type, const uint8_t* src, int64_t n, int8_t* q, float* scale,
                     float* offset);
// The same with the plain loops only (the AVX2 versions of the common types are tested against it).
void unpack_int8_row_portable(GgmlType type, const uint8_t* src, int64_t n, int8_t* q,
                              float* scale, float* offset);

}  // namespace nibble
