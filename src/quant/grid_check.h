// Q4_0 grid checks for quantization-aware-trained (QAT) checkpoints: do a tensor's weights already
// lie on a Q4_0 grid, and does llama.cpp's reference Q4_0 quantizer then reproduce them exactly?
//
// A 32-value block lies on a Q4_0 grid when every value is (q - 8) * d, computed in f32, for
// integers q in 0..15 and one scale d representable as f16 (any sign). Lying on a grid is
// necessary but NOT sufficient for lossless quantization: the reference quantizer (spec §3.1)
// always picks d = x_max / -8, where x_max is the block's (first) largest-magnitude value, so it
// finds the block's own d only when x_max sits at q = 0 (x_max = -8d). A grid block whose largest
// value is, say, 7d gets d' = -7d/8 and most values move. Both properties are reported.
// Signed zeros: the comparison is by value (-0 == +0); Q4_0 dequantizes a zero as (0 * d), whose
// sign follows d, so a -0.0 weight may come back as +0.0.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tensor/ggml_type.h"

namespace nibble {

class GgufFile;

// True when the 32 values lie on a Q4_0 grid; *d_out (nullable) receives a scale that works
// (0 for an all-zero block).
bool q4_0_block_on_grid(const float* x, float* d_out = nullptr);
// True when dequantize(quantize_q4_0(x)) == x for the 32 values (the reference quantizer).
bool q4_0_block_exact(const float* x);

struct GridCheck {
  uint64_t n_blocks = 0;   // blocks examined (all of them unless the scan stopped early)
  uint64_t n_on_grid = 0;  // of those, on a Q4_0 grid
  uint64_t n_exact = 0;    // of those, reproduced exactly by the reference quantizer
  bool complete = false;   // every block of the tensor was examined
  bool on_grid() const { return complete && n_on_grid == n_blocks; }
  bool lossless() const { return complete && n_exact == n_blocks; }
};

// Checks `n_elements` values stored as `type` (any dequantizable type; rows of `row_length`, a
// multiple of 32, else nothing is on a grid). With stop_early the scan ends at the first block
// that is off the grid (non-QAT tensors then cost one block).
GridCheck check_q4_0_grid(GgmlType type, const uint8_t* data, uint64_t n_elements,
                          uint64_t row_length, bool stop_early = true);

// The QAT report of a GGUF file: every tensor llama-quantize would quantize (spec §4.2) that is
// stored as F32, F16 or BF16.
struct QatTensor {
  std::string name;
  bool on_grid = false;
  bool lossless = false;
};
struct QatReport {
  std::vector<QatTensor> tensors;  // the checked tensors, file order
  uint64_t n_on_grid() const;
  uint64_t n_lossless() const;
};
QatReport check_qat_file(const GgufFile& file);

}  // namespace nibble
