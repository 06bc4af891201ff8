// ImatrixCollector: gathers llama.cpp-style importance-matrix statistics from a forward pass
// (it is the ActivationObserver installed by `nibble imatrix`) and writes them in llama.cpp's
// GGUF imatrix format, which llama-quantize and nibble's `quantize --imatrix` read
// (quant/imatrix.h). Not a reader.
//
// Per weight tensor W with n_in input columns and n_mat matrices (1 for a 2-D weight, n_expert
// for a 3-D `_exps` tensor), over every token t that W multiplied (for an expert: only the tokens
// routed to it):
//   in_sum2[m][j] = Σ_t x_t[j]²     in_sum[m][j] = Σ_t x_t[j]     counts[m] = number of tokens
// The importance llama-quantize uses for column j of matrix m is in_sum2[m][j] / counts[m].
//
// File layout (as llama-imatrix writes it): metadata general.type = "imatrix",
// imatrix.datasets (string array), imatrix.chunk_count (u32), imatrix.chunk_size (u32); then for
// each weight, in name order, three F32 tensors: "<weight>.in_sum2" {n_in, n_mat},
// "<weight>.counts" {1, n_mat}, "<weight>.in_sum" {n_in, n_mat}.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "gguf/gguf_writer.h"
#include "model/activation_observer.h"
#include "util/result.h"

namespace nibble {

class ImatrixCollector final : public ActivationObserver {
 public:
  struct Entry {
    int64_t n_in = 0;
    int64_t n_mat = 1;
    std::vector<double> sum2;     // [n_mat, n_in]  Σ x²
    std::vector<double> sum;      // [n_mat, n_in]  Σ x
    std::vector<int64_t> counts;  // [n_mat]        tokens
  };

  void on_matmul_input(const WeightMatrix& w, const float* x, int64_t n_tokens) override;

  // Weight name -> statistics, in name order.
  const std::map<std::string, Entry>& entries() const { return entries_; }

  // The GGUF imatrix: datasets (e.g. the text file name), chunks evaluated, tokens per chunk.
  Result<GgufWriter> to_gguf(const std::vector<std::string>& datasets, uint32_t chunk_count,
                             uint32_t chunk_size) const;
  // Writes it atomically (GgufWriter::write).
  Status write(const std::string& path, const std::vector<std::string>& datasets,
               uint32_t chunk_count, uint32_t chunk_size) const;

 private:
  std::map<std::string, Entry> entries_;
};

}  // namespace nibble
