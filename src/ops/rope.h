// Rotary position embedding, NeoX ("rotate-half") pairing as Gemma 4 uses on both layer types:
// dimension j pairs with j + d/2. Frequencies come from rope_inv_freq (θ^(-2j/d) divided by an
// optional per-pair factor: llama.cpp's rope_freqs, 1e30 = "does not rotate", which is how the
// proportional partial RoPE of full layers is expressed). Oracle: ref::rope.
#pragma once

#include <cstdint>
#include <vector>

namespace nibble {

// inv_freq[j] = base^(-2j/d) / (factors ? factors[j] : 1), j < d/2, in double.
std::vector<double> rope_inv_freq(int64_t d, double base, const float* factors);

// cos/sin tables for n positions: cos_out, sin_out are [n, d/2]; angle = pos * inv_freq[j]
// computed in double, then rounded to float.
void rope_table(const std::vector<double>& inv_freq, const int64_t* positions, int64_t n,
                float* cos_out, float* sin_out);

// Rotates n_vec vectors of length d in place with one position's table row (d/2 entries each).
void rope_apply(float* x, int64_t n_vec, int64_t d, const float* cos, const float* sin);

}  // namespace nibble
