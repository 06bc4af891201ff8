// Per-type reference codecs (scalar, bit-exact with llama.cpp's x86 reference quantizers).
// Only quant/quant.cpp's type table should call these; everyone else goes through quant.h.
//
// Shapes of the three kinds of function:
//   dequantize_<t>(src, dst, n)             n elements (a multiple of the block size) -> f32
//   quantize_<t>(src, dst, n)               ggml's quantize_row_<t>_ref: no importance matrix
//   quantize_<t>_imatrix(row, dst, n, qw)   ggml's quantize_row_<t>_impl for ONE row of n values,
//                                           qw = n per-column weights (required, non-null)
#pragma once

#include <cstdint>

namespace nibble::qref {

// Legacy 32-element formats (spec §3.1, §3.6), reference/legacy.cpp.
void dequantize_q4_0(const uint8_t* src, float* dst, uint64_t n);
void dequantize_q4_1(const uint8_t* src, float* dst, uint64_t n);
void dequantize_q5_0(const uint8_t* src, float* dst, uint64_t n);
void dequantize_q5_1(const uint8_t* src, float* dst, uint64_t n);
void dequantize_q8_0(const uint8_t* src, float* dst, uint64_t n);
void dequantize_q8_1(const uint8_t* src, float* dst, uint64_t n);
void quantize_q4_0(const float* src, uint8_t* dst, uint64_t n);
void quantize_q4_1(const float* src, uint8_t* dst, uint64_t n);
void quantize_q5_0(const float* src, uint8_t* dst, uint64_t n);
void quantize_q5_1(const float* src, uint8_t* dst, uint64_t n);
void quantize_q8_0(const float* src, uint8_t* dst, uint64_t n);
void quantize_q8_1(const float* src, uint8_t* dst, uint64_t n);
void quantize_q4_0_imatrix(const float* row, uint8_t* dst, uint64_t n, const float* qw);
void quantize_q4_1_imatrix(const float* row, uint8_t* dst, uint64_t n, const float* qw);
void quantize_q5_0_imatrix(const float* row, uint8_t* dst, uint64_t n, const float* qw);
void quantize_q5_1_imatrix(const float* row, uint8_t* dst, uint64_t n, const float* qw);

// K-quants and Q8_K (spec §3.3, §3.4, §3.6), reference/k_quants.cpp.
void dequantize_q2_K(const uint8_t* src, float* dst, uint64_t n);
void dequantize_q3_K(const uint8_t* src, float* dst, uint64_t n);
void dequantize_q4_K(const uint8_t* src, float* dst, uint64_t n);
void dequantize_q5_K(const uint8_t* src, float* dst, uint64_t n);
void dequantize_q6_K(const uint8_t* src, float* dst, uint64_t n);
void dequantize_q8_K(const uint8_t* src, float* dst, uint64_t n);
void quantize_q2_K(const float* src, uint8_t* dst, uint64_t n);
void quantize_q3_K(const float* src, uint8_t* dst, uint64_t n);
void quantize_q4_K(const float* src, uint8_t* dst, uint64_t n);
void quantize_q5_K(const float* src, uint8_t* dst, uint64_t n);
void quantize_q6_K(const float* src, uint8_t* dst, uint64_t n);
void quantize_q8_K(const float* src, uint8_t* dst, uint64_t n);
void quantize_q2_K_imatrix(const float* row, uint8_t* dst, uint64_t n, const float* qw);
void quantize_q3_K_imatrix(const float* row, uint8_t* dst, uint64_t n, const float* qw);
void quantize_q4_K_imatrix(const float* row, uint8_t* dst, uint64_t n, const float* qw);
void quantize_q5_K_imatrix(const float* row, uint8_t* dst, uint64_t n, const float* qw);
void quantize_q6_K_imatrix(const float* row, uint8_t* dst, uint64_t n, const float* qw);

// Non-linear 4-bit (spec §3.5), reference/iq4.cpp. The file path (ntry = 7) is the same code
// with and without an importance matrix; the no-imatrix entry points pass qw = null.
void dequantize_iq4_nl(const uint8_t* src, float* dst, uint64_t n);
void dequantize_iq4_xs(const uint8_t* src, float* dst, uint64_t n);
void quantize_iq4_nl(const float* src, uint8_t* dst, uint64_t n);
void quantize_iq4_xs(const float* src, uint8_t* dst, uint64_t n);
void quantize_iq4_nl_imatrix(const float* row, uint8_t* dst, uint64_t n, const float* qw);
void quantize_iq4_xs_imatrix(const float* row, uint8_t* dst, uint64_t n, const float* qw);
// ggml's quantize_row_iq4_nl_ref (ntry = -1): what ggml uses for an IQ4_NL KV cache, NOT what
// llama-quantize writes. All-(near-)zero blocks get d = 0 and indices 8.
void quantize_iq4_nl_kv(const float* src, uint8_t* dst, uint64_t n);

// Plain element types, reference/float_types.cpp.
void dequantize_f32(const uint8_t* src, float* dst, uint64_t n);
void dequantize_f16(const uint8_t* src, float* dst, uint64_t n);
void dequantize_bf16(const uint8_t* src, float* dst, uint64_t n);
void quantize_f32(const float* src, uint8_t* dst, uint64_t n);
void quantize_f16(const float* src, uint8_t* dst, uint64_t n);
void quantize_bf16(const float* src, uint8_t* dst, uint64_t n);

// nibble's SFP8 extension (spec §7.1), reference/sfp8.cpp. quantize clamps |x| to 1.875 (no
// tensor scale: see quant/sfp8.h).
void dequantize_sfp8(const uint8_t* src, float* dst, uint64_t n);
void quantize_sfp8(const float* src, uint8_t* dst, uint64_t n);

}  // namespace nibble::qref
