// WeightMatrix: a non-owning view of a 2-D weight stored as rows of any dequantizable ggml type
// (F32, F16, BF16, Q8_0, Q4_0), usually pointing into the GGUF memory map. Row o holds the
// weights of output o: y[o] = sum_i W[o, i] * x[i] (GGUF shape {n_in, n_out}). A 3-D expert
// tensor {n_in, rows, n_expert} is one matrix of rows * n_expert rows; a view of one expert's rows
// is marked with of_expert() (for activation observers, model/activation_observer.h).
#pragma once

#include <cstdint>

#include "tensor/ggml_type.h"

namespace nibble {

struct WeightMatrix {
  GgmlType type = GgmlType::F32;
  const uint8_t* data = nullptr;
  int64_t n_in = 0;            // ne0: elements per row
  int64_t n_out = 0;           // rows
  uint64_t row_bytes = 0;      // ggml_row_size(type, n_in)
  const char* name = nullptr;  // GGUF tensor name, when bound from a file (lives with the file)
  int32_t n_expert = 1;        // matrices in the tensor (ne[2] of a 3-D expert tensor, else 1)
  int32_t expert = -1;         // which of them this view is a slice of; -1 = the whole tensor

  bool empty() const { return data == nullptr; }
  const uint8_t* row(int64_t o) const { return data + static_cast<uint64_t>(o) * row_bytes; }
  // Rows [first, first + n) as their own matrix (one expert of a 3-D tensor, half of a fused one).
  WeightMatrix rows(int64_t first, int64_t n) const {
    WeightMatrix m = *this;
    m.data = row(first);
    m.n_out = n;
    return m;
  }
  // The same view, marked as (part of) expert e's slice of a 3-D tensor.
  WeightMatrix of_expert(int64_t e) const {
    WeightMatrix m = *this;
    m.expert = static_cast<int32_t>(e);
    return m;
  }
};

}  // namespace nibble
