// Reference matrix multiply over dequantized weight rows (scalar, double accumulation).
#include <vector>

#include "ops/reference/reference_ops.h"
#include "quant/quant.h"

namespace nibble::ref {

void matmul(GgmlType type, const uint8_t* w, int64_t n_in, int64_t n_out, const float* x,
            int64_t n_tokens, float* y) {
  std::vector<float> row(static_cast<size_t>(n_in));
  const uint64_t row_bytes = ggml_row_size(type, static_cast<uint64_t>(n_in));
  for (int64_t o = 0; o < n_out; ++o) {
    dequantize_row(type, w + static_cast<uint64_t>(o) * row_bytes, row.data(),
                   static_cast<uint64_t>(n_in));
    for (int64_t t = 0; t < n_tokens; ++t) {
      double s = 0.0;
      for (int64_t i = 0; i < n_in; ++i) s += static_cast<double>(row[i]) * x[t * n_in + i];
      y[t * n_out + o] = static_cast<float>(s);
    }
  }
}

}  // namespace nibble::ref
