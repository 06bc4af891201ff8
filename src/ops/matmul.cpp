// Batched matrix multiply over dequantized weight rows. Rows are processed in blocks of
// kRowBlock: the block is dequantized once, then every token's activation row is dotted with
// it, so a prompt of n tokens costs one dequantization per weight row, not n.
#include "ops/matmul.h"

#include <algorithm>
#include <vector>

#include "ops/dequant_fast.h"
#include "ops/dot.h"
#include "util/thread_pool.h"

namespace nibble {

namespace {
constexpr int64_t kRowBlock = 16;
}

void weight_row(const WeightMatrix& w, int64_t o, float* out) {
  dequantize_row_fast(w.type, w.row(o), out, w.n_in);
}

void matmul(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y) {
  const int64_t n_in = w.n_in, n_out = w.n_out;
  const int64_t n_blocks = (n_out + kRowBlock - 1) / kRowBlock;
  const bool direct = w.type == GgmlType::F32;
  // Below ~4M multiply-adds (about a millisecond on one core) a fork/join costs more than it saves
  // (and much more when the cores are shared with other work).
  const bool parallel = n_out * n_in * n_tokens >= (int64_t{1} << 22) && n_blocks > 1;
  auto block = [&](int64_t b) {
    thread_local std::vector<float> buf;
    if (!direct && buf.size() < static_cast<size_t>(kRowBlock * n_in))
      buf.resize(static_cast<size_t>(kRowBlock * n_in));
    const float* rows[kRowBlock];
    const int64_t r0 = b * kRowBlock;
    const int64_t nr = std::min(kRowBlock, n_out - r0);
    for (int64_t r = 0; r < nr; ++r) {
      if (direct) {
        rows[r] = reinterpret_cast<const float*>(w.row(r0 + r));
      } else {
        float* dst = buf.data() + r * n_in;
        dequantize_row_fast(w.type, w.row(r0 + r), dst, n_in);
        rows[r] = dst;
      }
    }
    // Groups of 4 rows x 2 tokens, then 4 rows x 1 token, then single rows.
    const int64_t nr4 = nr & ~int64_t{3};
    float out[8];
    int64_t t = 0;
    for (; t + 2 <= n_tokens; t += 2) {
      const float* xt = x + t * n_in;
      float* y0 = y + t * n_out + r0;
      float* y1 = y0 + n_out;
      for (int64_t r = 0; r < nr4; r += 4) {
        dot_4rows_2tok(rows + r, xt, n_in, n_in, out);
        for (int k = 0; k < 4; ++k) y0[r + k] = out[k], y1[r + k] = out[4 + k];
      }
      for (int64_t r = nr4; r < nr; ++r) {
        y0[r] = dot_f32(rows[r], xt, n_in);
        y1[r] = dot_f32(rows[r], xt + n_in, n_in);
      }
    }
    for (; t < n_tokens; ++t) {
      const float* xt = x + t * n_in;
      float* yt = y + t * n_out + r0;
      for (int64_t r = 0; r < nr4; r += 4) {
        dot_4rows(rows + r, xt, n_in, out);
        for (int k = 0; k < 4; ++k) yt[r + k] = out[k];
      }
      for (int64_t r = nr4; r < nr; ++r) yt[r] = dot_f32(rows[r], xt, n_in);
    }
  };
  if (parallel) {
    parallel_for(n_blocks, block);
  } else {
    for (int64_t b = 0; b < n_blocks; ++b) block(b);
  }
}

}  // namespace nibble
