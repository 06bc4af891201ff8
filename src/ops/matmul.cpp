// Batched matrix multiply. Integer-quantized weights (ops/int8_rows.h) run on int8 dot products
// with the activations quantized once per call (ops/int8_acts.h, ops/int8_dot.h); float weights
// (F32, F16, BF16) and any other type run on float dot products over rows dequantized once per
// block of rows ($NIBBLE_MATMUL=float runs every type that way: slower, and the quality of
// float activations). Threads split the output rows; in a batch, each task's rows are unpacked once
// and reused for every token.
#include "ops/matmul.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "ops/dequant_fast.h"
#include "ops/dot.h"
#include "ops/int8_acts.h"
#include "ops/int8_dot.h"
#include "ops/int8_panel.h"
#include "ops/int8_rows.h"
#include "ops/matmul_profile.h"
#include "util/thread_pool.h"

namespace nibble {

namespace {

// Below ~4M multiply-adds (about a millisecond on one core) a fork/join costs more than it saves
// (and much more when the cores are shared with other work).
bool worth_parallel(const WeightMatrix& w, int64_t n_tokens, int64_t n_tasks) {
  return w.n_out * w.n_in * n_tokens >= (int64_t{1} << 22) && n_tasks > 1;
}

void run_tasks(bool parallel, int64_t n_tasks, const std::function<void(int64_t)>& fn) {
  if (parallel) {
    parallel_for(n_tasks, fn);
  } else {
    for (int64_t i = 0; i < n_tasks; ++i) fn(i);
  }
}

// Rows per task when decoding one token, a multiple of 4: each task is one sequential stream, and
// every new stream starts with its prefetches cold (64-row tasks cost ~6% of E2B's generation
// speed). A matrix under 4 MiB gets one task per thread: E2B's per-layer 256 -> 1536 and
// 1536 -> 256 projections (221 KB) went from 9 to 15 and from 20 to 29 GB/s, +3% per token
// (`nibble bench --profile`, memory at ~75 GB/s). Larger ones get about 4 per thread, so that a
// thread that starts late or is interrupted does not hold up the others for a whole quarter.
int64_t decode_rows_per_task(int64_t n_out, uint64_t matrix_bytes) {
  const int64_t threads = pool_threads();
  const int64_t per_thread = matrix_bytes < (uint64_t{4} << 20) ? 1 : 4;
  return (std::max<int64_t>(4, (n_out + per_thread * threads - 1) / (per_thread * threads)) + 3) &
         ~int64_t{3};
}

// ---- float weights --------------------------------------------------------------------------

constexpr int64_t kRowBlock = 16;

void matmul_float(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y) {
  const int64_t n_in = w.n_in, n_out = w.n_out;
  const int64_t n_blocks = (n_out + kRowBlock - 1) / kRowBlock;
  const bool direct = w.type == GgmlType::F32;
  if (w.type == GgmlType::BF16 && n_tokens == 1) {
    // Decoding: widen BF16 rows on the fly (same bits as through the buffer below), in the tasks
    // decode_rows_per_task gives, each one sequential stream (as matmul_int8 decodes).
    const int64_t rows_per_task =
        decode_rows_per_task(n_out, w.row_bytes * static_cast<uint64_t>(n_out));
    const int64_t n_tasks = (n_out + rows_per_task - 1) / rows_per_task;
    auto task = [&](int64_t k) {
      const int64_t r0 = k * rows_per_task;
      const int64_t nr = std::min(rows_per_task, n_out - r0);
      int64_t r = 0;
      for (; r + 4 <= nr; r += 4) {
        const uint16_t* rows[4];
        for (int i = 0; i < 4; ++i) rows[i] = reinterpret_cast<const uint16_t*>(w.row(r0 + r + i));
        dot_4rows_bf16(rows, x, n_in, y + r0 + r);
      }
      for (; r < nr; ++r) {
        y[r0 + r] = dot_bf16(reinterpret_cast<const uint16_t*>(w.row(r0 + r)), x, n_in);
      }
    };
    run_tasks(n_tasks > 1 && n_out * n_in >= (int64_t{1} << 17), n_tasks, task);
    return;
  }
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
  run_tasks(worth_parallel(w, n_tokens, n_blocks), n_blocks, block);
}

// ---- integer-quantized weights --------------------------------------------------------------

// Per-thread unpacked rows.
struct Int8Buffer {
  std::vector<int8_t> q;
  std::vector<float> scale, offset;
  void reserve(int64_t rows, int64_t n) {
    const auto need = static_cast<size_t>(rows * n);
    if (q.size() < need) q.resize(need);
    if (scale.size() < need / 4) scale.resize(need / 4);
    if (offset.size() < need / 16) offset.resize(need / 16);
  }
};

Int8Acts& acts_buffer() {
  static thread_local Int8Acts acts;
  return acts;
}

// Prompt processing on AVX-512 VNNI: one task per panel of 16 rows (ops/int8_panel.h).
void matmul_panels(const WeightMatrix& w, Int8Acts& acts, bool has_min, float* y) {
  const int64_t n_in = w.n_in, n_out = w.n_out, n_tokens = acts.n_tokens;
  add_unsigned_acts(acts);
  const int group = panel_group(w.type);
  const int64_t n_tasks = (n_out + kPanelRows - 1) / kPanelRows;
  auto task = [&](int64_t k) {
    thread_local Int8Buffer buf;
    thread_local Int8PanelBuffer panel_buf;
    const int64_t r0 = k * kPanelRows;
    const int nr = static_cast<int>(std::min<int64_t>(kPanelRows, n_out - r0));
    buf.reserve(nr, n_in);
    Int8Row rows[kPanelRows];
    for (int i = 0; i < nr; ++i) {
      int8_t* q = buf.q.data() + i * n_in;
      float* sc = buf.scale.data() + i * (n_in / 4);
      float* o = has_min ? buf.offset.data() + i * (n_in / 16) : nullptr;
      unpack_int8_row(w.type, w.row(r0 + i), n_in, q, sc, o);
      rows[i] = {q, sc, o};
    }
    const Int8Panel panel = panel_buf.pack(rows, nr, n_in, group);
    panel_dot(panel, acts, 0, n_tokens, y + r0, n_out);
  };
  run_tasks(n_tasks > 1, n_tasks, task);
}

// Decoding one token, rows [r0, r0 + nr) of w into y: straight from the stored blocks where a
// kernel reads them (int8_dot_direct: Q4_0, Q8_0, Q4_K, Q6_K, Q2_K, Q3_K, IQ4_XS on AVX-512, Q5_K
// there on the AVX2 block sums; every int8_block_sums type on AVX2); else unpack 4 rows, dot, move
// on (the rows stay in L1).
void decode_rows(const WeightMatrix& w, const Int8Acts& acts, int64_t r0, int64_t nr, float* y) {
  thread_local Int8Buffer buf;
  const int64_t n_in = w.n_in;
  const bool has_min = int8_rows_have_min(w.type);
  buf.reserve(4, n_in);
  for (int64_t r = 0; r < nr; r += 4) {
    const int m = static_cast<int>(std::min<int64_t>(4, nr - r));
    const uint8_t* src[4];
    for (int i = 0; i < m; ++i) src[i] = w.row(r0 + r + i);
    float out4[4];
    if (int8_dot_direct(w.type, src, m, acts, 0, out4)) {
      for (int i = 0; i < m; ++i) y[r0 + r + i] = out4[i];
      continue;
    }
    Int8Row rows[4];
    for (int i = 0; i < m; ++i) {
      int8_t* q = buf.q.data() + i * n_in;
      float* s = buf.scale.data() + i * (n_in / 4);
      float* o = has_min ? buf.offset.data() + i * (n_in / 16) : nullptr;
      unpack_int8_row(w.type, w.row(r0 + r + i), n_in, q, s, o);
      rows[i] = {q, s, o};
    }
    int8_dot(rows, m, acts, 0, 1, y + r0 + r, w.n_out);
  }
}

// Decoding one token through n matrices that read the same activations (the same type and
// n_in), as one job: their tasks one after the other, one join at the end. Two threads pay off
// from ~128K weights (E2B's K/V and PLE projections, MoE experts: the pool's workers spin
// between a token's jobs, so a small job costs no wake-up).
template <int N>
void decode_int8(const WeightMatrix* const (&ws)[N], float* const (&ys)[N], const Int8Acts& acts) {
  constexpr int n = N;
  int64_t first[N + 1] = {}, per_task[N] = {}, weights = 0;
  for (int i = 0; i < n; ++i) {
    const WeightMatrix& w = *ws[i];
    per_task[i] = decode_rows_per_task(w.n_out, w.row_bytes * static_cast<uint64_t>(w.n_out));
    first[i + 1] = first[i] + (w.n_out + per_task[i] - 1) / per_task[i];
    weights += w.n_out * w.n_in;
  }
  const int64_t n_tasks = first[n];
  auto task = [&](int64_t k) {
    int i = 0;
    while (k >= first[i + 1]) ++i;
    const WeightMatrix& w = *ws[i];
    const int64_t r0 = (k - first[i]) * per_task[i];
    decode_rows(w, acts, r0, std::min(per_task[i], w.n_out - r0), ys[i]);
  };
  run_tasks(n_tasks > 1 && weights >= (int64_t{1} << 17), n_tasks, task);
}

// Quantizes x for w's int8 kernels, with the extra terms the chosen kernels read.
void prepare_acts(const WeightMatrix& w, const float* x, int64_t n_tokens, bool block_sums,
                  Int8Acts& acts) {
  quantize_acts(x, n_tokens, w.n_in, int8_rows_have_min(w.type), acts);
  const Int8Terms terms = int8_terms(w.type, n_tokens, block_sums);
  if (terms.q4_0_pair) add_q4_0_pair_terms(acts);
  if (terms.isum16) add_isum16(acts);
  if (terms.decode) add_decode_terms(acts);
  if (terms.q4_0_decode) add_q4_0_decode_terms(acts);
}

// Integer-quantized weights whose activations can be int8 (the default; NIBBLE_MATMUL=float
// sends every type to the float path).
bool takes_int8_path(const WeightMatrix& w) {
  return int8_rows_supported(w.type) && w.n_in % 32 == 0 && !float_activations();
}

bool uses_block_sums(const WeightMatrix& w) {
  return int8_block_sums(w.type) && (traits(w.type).block_size == 32 || w.n_in % 256 == 0);
}

void matmul_int8(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y) {
  const int64_t n_in = w.n_in, n_out = w.n_out;
  const bool has_min = int8_rows_have_min(w.type);
  Int8Acts& acts = acts_buffer();
  // The int8_block_sums types on AVX2: block-sum kernels decode and run batches
  // (ops/block_sums_avx2.cpp).
  const bool block_sums = uses_block_sums(w);
  prepare_acts(w, x, n_tokens, block_sums, acts);
  if (n_tokens == 1) {
    const WeightMatrix* ws[1] = {&w};
    float* ys[1] = {y};
    decode_int8(ws, ys, acts);
    return;
  }

  if (n_tokens >= kPanelMinTokens && panel_kernel_available()) {
    matmul_panels(w, acts, has_min, y);
    return;
  }

  // Blocks of 16 rows, unpacked once, reused by every token chunk.
  const int64_t rows_per_task = 16;
  // Tokens per chunk: keep a chunk's activations (~1 byte per value) around 256 KiB.
  const int64_t tok_chunk = std::clamp<int64_t>(((int64_t{256} << 10) / n_in) & ~int64_t{3}, 4, 64);
  const int64_t n_tasks = (n_out + rows_per_task - 1) / rows_per_task;
  auto task = [&](int64_t k) {
    thread_local Int8Buffer buf;
    const int64_t r0 = k * rows_per_task;
    const int64_t nr = std::min(rows_per_task, n_out - r0);
    if (block_sums) {  // straight from the stored rows (cache-resident after the first tokens)
      const uint8_t* src[16];
      for (int64_t i = 0; i < nr; ++i) src[i] = w.row(r0 + i);
      // A kernel that declines (it writes nothing then) leaves the rows to the unpack path.
      bool done = true;
      for (int64_t t0 = 0; done && t0 < n_tokens; t0 += tok_chunk) {
        const int64_t nt = std::min(tok_chunk, n_tokens - t0);
        done = int8_block_sums_dot(w.type, src, static_cast<int>(nr), acts, t0, nt,
                                   y + t0 * n_out + r0, n_out);
      }
      if (done) return;
    }
    buf.reserve(nr, n_in);
    for (int64_t i = 0; i < nr; ++i) {
      unpack_int8_row(w.type, w.row(r0 + i), n_in, buf.q.data() + i * n_in,
                      buf.scale.data() + i * (n_in / 4),
                      has_min ? buf.offset.data() + i * (n_in / 16) : nullptr);
    }
    for (int64_t t0 = 0; t0 < n_tokens; t0 += tok_chunk) {
      const int64_t nt = std::min(tok_chunk, n_tokens - t0);
      for (int64_t r = 0; r < nr; r += 4) {
        const int m = static_cast<int>(std::min<int64_t>(4, nr - r));
        Int8Row rows[4];
        for (int i = 0; i < m; ++i) {
          const int64_t ri = r + i;
          rows[i] = {buf.q.data() + ri * n_in, buf.scale.data() + ri * (n_in / 4),
                     has_min ? buf.offset.data() + ri * (n_in / 16) : nullptr};
        }
        int8_dot(rows, m, acts, t0, nt, y + t0 * n_out + r0 + r, n_out);
      }
    }
  };
  run_tasks(worth_parallel(w, n_tokens, n_tasks), n_tasks, task);
}

}  // namespace

bool float_activations() {
  static const bool yes = [] {
    const char* v = std::getenv("NIBBLE_MATMUL");
    return v != nullptr && std::strcmp(v, "float") == 0;
  }();
  return yes;
}

void matmul_pair(const WeightMatrix& w1, const WeightMatrix& w2, const float* x, int64_t n_tokens,
                 float* y1, float* y2) {
  const bool fused =
      n_tokens == 1 && w1.type == w2.type && w1.n_in == w2.n_in && takes_int8_path(w1);
  if (!fused) {
    matmul(w1, x, n_tokens, y1);
    matmul(w2, x, n_tokens, y2);
    return;
  }
  const bool profiled = matmul_profile_enabled();
  const auto t0 =
      profiled ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
  Int8Acts& acts = acts_buffer();
  prepare_acts(w1, x, 1, uses_block_sums(w1), acts);
  const WeightMatrix* ws[2] = {&w1, &w2};
  float* ys[2] = {y1, y2};
  decode_int8(ws, ys, acts);
  if (profiled) {
    // One job: its time is shared by the two matrices in proportion to their bytes.
    const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double b1 = static_cast<double>(w1.row_bytes) * static_cast<double>(w1.n_out);
    const double b2 = static_cast<double>(w2.row_bytes) * static_cast<double>(w2.n_out);
    matmul_profile_record(w1, t * b1 / (b1 + b2));
    matmul_profile_record(w2, t * b2 / (b1 + b2));
  }
}

void weight_row(const WeightMatrix& w, int64_t o, float* out) {
  dequantize_row_fast(w.type, w.row(o), out, w.n_in);
}

void matmul(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y) {
  const bool profiled = matmul_profile_enabled();
  const auto t0 =
      profiled ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
  if (takes_int8_path(w)) {
    matmul_int8(w, x, n_tokens, y);
  } else {
    matmul_float(w, x, n_tokens, y);
  }
  if (profiled) {
    matmul_profile_record(
        w, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
}

}  // namespace nibble
