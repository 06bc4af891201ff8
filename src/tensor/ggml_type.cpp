#include "tensor/ggml_type.h"

#include <algorithm>
#include <array>
#include <cctype>

namespace nibble {

namespace {
constexpr std::array<GgmlTypeTraits, kGgmlTypeCount> kTraits = {{
    {"f32", 1, 4, false},       // 0
    {"f16", 1, 2, false},       // 1
    {"q4_0", 32, 18, true},     // 2
    {"q4_1", 32, 20, true},     // 3
    {"q4_2", 0, 0, true},       // 4 removed
    {"q4_3", 0, 0, true},       // 5 removed
    {"q5_0", 32, 22, true},     // 6
    {"q5_1", 32, 24, true},     // 7
    {"q8_0", 32, 34, true},     // 8
    {"q8_1", 32, 36, true},     // 9
    {"q2_K", 256, 84, true},    // 10
    {"q3_K", 256, 110, true},   // 11
    {"q4_K", 256, 144, true},   // 12
    {"q5_K", 256, 176, true},   // 13
    {"q6_K", 256, 210, true},   // 14
    {"q8_K", 256, 292, true},   // 15
    {"iq2_xxs", 256, 66, true}, // 16
    {"iq2_xs", 256, 74, true},  // 17
    {"iq3_xxs", 256, 98, true}, // 18
    {"iq1_s", 256, 50, true},   // 19
    {"iq4_nl", 32, 18, true},   // 20
    {"iq3_s", 256, 110, true},  // 21
    {"iq2_s", 256, 82, true},   // 22
    {"iq4_xs", 256, 136, true}, // 23
    {"i8", 1, 1, false},        // 24
    {"i16", 1, 2, false},       // 25
    {"i32", 1, 4, false},       // 26
    {"i64", 1, 8, false},       // 27
    {"f64", 1, 8, false},       // 28
    {"iq1_m", 256, 56, true},   // 29
    {"bf16", 1, 2, false},      // 30
    {"q4_0_4_4", 0, 0, true},   // 31 removed
    {"q4_0_4_8", 0, 0, true},   // 32 removed
    {"q4_0_8_8", 0, 0, true},   // 33 removed
    {"tq1_0", 256, 54, true},   // 34
    {"tq2_0", 256, 66, true},   // 35
    {"iq4_nl_4_4", 0, 0, true}, // 36 removed
    {"iq4_nl_4_8", 0, 0, true}, // 37 removed
    {"iq4_nl_8_8", 0, 0, true}, // 38 removed
    {"mxfp4", 32, 17, true},    // 39
    {"nvfp4", 64, 36, true},    // 40
    {"q1_0", 128, 18, true},    // 41
    {"q2_0", 64, 18, true},     // 42
}};

// nibble's SFP8 extension: one byte per element (spec §7.1).
constexpr GgmlTypeTraits kSfp8Traits = {"sfp8", 1, 1, true};
}  // namespace

const GgmlTypeTraits* ggml_type_traits(uint32_t id) {
  if (id == kNibbleSfp8TypeId) return &kSfp8Traits;
  if (id >= kGgmlTypeCount) return nullptr;
  const GgmlTypeTraits* t = &kTraits[id];
  return t->block_size == 0 ? nullptr : t;
}

std::optional<GgmlType> ggml_type_from_name(std::string_view name) {
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (uint32_t id = 0; id < kGgmlTypeCount; ++id) {
    const auto& t = kTraits[id];
    if (t.block_size == 0) continue;
    std::string n = t.name;
    std::transform(n.begin(), n.end(), n.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (n == lower) return static_cast<GgmlType>(id);
  }
  if (lower == kSfp8Traits.name) return GgmlType::SFP8;
  return std::nullopt;
}

}  // namespace nibble
