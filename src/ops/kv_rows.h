// Row codecs of the KV cache types (f32, f16, q8_0, q4_0): kv_encode_row quantizes one head
// vector on write, bit-exact with a reference quantizer of quant/quant.h: f16 round-to-nearest-
// even, q8_0 ggml's quantize_row_q8_0_ref, q4_0 ggml's importance-weighted q4_0 quantizer with
// unit importance (quantize_row with an all-ones imatrix: it searches the block scale for the
// least weighted error instead of taking max / -8; on tiny-e a q4_0 K cache then costs 43% less
// KL divergence). kv_decode_row is the fast dequantizer attention reads tiles with (F16C / AVX2
// when the CPU has them), bit-exact with the reference dequantizers.
#pragma once

#include <cstdint>

#include "tensor/ggml_type.h"

namespace nibble {

// One head vector: n f32 values -> kv_bytes(type, n) bytes. n: a multiple of
// kv_block_elems(type).
void kv_encode_row(GgmlType type, const float* src, uint8_t* dst, int64_t n);

// kv_bytes(type, n) bytes -> n f32 values.
void kv_decode_row(GgmlType type, const uint8_t* src, float* dst, int64_t n);

// The Hadamard rotation quantized caches store their rows in (KvView::rotate): each head
// vector of head_dim values is split into blocks of kv_rotation_block(head_dim) (the largest
// power of two dividing it, at most 512) and each block x becomes H x / sqrt(n), H the
// Sylvester-Hadamard matrix (H[i][j] = (-1)^popcount(i & j)). The transform is orthonormal and
// its own inverse, so q.k is unchanged when both are rotated, and rotating the attention output
// undoes the rotation of V. It spreads outlier channels over the block before quantization.
int64_t kv_rotation_block(int64_t head_dim);
// Rotates n_heads head vectors of head_dim values in place.
void kv_rotate(float* x, int64_t n_heads, int64_t head_dim);

}  // namespace nibble
