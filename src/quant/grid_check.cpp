// Q4_0 grid checks (QAT); see grid_check.h for what "on a grid" and "lossless" mean.
#include "quant/grid_check.h"

#include <algorithm>
#include <atomic>
#include <cmath>

#include "gguf/gguf_file.h"
#include "quant/quant.h"
#include "quant/recipe.h"
#include "util/fp16.h"

namespace nibble {

namespace {
constexpr int kQk = 32;
}  // namespace

bool q4_0_block_on_grid(const float* x, float* d_out) {
  int imax = -1;
  float amax = 0.0f;
  for (int j = 0; j < kQk; ++j) {
    if (!std::isfinite(x[j])) return false;
    if (std::fabs(x[j]) > amax) {
      amax = std::fabs(x[j]);
      imax = j;
    }
  }
  if (imax < 0) {  // all zero: any d works
    if (d_out != nullptr) *d_out = 0.0f;
    return true;
  }
  // The largest value must be k*d with k in -8..7 (k != 0): at most 15 candidate scales. When a
  // true f16 d exists, x_max / k is exactly d (the exact quotient is representable).
  for (int k = -8; k <= 7; ++k) {
    if (k == 0) continue;
    const float d = x[imax] / static_cast<float>(k);
    if (f16_to_f32(f32_to_f16(d)) != d) continue;  // not representable as f16
    bool ok = true;
    for (int j = 0; j < kQk && ok; ++j) {
      const float q = std::nearbyint(x[j] / d);
      ok = q >= -8.0f && q <= 7.0f && q * d == x[j];  // the product Q4_0's dequantizer computes
    }
    if (ok) {
      if (d_out != nullptr) *d_out = d;
      return true;
    }
  }
  return false;
}

bool q4_0_block_exact(const float* x) {
  uint8_t q[18];
  float y[kQk];
  quantize_row(GgmlType::Q4_0, x, q, kQk);
  dequantize_row(GgmlType::Q4_0, q, y, kQk);
  for (int j = 0; j < kQk; ++j) {
    if (y[j] != x[j]) return false;
  }
  return true;
}

GridCheck check_q4_0_grid(GgmlType type, const uint8_t* data, uint64_t n_elements,
                          uint64_t row_length, bool stop_early) {
  GridCheck r;
  if (row_length == 0 || row_length % kQk != 0 || n_elements % row_length != 0 ||
      !can_dequantize(type)) {
    return r;
  }
  const uint64_t n_rows = n_elements / row_length;
  const uint64_t row_bytes = ggml_row_size(type, row_length);
  std::atomic<bool> stop{false};
  uint64_t n_blocks = 0, n_on_grid = 0, n_exact = 0;
// Rows in parallel; a stopped scan reports what it saw (complete = false).
#pragma omp parallel reduction(+ : n_blocks, n_on_grid, n_exact)
  {
    std::vector<float> buf(row_length);
#pragma omp for schedule(dynamic, 16)
    for (int64_t r = 0; r < static_cast<int64_t>(n_rows); ++r) {
      if (stop.load(std::memory_order_relaxed)) continue;
      dequantize_row(type, data + static_cast<uint64_t>(r) * row_bytes, buf.data(), row_length);
      for (uint64_t b = 0; b < row_length; b += kQk) {
        ++n_blocks;
        if (!q4_0_block_on_grid(buf.data() + b)) {
          if (stop_early) {
            stop.store(true, std::memory_order_relaxed);
            break;
          }
          continue;
        }
        ++n_on_grid;
        if (q4_0_block_exact(buf.data() + b)) ++n_exact;
      }
    }
  }
  r.n_blocks = n_blocks;
  r.n_on_grid = n_on_grid;
  r.n_exact = n_exact;
  r.complete = !stop.load() && n_blocks == n_elements / kQk;
  return r;
}

uint64_t QatReport::n_on_grid() const {
  return static_cast<uint64_t>(
      std::count_if(tensors.begin(), tensors.end(), [](const QatTensor& t) { return t.on_grid; }));
}
uint64_t QatReport::n_lossless() const {
  return static_cast<uint64_t>(
      std::count_if(tensors.begin(), tensors.end(), [](const QatTensor& t) { return t.lossless; }));
}

QatReport check_qat_file(const GgufFile& file) {
  QatReport rep;
  for (const auto& t : file.tensors()) {
    if (t.type != GgmlType::F32 && t.type != GgmlType::F16 && t.type != GgmlType::BF16) continue;
    if (!tensor_allows_quantization(t.name, t.shape)) continue;
    const GridCheck g = check_q4_0_grid(t.type, t.data, t.n_elements, t.ne(0));
    rep.tensors.push_back({t.name, g.on_grid(), g.lossless()});
  }
  return rep;
}

}  // namespace nibble
