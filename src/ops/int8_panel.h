// Int8 panels: 16 weight rows in int8 form (ops/int8_rows.h) interleaved 4 values at a time, so
// that one 512-bit VNNI instruction multiplies 4 values of 16 rows with the same 4 activation
// values broadcast: rows live in vector lanes, and the float work (convert, scale, accumulate)
// is done once per 16 rows and scale group instead of once per row. This is the prompt-processing
// path on AVX-512 VNNI CPUs (batches of kPanelMinTokens tokens or more); decoding keeps the
// per-row kernels of ops/int8_dot.h.
//
// Arithmetic (the same in the generic code and the AVX-512 kernel, bit for bit), per row r and
// token t, with G the type's scale group (32 values, or 16 for Q2_K/Q3_K/Q6_K):
//   acc = 0; for each group s in order: acc = fma(float(exact int dot of group s),
//                                               scale[r][s] * d[t][block of s], acc)
//   m = 0;   for each 16 values g in order: m = fma(offset[r][g], sum16[t][g], m)   (offset types)
//   out = acc + m
#pragma once

#include <cstdint>
#include <vector>

#include "ops/int8_acts.h"
#include "ops/int8_dot.h"
#include "tensor/ggml_type.h"

namespace nibble {

inline constexpr int kPanelRows = 16;
inline constexpr int64_t kPanelMinTokens = 16;

// Values per scale group of a type's int8 form.
int panel_group(GgmlType type);

struct Int8Panel {
  int64_t n = 0;     // values per row
  int group = 32;    // G
  int rows = 0;      // valid rows (1..16); the rest are zero
  const int8_t* q = nullptr;        // [n/4][16][4]
  const float* scale = nullptr;     // [n/G][16]
  const int32_t* corr = nullptr;    // [n/G][16]: -128 * sum of the group's values
  const float* offset = nullptr;    // [n/16][16], or null
};

// Owns the packed bytes of one panel; reused (no allocation once warm).
class Int8PanelBuffer {
 public:
  // rows: up to 16 unpacked rows (null offsets when the type has none).
  Int8Panel pack(const Int8Row* rows, int n_rows, int64_t n, int group);

 private:
  std::vector<int8_t> q_;
  std::vector<float> scale_, offset_;
  std::vector<int32_t> corr_;
};

// out[t * ldo + r] for r < panel.rows, t < n_tok. Needs a.u (add_unsigned_acts).
void panel_dot(const Int8Panel& p, const Int8Acts& a, int64_t tok0, int64_t n_tok, float* out,
               int64_t ldo);
// True when this CPU runs the AVX-512 panel kernel (else panel_dot runs the generic code).
bool panel_kernel_available();
// For tests: the generic code, or the AVX-512 kernel (false if unavailable).
void panel_dot_generic(const Int8Panel& p, const Int8Acts& a, int64_t tok0, int64_t n_tok,
                       float* out, int64_t ldo);
bool panel_dot_avx512_checked(const Int8Panel& p, const Int8Acts& a, int64_t tok0, int64_t n_tok,
                              float* out, int64_t ldo);

}  // namespace nibble
