// Batched matrix multiply over dequantized weight rows. Rows are processed in blocks of
// kRowBlock: the block is dequantized once, then every token's activation row is dotted with
// it, so a prompt of n tokens costs one dequantization per weight row, not n.
#include "ops/matmul.h"

#include <algorithm>
#include <vector>

#include "ops/dot.h"
#include "quant/quant.h"

namespace nibble {

namespace {
constexpr int64_t kRowBlock = 16;
}

void weight_row(const WeightMatrix& w, int64_t o, float* out) {
  dequantize_row(w.type, w.row(o), out, static_cast<uint64_t>(w.n_in));
}

void matmul(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y) {
  const int64_t n_in = w.n_in, n_out = w.n_out;
  const int64_t n_blocks = (n_out + kRowBlock - 1) / kRowBlock;
  const bool direct = w.type == GgmlType::F32;
  // Below ~4M multiply-adds (about a millisecond on one core) a fork/join costs more than it saves (and much more when the
  // cores are shared with other work).
  const bool parallel = n_out * n_in * n_tokens >= (int64_t{1} << 22) && n_blocks > 1;
#pragma omp parallel if (parallel)
  {
    std::vector<float> buf(direct ? 0 : static_cast<size_t>(kRowBlock * n_in));
    const float* rows[kRowBlock];
#pragma omp for schedule(static)
    for (int64_t b = 0; b < n_blocks; ++b) {
      const int64_t r0 = b * kRowBlock;
      const int64_t nr = std::min(kRowBlock, n_out - r0);
      for (int64_t r = 0; r < nr; ++r) {
        if (direct) {
          rows[r] = reinterpret_cast<const float*>(w.row(r0 + r));
        } else {
          float* dst = buf.data() + r * n_in;
          dequantize_row(w.type, w.row(r0 + r), dst, static_cast<uint64_t>(n_in));
          rows[r] = dst;
        }
      }
      for (int64_t t = 0; t < n_tokens; ++t) {
        const float* xt = x + t * n_in;
        float* yt = y + t * n_out + r0;
        for (int64_t r = 0; r < nr; ++r) yt[r] = dot_f32(rows[r], xt, n_in);
      }
    }
  }
}

}  // namespace nibble
