// MatmulProfile: where a token's time goes, per weight matrix. While enabled, every matmul
// (ops/matmul.h) adds its wall time, its weight bytes and one call to the entry of its weight:
// the tensor's name with the layer number replaced by '*' ("blk.*.ffn_down.weight"), its type
// and its shape, so that the 35 layers of E2B fold into one line per role and shape. Costs one
// relaxed atomic load per matmul while disabled. `nibble bench --profile` prints it for the tg
// test (tools/cli/cmd_bench.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ops/weight_matrix.h"

namespace nibble {

struct MatmulProfileEntry {
  std::string role;    // "blk.*.attn_q.weight"; "(unnamed)" for a matrix not bound from a file
  GgmlType type = GgmlType::F32;
  int64_t n_in = 0, n_out = 0;
  int64_t calls = 0;
  double seconds = 0;  // wall time inside matmul
  double bytes = 0;    // weight bytes the calls read (row_bytes * n_out each)
};

// "blk.12.ffn_down.weight" -> "blk.*.ffn_down.weight"; other names unchanged.
std::string matmul_profile_role(const char* tensor_name);

// Turns recording on or off (off by default); enabling clears what was recorded.
void matmul_profile_enable(bool on);
bool matmul_profile_enabled();

// Called by matmul() and matmul_pair() (one job: its time shared by bytes) while enabled.
void matmul_profile_record(const WeightMatrix& w, double seconds);

// The entries recorded since enabling, the most time first.
std::vector<MatmulProfileEntry> matmul_profile_entries();

}  // namespace nibble
