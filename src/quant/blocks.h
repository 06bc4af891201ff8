// Block layouts of the ggml quant types, byte for byte as ggml-common.h (spec §2.4-§2.18).
// Multi-byte fields are little-endian on disk; nibble only builds for little-endian hosts, so
// the structs are the file bytes. Not here: the codecs (quant/reference/) and the type table
// (quant/quant.cpp).
#pragma once

#include <bit>
#include <cstdint>

namespace nibble {

static_assert(std::endian::native == std::endian::little,
              "block structs assume a little-endian host");

inline constexpr int kQK4_0 = 32;
inline constexpr int kQK4_1 = 32;
inline constexpr int kQK5_0 = 32;
inline constexpr int kQK5_1 = 32;
inline constexpr int kQK8_0 = 32;
inline constexpr int kQK8_1 = 32;
inline constexpr int kQK4_NL = 32;
inline constexpr int kQK_K = 256;  // super-block of the K-quants, Q8_K and IQ4_XS

#pragma pack(push, 1)
// 32 elements. x = (q - 8) * d.
struct BlockQ4_0 {
  uint16_t d;      // f16 scale
  uint8_t qs[16];  // byte j: element j (low nibble), element j+16 (high nibble)
};
// 32 elements. x = q * d + m.
struct BlockQ4_1 {
  uint16_t d;      // f16 scale
  uint16_t m;      // f16 offset (the block minimum)
  uint8_t qs[16];  // nibbles as BlockQ4_0
};
// 32 elements. x = (q - 16) * d, q = low4 | bit4 << 4.
struct BlockQ5_0 {
  uint16_t d;      // f16 scale
  uint8_t qh[4];   // u32 LE: bit j = bit 4 of element j
  uint8_t qs[16];  // low 4 bits, nibbles as BlockQ4_0
};
// 32 elements. x = q * d + m, q in 0..31.
struct BlockQ5_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qh[4];
  uint8_t qs[16];
};
// 32 elements. x = qs[j] * d.
struct BlockQ8_0 {
  uint16_t d;  // f16 scale
  int8_t qs[32];
};
// 32 elements, activations only. s = d * sum(qs) (rounded to f16).
struct BlockQ8_1 {
  uint16_t d;
  uint16_t s;
  int8_t qs[32];
};
// 256 elements. Sub-block s (16 elements): x = d*(scales[s]&15)*q - dmin*(scales[s]>>4).
struct BlockQ2_K {
  uint8_t scales[16];  // low nibble scale, high nibble min
  uint8_t qs[64];      // 2-bit planes: element e -> byte 32*(e/128) + e%32, bits 2*((e%128)/32)
  uint16_t d;          // f16 super-scale of the scales
  uint16_t dmin;       // f16 super-scale of the mins
};
// 256 elements. x = d*(u_s - 32) * (low2 - (hbit ? 0 : 4)).
struct BlockQ3_K {
  uint8_t hmask[32];   // element e: bit e/32 of byte e%32
  uint8_t qs[64];      // low 2 bits, planes as BlockQ2_K
  uint8_t scales[12];  // sixteen 6-bit scales (spec §2.12)
  uint16_t d;
};
// 256 elements. Sub-block s (32 elements): x = d*sc[s]*q - dmin*m[s].
struct BlockQ4_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];  // eight 6-bit scales and eight 6-bit mins (get_scale_min_k4)
  uint8_t qs[128];     // element e: byte 32*(e/64) + e%32, high nibble when e%64 >= 32
};
// 256 elements. As Q4_K with a fifth bit.
struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qh[32];   // element e: bit e/32 of byte e%32
  uint8_t qs[128];  // low 4 bits, as BlockQ4_K
};
// 256 elements. x = d*scales[e/16]*(q - 32), q in 0..63.
struct BlockQ6_K {
  uint8_t ql[128];    // low 4 bits
  uint8_t qh[64];     // high 2 bits
  int8_t scales[16];  // signed 8-bit sub-block scales
  uint16_t d;
};
// 256 elements, activations only. x = d * qs[e]; bsums[k] = sum of qs[16k..16k+15].
struct BlockQ8_K {
  float d;  // f32, not f16
  int8_t qs[256];
  int16_t bsums[16];
};
// 32 elements. x = d * kIq4nlValues[idx].
struct BlockIQ4_NL {
  uint16_t d;
  uint8_t qs[16];  // 4-bit codebook indices, nibbles as BlockQ4_0
};
// 256 elements. Sub-block ib (32 elements): x = d*(ls - 32) * kIq4nlValues[idx].
struct BlockIQ4_XS {
  uint16_t d;
  uint16_t scales_h;    // bits 2ib, 2ib+1: high 2 bits of ls
  uint8_t scales_l[4];  // byte ib/2: low nibble (even ib) or high nibble (odd ib) of ls
  uint8_t qs[128];      // 16 bytes per sub-block, nibbles as BlockQ4_0
};
#pragma pack(pop)

static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ5_0) == 22);
static_assert(sizeof(BlockQ5_1) == 24);
static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ8_1) == 36);
static_assert(sizeof(BlockQ2_K) == 84);
static_assert(sizeof(BlockQ3_K) == 110);
static_assert(sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ5_K) == 176);
static_assert(sizeof(BlockQ6_K) == 210);
static_assert(sizeof(BlockQ8_K) == 292);
static_assert(sizeof(BlockIQ4_NL) == 18);
static_assert(sizeof(BlockIQ4_XS) == 136);

// The IQ4_NL / IQ4_XS non-linear codebook (spec §2.17).
inline constexpr int8_t kIq4nlValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                            1,    13,   25,  38,  53,  69,  89,  113};

}  // namespace nibble
