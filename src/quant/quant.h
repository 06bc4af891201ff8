// Row conversion between f32 and stored tensor types: the reference (scalar, bit-exact with
// llama.cpp's x86 build) quantizers and dequantizers, and the quant type table that lists them.
// Fast kernels live in backends/; they are tested against these.
//
// Importance matrix ("imatrix", spec §3.6): one non-negative weight per column (n_per_row
// floats), the same vector for every row. Types use it in one of three ways (QuantCodec::imatrix):
//   kIgnored   F32/F16/BF16, Q8_0, SFP8 (and the activation formats): the weights change nothing.
//   kSwitches  Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q3_K Q4_K Q5_K Q6_K: with weights a DIFFERENT algorithm
//              runs (ggml's *_impl); without, the reference quantizer. Unit weights are not
//              the same as no weights.
//   kWeights   IQ4_NL IQ4_XS: one algorithm whose error weights are x^2 without an imatrix and
//              qw*sqrt(sigma2 + x^2) with one.
// Q4_0/Q4_1/Q5_0/Q5_1 with an imatrix use the mean square of the whole row, so a row must be
// quantized in one call (quantize_row with n = n_per_row, or quantize_rows).
#pragma once

#include <cstdint>

#include "tensor/ggml_type.h"
#include "util/result.h"  // kept: callers have relied on it arriving through this header

namespace nibble {

enum class ImatrixUse : uint8_t { kIgnored, kSwitches, kWeights };

// n elements (a multiple of the block size) -> f32.
using DequantizeRowFn = void (*)(const uint8_t* src, float* dst, uint64_t n);
// n elements of f32 -> ggml_row_size(type, n) bytes, without an importance matrix.
using QuantizeRowFn = void (*)(const float* src, uint8_t* dst, uint64_t n);
// One row of n elements with its importance matrix qw[n] (non-null).
using QuantizeRowImatrixFn = void (*)(const float* row, uint8_t* dst, uint64_t n, const float* qw);

// One row of the quant type table (quant.cpp). Block geometry and names live in
// tensor/ggml_type.h; this adds the codecs.
struct QuantCodec {
  GgmlType type;
  DequantizeRowFn dequantize;             // never null
  QuantizeRowFn quantize;                 // null: nibble cannot produce this type
  QuantizeRowImatrixFn quantize_imatrix;  // null when imatrix != kSwitches / kWeights
  ImatrixUse imatrix;
  bool activation_only;  // Q8_1, Q8_K: ggml never writes them to model files
};

// The codec row of `type`, or nullptr when nibble has no codec for it.
const QuantCodec* quant_codec(GgmlType type);

// True when dequantize_row supports `type`.
bool can_dequantize(GgmlType type);
// True when quantize_row can produce `type` from f32 (includes the activation formats Q8_1 and
// Q8_K, which llama-quantize never writes to files).
bool can_quantize(GgmlType type);
// How `type` uses an importance matrix (kIgnored for types without a quantizer).
ImatrixUse imatrix_use(GgmlType type);

// Dequantizes `n` elements (a multiple of the block size) from `src` to f32.
// NIBBLE_CHECKs support: callers check can_dequantize first.
void dequantize_row(GgmlType type, const uint8_t* src, float* dst, uint64_t n);

// Quantizes ONE row of `n` elements (a multiple of the block size) from f32 to `type`, writing
// ggml_row_size(type, n) bytes. `imatrix` (nullable) holds n column weights. Without an imatrix
// the row may also be several rows concatenated (every type is then block-local).
// NIBBLE_CHECKs support: callers check can_quantize first.
void quantize_row(GgmlType type, const float* src, uint8_t* dst, uint64_t n,
                  const float* imatrix = nullptr);

// ggml_quantize_chunk as llama-quantize uses it (spec §3.7): n_rows rows of n_per_row values,
// rows independent, the same `imatrix` (nullable, n_per_row weights) for every row. Returns the
// bytes written (n_rows * ggml_row_size(type, n_per_row)).
// A 3-D (MoE) tensor is quantized one expert at a time, expert k with its own imatrix slice
// (imatrix + k * n_per_row), as llama-quantize does.
uint64_t quantize_rows(GgmlType type, const float* src, uint8_t* dst, uint64_t n_rows,
                       uint64_t n_per_row, const float* imatrix = nullptr);

// ggml's quantize_row_iq4_nl_ref (no scale search): the IQ4_NL bytes ggml writes into an IQ4_NL
// KV cache, which differ from quantize_row's (file) bytes. Not for model files.
void quantize_row_iq4_nl_kv(const float* src, uint8_t* dst, uint64_t n);

}  // namespace nibble
