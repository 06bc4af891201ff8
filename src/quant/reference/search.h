// Scale-search helpers of the K-quant and imatrix quantizers (spec §3.2): each quantizes a small
// group of floats to integer levels and returns the scale (and, for the asymmetric ones, the
// min) that llama.cpp's ggml-quants.c would pick, bit for bit. They are decisions on f32 sums,
// so every expression keeps the spec's evaluation order; do not "simplify" them.
#pragma once

#include <cstdint>

namespace nibble::qref {

// Symmetric signed levels -nmax..nmax-1 (stored in L as level + nmax, 0..2nmax-1).
// Weights: qw when given, else by rmse_type (1: x^2, 2: 1, 3: |x|, other: sqrt|x|).
// rmse_type 0 returns the plain rounding (1/iscale). Returns 0 and L = 0 for a (near) zero group.
float make_qx_quants(int n, int nmax, const float* x, int8_t* L, int rmse_type, const float* qw);

// Q3_K reference search: signed levels -nmax..nmax-1, weights x^2, up to 5 coordinate-descent
// sweeps (do_rmse). L gets level + nmax.
float make_q3_quants(int n, int nmax, const float* x, int8_t* L, bool do_rmse);

// Asymmetric levels 0..nmax with x ~ scale*L - the_min (the_min >= 0), weights w (required).
// Error is |.| when use_mad, else squared. Laux is scratch of n bytes.
float make_qkx2_quants(int n, int nmax, const float* x, const float* w, uint8_t* L, float* the_min,
                       uint8_t* Laux, float rmin, float rdelta, int nstep, bool use_mad);

// As make_qkx2_quants, used by the imatrix paths; w may be null (then x^2).
float make_qkx3_quants(int n, int nmax, const float* x, const float* w, uint8_t* L, float* the_min,
                       uint8_t* Laux, float rmin, float rdelta, int nstep, bool use_mad);

// Quantizes non-negative values (scales or mins) to 0..nmax with weights qw (required).
float make_qp_quants(int n, int nmax, const float* x, uint8_t* L, const float* qw);

// Index of the codebook entry of `values` (16 sorted entries) nearest to v; ties go up.
int best_index_iq4(const int8_t* values, float v);

}  // namespace nibble::qref
