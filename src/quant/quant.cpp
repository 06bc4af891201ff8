// The quant type table: one row per type nibble can convert, and the row/chunk drivers over it
// (spec §3.7). This is the only file in quant/ that enumerates types; the codecs themselves are
// in quant/reference/.
#include "quant/quant.h"

#include <array>

#include "quant/reference/codecs.h"
#include "util/check.h"

namespace nibble {

namespace {

using IU = ImatrixUse;

// clang-format off
constexpr std::array kCodecs = {
    //         type            dequantize               quantize (no imatrix)   quantize with imatrix          imatrix        activation_only
    QuantCodec{GgmlType::F32,    qref::dequantize_f32,    qref::quantize_f32,    nullptr,                       IU::kIgnored,  false},
    QuantCodec{GgmlType::F16,    qref::dequantize_f16,    qref::quantize_f16,    nullptr,                       IU::kIgnored,  false},
    QuantCodec{GgmlType::BF16,   qref::dequantize_bf16,   qref::quantize_bf16,   nullptr,                       IU::kIgnored,  false},
    QuantCodec{GgmlType::Q4_0,   qref::dequantize_q4_0,   qref::quantize_q4_0,   qref::quantize_q4_0_imatrix,   IU::kSwitches, false},
    QuantCodec{GgmlType::Q4_1,   qref::dequantize_q4_1,   qref::quantize_q4_1,   qref::quantize_q4_1_imatrix,   IU::kSwitches, false},
    QuantCodec{GgmlType::Q5_0,   qref::dequantize_q5_0,   qref::quantize_q5_0,   qref::quantize_q5_0_imatrix,   IU::kSwitches, false},
    QuantCodec{GgmlType::Q5_1,   qref::dequantize_q5_1,   qref::quantize_q5_1,   qref::quantize_q5_1_imatrix,   IU::kSwitches, false},
    QuantCodec{GgmlType::Q8_0,   qref::dequantize_q8_0,   qref::quantize_q8_0,   nullptr,                       IU::kIgnored,  false},
    QuantCodec{GgmlType::Q8_1,   qref::dequantize_q8_1,   qref::quantize_q8_1,   nullptr,                       IU::kIgnored,  true},
    QuantCodec{GgmlType::Q2_K,   qref::dequantize_q2_K,   qref::quantize_q2_K,   qref::quantize_q2_K_imatrix,   IU::kSwitches, false},
    QuantCodec{GgmlType::Q3_K,   qref::dequantize_q3_K,   qref::quantize_q3_K,   qref::quantize_q3_K_imatrix,   IU::kSwitches, false},
    QuantCodec{GgmlType::Q4_K,   qref::dequantize_q4_K,   qref::quantize_q4_K,   qref::quantize_q4_K_imatrix,   IU::kSwitches, false},
    QuantCodec{GgmlType::Q5_K,   qref::dequantize_q5_K,   qref::quantize_q5_K,   qref::quantize_q5_K_imatrix,   IU::kSwitches, false},
    QuantCodec{GgmlType::Q6_K,   qref::dequantize_q6_K,   qref::quantize_q6_K,   qref::quantize_q6_K_imatrix,   IU::kSwitches, false},
    QuantCodec{GgmlType::Q8_K,   qref::dequantize_q8_K,   qref::quantize_q8_K,   nullptr,                       IU::kIgnored,  true},
    QuantCodec{GgmlType::IQ4_NL, qref::dequantize_iq4_nl, qref::quantize_iq4_nl, qref::quantize_iq4_nl_imatrix, IU::kWeights,  false},
    QuantCodec{GgmlType::IQ4_XS, qref::dequantize_iq4_xs, qref::quantize_iq4_xs, qref::quantize_iq4_xs_imatrix, IU::kWeights,  false},
    // nibble extension (id 1000, not a ggml type): gemma.cpp's SFP8.
    QuantCodec{GgmlType::SFP8,   qref::dequantize_sfp8,   qref::quantize_sfp8,   nullptr,                       IU::kIgnored,  false},
};
// clang-format on

// Index by type id for O(1) lookup; built once from kCodecs. ggml ids index the array; the
// nibble extension (SFP8, id 1000) has its own slot.
struct CodecIndex {
  std::array<const QuantCodec*, kGgmlTypeCount> by_id{};
  const QuantCodec* sfp8 = nullptr;
  CodecIndex() {
    for (const auto& c : kCodecs) {
      const auto id = static_cast<uint32_t>(c.type);
      if (id == kNibbleSfp8TypeId) sfp8 = &c;
      else by_id[id] = &c;
    }
  }
};

const QuantCodec& checked_codec(GgmlType type, const char* what) {
  const QuantCodec* c = quant_codec(type);
  NIBBLE_CHECK(c != nullptr, what);
  return *c;
}

void check_whole_blocks(GgmlType type, uint64_t n) {
  NIBBLE_CHECK(n % traits(type).block_size == 0,
               "quant: row length is not a multiple of the block size");
}

}  // namespace

const QuantCodec* quant_codec(GgmlType type) {
  static const CodecIndex index;
  const auto id = static_cast<uint32_t>(type);
  if (id == kNibbleSfp8TypeId) return index.sfp8;
  return id < kGgmlTypeCount ? index.by_id[id] : nullptr;
}

bool can_dequantize(GgmlType type) {
  const QuantCodec* c = quant_codec(type);
  return c != nullptr && c->dequantize != nullptr;
}

bool can_quantize(GgmlType type) {
  const QuantCodec* c = quant_codec(type);
  return c != nullptr && c->quantize != nullptr;
}

ImatrixUse imatrix_use(GgmlType type) {
  const QuantCodec* c = quant_codec(type);
  return c != nullptr ? c->imatrix : ImatrixUse::kIgnored;
}

void dequantize_row(GgmlType type, const uint8_t* src, float* dst, uint64_t n) {
  const QuantCodec& c = checked_codec(type, "dequantize_row: unsupported type");
  check_whole_blocks(type, n);
  c.dequantize(src, dst, n);
}

void quantize_row(GgmlType type, const float* src, uint8_t* dst, uint64_t n, const float* imatrix) {
  const QuantCodec& c = checked_codec(type, "quantize_row: unsupported type");
  NIBBLE_CHECK(c.quantize != nullptr, "quantize_row: type has no quantizer");
  check_whole_blocks(type, n);
  if (imatrix != nullptr && c.quantize_imatrix != nullptr) {
    c.quantize_imatrix(src, dst, n, imatrix);
  } else {
    c.quantize(src, dst, n);
  }
}

uint64_t quantize_rows(GgmlType type, const float* src, uint8_t* dst, uint64_t n_rows,
                       uint64_t n_per_row, const float* imatrix) {
  const QuantCodec& c = checked_codec(type, "quantize_rows: unsupported type");
  NIBBLE_CHECK(c.quantize != nullptr, "quantize_rows: type has no quantizer");
  check_whole_blocks(type, n_per_row);
  const uint64_t row_bytes = ggml_row_size(type, n_per_row);
  if (imatrix == nullptr || c.quantize_imatrix == nullptr) {
    c.quantize(src, dst, n_rows * n_per_row);  // every reference quantizer is block-local
  } else {
    for (uint64_t r = 0; r < n_rows; ++r)
      c.quantize_imatrix(src + r * n_per_row, dst + r * row_bytes, n_per_row, imatrix);
  }
  return n_rows * row_bytes;
}

void quantize_row_iq4_nl_kv(const float* src, uint8_t* dst, uint64_t n) {
  check_whole_blocks(GgmlType::IQ4_NL, n);
  qref::quantize_iq4_nl_kv(src, dst, n);
}

}  // namespace nibble
