// Hostile GGUF input (STYLE §7, spec gguf-and-quant-formats §1.11): a corpus of corrupt files
// generated from a valid one (byte-identical to GgufWriter's output). Each must be rejected with
// one line naming the file, the thing and the numbers; never a crash, a hang or a huge allocation
// (under ASan any single allocation above 1 GiB fails the test). `nibble inspect` on each exits 1
// with exactly one line on stderr.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstring>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "gguf/gguf_file.h"
#include "gguf/gguf_writer.h"
#include "hostile_input.h"
#include "test_util.h"

NIBBLE_ASAN_LIMIT_ALLOCATIONS()

namespace nibble {
namespace {

using Bytes = std::vector<uint8_t>;
using U64s = std::initializer_list<uint64_t>;
using U32s = std::initializer_list<uint32_t>;
using test::is_cli_error;
using test::is_one_line_message;
constexpr uint64_t k2p63 = 1ull << 63;
constexpr uint64_t kU64Max = ~0ull;

void put_u32(Bytes& b, uint32_t v) {
  for (int i = 0; i < 4; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
void put_u64(Bytes& b, uint64_t v) {
  for (int i = 0; i < 8; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
// A GGUF string whose length field may lie.
void put_str(Bytes& b, const std::string& s, std::optional<uint64_t> len = std::nullopt) {
  put_u64(b, len.value_or(s.size()));
  b.insert(b.end(), s.begin(), s.end());
}

enum : uint32_t { kU8 = 0, kI32 = 5, kU32 = 4, kF32 = 6, kStr = 8, kArr = 9 };

Bytes enc_u32(uint32_t v) {
  Bytes b;
  put_u32(b, v);
  return b;
}
Bytes enc_str(const std::string& s, std::optional<uint64_t> len = std::nullopt) {
  Bytes b;
  put_str(b, s, len);
  return b;
}
// ARRAY of STRING; `lens` overrides the length field of some elements.
Bytes enc_str_array(const std::vector<std::string>& items, uint32_t elem_type = kStr,
                    std::optional<uint64_t> count = std::nullopt,
                    std::vector<std::optional<uint64_t>> lens = {}) {
  Bytes b;
  put_u32(b, elem_type);
  put_u64(b, count.value_or(items.size()));
  for (size_t i = 0; i < items.size(); ++i) put_str(b, items[i], i < lens.size() ? lens[i] : std::nullopt);
  return b;
}
Bytes enc_f32_array(const std::vector<float>& items, std::optional<uint64_t> count = std::nullopt) {
  Bytes b;
  put_u32(b, kF32);
  put_u64(b, count.value_or(items.size()));
  for (float f : items) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    put_u32(b, u);
  }
  return b;
}

struct RawKv {
  std::string key;
  uint32_t type;
  Bytes value;  // encoded value (without the type)
  std::optional<uint64_t> key_len = std::nullopt;
};
struct RawTensor {
  std::string name;
  uint32_t n_dims;
  std::vector<uint64_t> ne;
  uint32_t type;
  uint64_t offset;
  std::optional<uint64_t> name_len = std::nullopt;
};

// A GGUF image built field by field, so that every field can be made wrong.
struct RawGguf {
  std::string magic = "GGUF";
  uint32_t version = 3;
  std::optional<uint64_t> n_tensors, n_kv;  // overrides of the counts
  std::vector<RawKv> kvs;
  std::vector<RawTensor> tensors;
  uint64_t align = 32;  // padding before the data section
  Bytes data;

  // Offset of the end of the tensor infos (before padding).
  uint64_t infos_end() const { return header().size(); }
  uint64_t data_offset() const { return (infos_end() + align - 1) / align * align; }

  Bytes header() const {
    Bytes b(magic.begin(), magic.end());
    put_u32(b, version);
    put_u64(b, n_tensors.value_or(tensors.size()));
    put_u64(b, n_kv.value_or(kvs.size()));
    for (const auto& kv : kvs) {
      put_str(b, kv.key, kv.key_len);
      put_u32(b, kv.type);
      b.insert(b.end(), kv.value.begin(), kv.value.end());
    }
    for (const auto& t : tensors) {
      put_str(b, t.name, t.name_len);
      put_u32(b, t.n_dims);
      for (uint64_t d : t.ne) put_u64(b, d);
      put_u32(b, t.type);
      put_u64(b, t.offset);
    }
    return b;
  }
  Bytes bytes() const {
    Bytes b = header();
    b.resize(data_offset(), 0);
    b.insert(b.end(), data.begin(), data.end());
    return b;
  }
};

// Tensor bytes of the valid file: a 16-byte F32 [4], a 36-byte Q4_0 [32, 2], a 12-byte F16 [2, 3],
// each padded to 32.
Bytes tensor_bytes(uint64_t n, uint8_t seed) {
  Bytes b(n);
  for (uint64_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(i * 7 + seed);
  return b;
}
const Bytes kDataA = tensor_bytes(16, 1), kDataB = tensor_bytes(36, 2), kDataC = tensor_bytes(12, 3);
constexpr uint64_t kOffB = 32, kOffC = 96, kDataSize = 128;

RawGguf valid_raw() {
  RawGguf g;
  g.kvs.push_back({"general.architecture", kStr, enc_str("test")});
  g.kvs.push_back({"general.alignment", kU32, enc_u32(32)});
  g.kvs.push_back({"test.count", kU32, enc_u32(7)});
  g.kvs.push_back({"test.tokens", kArr, enc_str_array({"a", "bb", "ccc"})});
  g.kvs.push_back({"test.scores", kArr, enc_f32_array({0.5f, -1.0f})});
  g.tensors.push_back({"a", 1, {4}, 0, 0});             // F32
  g.tensors.push_back({"b", 2, {32, 2}, 2, kOffB});     // Q4_0
  g.tensors.push_back({"c", 2, {2, 3}, 1, kOffC});      // F16
  g.data.assign(kDataSize, 0);
  std::copy(kDataA.begin(), kDataA.end(), g.data.begin());
  std::copy(kDataB.begin(), kDataB.end(), g.data.begin() + kOffB);
  std::copy(kDataC.begin(), kDataC.end(), g.data.begin() + kOffC);
  return g;
}

// The same file through GgufWriter.
Bytes valid_from_writer() {
  GgufWriter w;
  auto& md = w.metadata();
  md.set("general.architecture", GgufValue::str("test"));
  md.set("general.alignment", GgufValue::u32(32));
  md.set("test.count", GgufValue::u32(7));
  md.set("test.tokens", GgufValue::str_array({"a", "bb", "ccc"}));
  md.set("test.scores", GgufValue::array<float>(GgufType::kFloat32, {0.5f, -1.0f}));
  EXPECT_TRUE(w.add_tensor("a", GgmlType::F32, {4}, kDataA.data(), kDataA.size()).ok());
  EXPECT_TRUE(w.add_tensor("b", GgmlType::Q4_0, {32, 2}, kDataB.data(), kDataB.size()).ok());
  EXPECT_TRUE(w.add_tensor("c", GgmlType::F16, {2, 3}, kDataC.data(), kDataC.size()).ok());
  auto bytes = w.write_to_memory();
  EXPECT_TRUE(bytes.ok());
  return bytes.ok() ? bytes.value() : Bytes{};
}

const char* kName = "corrupt.gguf";

// The reader keeps pointers into the bytes, so the exact-size copy it parsed lives as long.
struct Parsed {
  std::unique_ptr<Bytes> bytes;
  Result<std::unique_ptr<GgufFile>> result;
};

Parsed parse(const Bytes& b) {
  // An exact-size copy, so ASan sees any read past the end.
  auto copy = std::make_unique<Bytes>(b.begin(), b.end());
  auto r = GgufFile::parse(copy->data(), copy->size(), kName);
  return {std::move(copy), std::move(r)};
}

struct Case {
  std::string name;
  std::function<void(RawGguf&)> mutate;
  std::vector<std::string> expect;  // substrings of the error message
};

std::string u(uint64_t v) { return std::to_string(v); }

std::vector<Case> corrupt_cases() {
  std::vector<Case> c;
  auto kv = [](RawGguf& g, const std::string& key) -> RawKv& {
    for (auto& k : g.kvs) {
      if (k.key == key) return k;
    }
    throw std::logic_error("no key " + key);
  };
  // Header.
  c.push_back({"bad_magic", [](RawGguf& g) { g.magic = "GGUG"; }, {"not a GGUF file", "47 47 55 47"}});
  c.push_back({"lowercase_magic", [](RawGguf& g) { g.magic = "gguf"; }, {"67 67 75 66"}});
  c.push_back({"zero_magic", [](RawGguf& g) { g.magic = std::string(4, '\0'); }, {"00 00 00 00"}});
  for (uint32_t v : U32s{0u, 1u, 4u, 0xFFFFFFFFu}) {
    c.push_back({"version_" + u(v), [v](RawGguf& g) { g.version = v; }, {"GGUF version " + u(v)}});
  }
  c.push_back({"version_byte_swapped", [](RawGguf& g) { g.version = 0x03000000; },
               {"byte-swapped", "0x03000000"}});
  for (uint64_t n : U64s{k2p63, kU64Max, 1ull << 40, 1ull << 32, 1000ull}) {
    c.push_back({"n_kv_" + u(n), [n](RawGguf& g) { g.n_kv = n; }, {"metadata count " + u(n)}});
    c.push_back({"n_tensors_" + u(n), [n](RawGguf& g) { g.n_tensors = n; }, {"tensor count " + u(n)}});
  }
  // One record more than there is: the reader runs into the next section and must fail cleanly.
  c.push_back({"n_kv_one_too_many", [](RawGguf& g) { g.n_kv = g.kvs.size() + 1; }, {}});
  c.push_back({"n_tensors_one_too_many", [](RawGguf& g) { g.n_tensors = g.tensors.size() + 1; }, {}});
  c.push_back({"n_kv_one_too_few", [](RawGguf& g) { g.n_kv = g.kvs.size() - 1; }, {}});

  // Strings.
  for (uint64_t len : U64s{k2p63, kU64Max, (1ull << 30) + 1, 1000ull}) {
    c.push_back({"key_length_" + u(len), [len](RawGguf& g) { g.kvs[0].key_len = len; },
                 {"metadata key #0", "string length " + u(len)}});
    c.push_back({"string_value_length_" + u(len),
                 [len, kv](RawGguf& g) { kv(g, "general.architecture").value = enc_str("test", len); },
                 {"key 'general.architecture'", "string length " + u(len)}});
    c.push_back({"tensor_name_length_" + u(len), [len](RawGguf& g) { g.tensors[1].name_len = len; },
                 {"tensor name #1", "string length " + u(len)}});
    c.push_back({"array_string_length_" + u(len),
                 [len, kv](RawGguf& g) {
                   kv(g, "test.tokens").value =
                       enc_str_array({"a", "bb", "ccc"}, kStr, std::nullopt, {std::nullopt, len});
                 },
                 {"key 'test.tokens'[1]", "string length " + u(len)}});
  }
  // Arrays.
  for (uint64_t n : U64s{k2p63, kU64Max, 1ull << 62, 1ull << 61, 1ull << 40, (1ull << 30) + 1, 100ull}) {
    c.push_back({"f32_array_count_" + u(n),
                 [n, kv](RawGguf& g) { kv(g, "test.scores").value = enc_f32_array({0.5f, -1.0f}, n); },
                 {"key 'test.scores'", "array of " + u(n) + " float32"}});
    c.push_back({"string_array_count_" + u(n),
                 [n, kv](RawGguf& g) { kv(g, "test.tokens").value = enc_str_array({"a", "bb", "ccc"}, kStr, n); },
                 {"key 'test.tokens'", "array of " + u(n) + " string"}});
  }
  c.push_back({"nested_array",
               [kv](RawGguf& g) { kv(g, "test.tokens").value = enc_str_array({"a", "bb", "ccc"}, kArr); },
               {"key 'test.tokens'", "nested arrays"}});
  for (uint32_t t : U32s{13u, 99u, 0x80000000u, 0xFFFFFFFFu}) {
    c.push_back({"value_type_" + u(t), [t, kv](RawGguf& g) { kv(g, "test.count").type = t; },
                 {"key 'test.count'", "unknown value type " + u(t)}});
    c.push_back({"array_element_type_" + u(t),
                 [t, kv](RawGguf& g) { kv(g, "test.tokens").value = enc_str_array({"a"}, t); },
                 {"key 'test.tokens'", "unknown array element type " + u(t)}});
  }
  // Keys.
  c.push_back({"duplicate_key", [](RawGguf& g) { g.kvs[2].key = "general.architecture"; },
               {"duplicate metadata key 'general.architecture'"}});
  c.push_back({"empty_key", [](RawGguf& g) { g.kvs[2].key = ""; }, {"metadata key #2 is empty"}});
  // Alignment.
  c.push_back({"alignment_0", [kv](RawGguf& g) { kv(g, "general.alignment").value = enc_u32(0); },
               {"general.alignment 0"}});
  c.push_back({"alignment_3", [kv](RawGguf& g) { kv(g, "general.alignment").value = enc_u32(3); },
               {"general.alignment 3 is not a power of two"}});
  c.push_back({"alignment_int32", [kv](RawGguf& g) { kv(g, "general.alignment").type = kI32; },
               {"general.alignment has type int32"}});
  c.push_back({"alignment_string",
               [kv](RawGguf& g) {
                 auto& k = kv(g, "general.alignment");
                 k.type = kStr;
                 k.value = enc_str("32");
               },
               {"general.alignment has type string"}});
  c.push_back({"alignment_2p31", [kv](RawGguf& g) { kv(g, "general.alignment").value = enc_u32(1u << 31); },
               {"data section starts at byte 2147483648"}});
  c.push_back({"alignment_64_data_at_32", [kv](RawGguf& g) { kv(g, "general.alignment").value = enc_u32(64); },
               {"tensor 'b' has data offset 32, expected 64"}});
  // Tensor infos.
  c.push_back({"tensor_name_64_bytes", [](RawGguf& g) { g.tensors[1].name = std::string(64, 'n'); },
               {"tensor #1 name is 64 bytes, limit is 63"}});
  c.push_back({"tensor_name_1000_bytes", [](RawGguf& g) { g.tensors[1].name = std::string(1000, 'n'); },
               {"tensor #1 name is 1000 bytes"}});
  c.push_back({"duplicate_tensor_name", [](RawGguf& g) { g.tensors[2].name = "a"; },
               {"duplicate tensor name 'a'"}});
  for (uint32_t n : U32s{5u, 64u, 0xFFFFFFFFu}) {
    c.push_back({"n_dims_" + u(n),
                 [n](RawGguf& g) {
                   g.tensors[1].n_dims = n;
                   g.tensors[1].ne = {32, 2, 1, 1, 1};
                 },
                 {"tensor 'b' has " + u(n) + " dimensions, at most 4"}});
  }
  c.push_back({"negative_dim", [](RawGguf& g) { g.tensors[1].ne[1] = static_cast<uint64_t>(-2); },
               {"tensor 'b' dimension 1 is negative (-2)"}});
  c.push_back({"negative_dim0", [](RawGguf& g) { g.tensors[0].ne[0] = kU64Max; },
               {"tensor 'a' dimension 0 is negative (-1)"}});
  c.push_back({"element_count_overflow_2x2p32",
               [](RawGguf& g) {
                 g.tensors[0].n_dims = 2;
                 g.tensors[0].ne = {1ull << 32, 1ull << 32};
               },
               {"tensor 'a': element count overflows"}});
  c.push_back({"element_count_past_int64",
               [](RawGguf& g) {
                 g.tensors[0].n_dims = 2;
                 g.tensors[0].ne = {1ull << 62, 2};
               },
               {"tensor 'a': element count overflows"}});
  c.push_back({"element_count_overflow_4d",
               [](RawGguf& g) {
                 g.tensors[0].n_dims = 4;
                 g.tensors[0].ne = {1ull << 20, 1ull << 20, 1ull << 20, 1ull << 20};
               },
               {"tensor 'a': element count overflows"}});
  c.push_back({"byte_size_overflow", [](RawGguf& g) { g.tensors[0].ne = {1ull << 62}; },
               {"tensor 'a': byte size overflows"}});
  for (uint32_t t : U32s{4u, 5u, 31u, 32u, 33u, 36u, 37u, 38u, 43u, 99u, 1u << 31, 0xFFFFFFFFu}) {
    c.push_back({"tensor_type_" + u(t), [t](RawGguf& g) { g.tensors[0].type = t; },
                 {"tensor 'a' has unknown or removed type id " + u(t)}});
  }
  for (uint64_t ne0 : U64s{1ull, 16ull, 33ull, 48ull}) {
    c.push_back({"row_not_multiple_of_block_" + u(ne0), [ne0](RawGguf& g) { g.tensors[1].ne[0] = ne0; },
                 {"tensor 'b': row length " + u(ne0) + " is not a multiple of q4_0's block size 32"}});
  }
  // Data layout.
  c.push_back({"offset_gap", [](RawGguf& g) { g.tensors[1].offset = 64; },
               {"tensor 'b' has data offset 64, expected 32"}});
  c.push_back({"offset_unaligned", [](RawGguf& g) { g.tensors[1].offset = 33; },
               {"tensor 'b' has data offset 33, expected 32"}});
  c.push_back({"offset_overlaps_previous", [](RawGguf& g) { g.tensors[1].offset = 0; },
               {"tensor 'b' has data offset 0, expected 32"}});
  c.push_back({"offset_overlaps_middle", [](RawGguf& g) { g.tensors[2].offset = 64; },
               {"tensor 'c' has data offset 64, expected 96"}});
  c.push_back({"offsets_swapped",
               [](RawGguf& g) {
                 g.tensors[1].offset = kOffC;
                 g.tensors[2].offset = kOffB;
               },
               {"tensor 'b' has data offset 96, expected 32"}});
  c.push_back({"offset_first_not_zero", [](RawGguf& g) { g.tensors[0].offset = 32; },
               {"tensor 'a' has data offset 32, expected 0"}});
  c.push_back({"offset_past_end", [](RawGguf& g) { g.tensors[2].offset = k2p63; },
               {"tensor 'c' has data offset " + u(k2p63) + ", expected 96"}});
  c.push_back({"offset_u64_max", [](RawGguf& g) { g.tensors[2].offset = kU64Max; },
               {"tensor 'c' has data offset " + u(kU64Max) + ", expected 96"}});
  c.push_back({"tensor_larger_than_file",
               [](RawGguf& g) {
                 g.tensors[2].type = 0;
                 g.tensors[2].n_dims = 1;
                 g.tensors[2].ne = {1ull << 40};
               },
               {"tensor 'c': data ends at byte", "file has"}});
  c.push_back({"data_truncated_mid_tensor", [](RawGguf& g) { g.data.resize(kOffC + 5); },
               {"tensor 'c': data ends at byte"}});
  c.push_back({"data_missing", [](RawGguf& g) { g.data.clear(); }, {"tensor 'a': data ends at byte"}});
  return c;
}

TEST(GgufCorrupt, BaseFileIsTheWritersOutputAndValid) {
  const Bytes raw = valid_raw().bytes();
  EXPECT_EQ(raw, valid_from_writer());
  auto p = parse(raw);
  auto& r = p.result;
  ASSERT_TRUE(r.ok()) << r.error().message;
  const GgufFile& g = *r.value();
  ASSERT_EQ(g.tensors().size(), 3u);
  EXPECT_EQ(g.data_offset(), valid_raw().data_offset());
  EXPECT_EQ(std::memcmp(g.find_tensor("c")->data, kDataC.data(), kDataC.size()), 0);
}

TEST(GgufCorrupt, AcceptedVariants) {
  // Not corrupt: version 2, a 63-byte name, trailing padding of the last tensor missing
  // (llama.cpp accepts it, spec §1.7), zero tensors with no data section, n_dims with trailing 1s.
  std::vector<std::pair<std::string, std::function<void(RawGguf&)>>> ok_cases = {
      {"version_2", [](RawGguf& g) { g.version = 2; }},
      {"name_63_bytes", [](RawGguf& g) { g.tensors[1].name = std::string(63, 'n'); }},
      {"no_trailing_padding", [](RawGguf& g) { g.data.resize(kOffC + kDataC.size()); }},
      {"no_tensors",
       [](RawGguf& g) {
         g.tensors.clear();
         g.data.clear();
         g.align = 1;
       }},
      {"trailing_ones", [](RawGguf& g) {
         g.tensors[0].n_dims = 4;
         g.tensors[0].ne = {4, 1, 1, 1};
       }}};
  for (const auto& [name, mutate] : ok_cases) {
    SCOPED_TRACE(name);
    RawGguf g = valid_raw();
    mutate(g);
    auto p = parse(g.bytes());
    auto& r = p.result;
    EXPECT_TRUE(r.ok()) << r.error().message;
  }
}

TEST(GgufCorrupt, EachCorruptionIsRejectedWithOneLineNamingIt) {
  const auto cases = corrupt_cases();
  ASSERT_GT(cases.size(), 100u);
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    RawGguf g = valid_raw();
    c.mutate(g);
    auto p = parse(g.bytes());
    auto& r = p.result;
    ASSERT_FALSE(r.ok()) << "accepted";
    std::vector<std::string> expect = c.expect;
    expect.push_back(kName);  // names the file
    EXPECT_TRUE(is_one_line_message(r.error().message, expect));
  }
}

TEST(GgufCorrupt, TruncatedAtEveryOffset) {
  const Bytes full = valid_raw().bytes();
  const uint64_t data_offset = valid_raw().data_offset();
  const uint64_t last_end = data_offset + kOffC + kDataC.size();
  for (uint64_t cut = 0; cut < full.size(); ++cut) {
    SCOPED_TRACE("cut at " + u(cut));
    auto p = parse(Bytes(full.begin(), full.begin() + static_cast<ptrdiff_t>(cut)));
    auto& r = p.result;
    if (cut >= last_end) {  // only the last tensor's padding is missing: accepted (spec §1.7)
      EXPECT_TRUE(r.ok()) << r.error().message;
      continue;
    }
    ASSERT_FALSE(r.ok());
    std::vector<std::string> expect = {kName};
    if (cut < 4) expect.push_back("only " + u(cut) + " bytes");
    else if (cut >= data_offset) expect.push_back("data ends at byte");
    // Inside the header the message names the field or the data section and the file size.
    EXPECT_TRUE(is_one_line_message(r.error().message, expect));
  }
}

TEST(GgufCorrupt, TruncatedDataGivesBothNumbers) {
  RawGguf g = valid_raw();
  g.data.resize(kOffC + 5);
  const Bytes b = g.bytes();
  auto p = parse(b);
  auto& r = p.result;
  ASSERT_FALSE(r.ok());
  const uint64_t end = g.data_offset() + kOffC + kDataC.size();
  EXPECT_TRUE(is_one_line_message(
      r.error().message, {"tensor 'c': data ends at byte " + u(end) + ", file has " + u(b.size())}));
}

TEST(GgufCorrupt, EveryHeaderByteFlipped) {
  // A deterministic mini-fuzz: each header byte set to 0x00, 0xFF, +1 and -1. Any outcome but a
  // crash, a hang or an unreadable message is fine.
  const Bytes full = valid_raw().bytes();
  const uint64_t header_end = valid_raw().infos_end();
  int rejected = 0;
  for (uint64_t i = 0; i < header_end; ++i) {
    for (int how = 0; how < 4; ++how) {
      Bytes b = full;
      b[i] = how == 0 ? 0x00 : how == 1 ? 0xFF : static_cast<uint8_t>(b[i] + (how == 2 ? 1 : -1));
      auto p = parse(b);
      auto& r = p.result;
      if (!r.ok()) {
        ++rejected;
        EXPECT_TRUE(is_one_line_message(r.error().message, {kName})) << "byte " << i;
      } else {
        for (const auto& [k, v] : r.value()->metadata().entries()) (void)v.to_display_string();
      }
    }
  }
  EXPECT_GT(rejected, 0);
}

// Names and keys come from the file; the message must stay one line whatever bytes they hold.
// KNOWN BUG (reported to the lead): gguf_file.cpp prints keys and tensor names raw with %s, so a
// key containing '\n' splits the error over two lines (and a terminal escape sequence in a name
// reaches the terminal). Fix: escape control characters (and cap the length) when a name from
// the file goes into a message. Disabled until then.
TEST(GgufCorrupt, ControlCharactersInNamesStayOnOneLine) {
  RawGguf g = valid_raw();
  g.kvs[2].key = "evil\nkey";
  g.kvs.push_back({"evil\nkey", kU32, enc_u32(1)});
  auto p = parse(g.bytes());
  auto& r = p.result;
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(is_one_line_message(r.error().message, {"duplicate metadata key"}));
  RawGguf g2 = valid_raw();
  g2.tensors[2].name = "x\x1b[2Jy";
  g2.tensors[2].type = 4;
  auto p2 = parse(g2.bytes());
  auto& r2 = p2.result;
  ASSERT_FALSE(r2.ok());
  EXPECT_EQ(r2.error().message.find('\x1b'), std::string::npos) << r2.error().message;
}

TEST(GgufCorrupt, OpenReportsMissingEmptyAndNonRegularFiles) {
  const std::string dir = test::temp_dir();
  auto missing = GgufFile::open(dir + "/nope.gguf");
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(is_one_line_message(missing.error().message, {dir + "/nope.gguf", "cannot open"}));
  test::write_bytes(dir + "/empty.gguf", {});
  auto empty = GgufFile::open(dir + "/empty.gguf");
  ASSERT_FALSE(empty.ok());
  EXPECT_TRUE(is_one_line_message(empty.error().message, {"only 0 bytes"}));
  auto d = GgufFile::open(dir);
  ASSERT_FALSE(d.ok());
  EXPECT_TRUE(is_one_line_message(d.error().message, {"not a regular file"}));
}

// ---------------------------------------------------------------------------------------- CLI

TEST(GgufCorruptCli, InspectRejectsEachCorruptFileWithOneLine) {
  const std::string dir = test::temp_dir();
  const auto cases = corrupt_cases();
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    SCOPED_TRACE(c.name);
    RawGguf g = valid_raw();
    c.mutate(g);
    const std::string path = dir + "/" + c.name + ".gguf";
    test::write_bytes(path, g.bytes());
    std::vector<std::string> args = {"inspect", path};
    if (i % 2 == 1) args.push_back("--json");  // both renderings share the reader
    auto r = test::run_nibble_ex(args, {});
    std::vector<std::string> expect = c.expect;
    expect.push_back("inspect: " + path);
    EXPECT_TRUE(is_cli_error(r, expect));
    EXPECT_EQ(r.out, "");
  }
}

TEST(GgufCorruptCli, InspectAcceptsTheValidFile) {
  const std::string path = test::temp_dir() + "/valid.gguf";
  test::write_bytes(path, valid_raw().bytes());
  auto r = test::run_nibble_ex({"inspect", path}, {});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("test.tokens"), std::string::npos) << r.out;
  auto j = test::run_nibble_ex({"inspect", path, "--json"}, {});
  EXPECT_EQ(j.exit_code, 0) << j.err;
}

TEST(GgufCorruptCli, InspectMissingDirectoryAndEmpty) {
  const std::string dir = test::temp_dir();
  EXPECT_TRUE(is_cli_error(test::run_nibble_ex({"inspect", dir + "/nope.gguf"}, {}), {"nope.gguf"}));
  EXPECT_TRUE(is_cli_error(test::run_nibble_ex({"inspect", dir}, {}), {"not a regular file"}));
  test::write_bytes(dir + "/empty.gguf", {});
  EXPECT_TRUE(is_cli_error(test::run_nibble_ex({"inspect", dir + "/empty.gguf"}, {}), {"only 0 bytes"}));
}

// KNOWN BUG (reported to the lead): MappedFile::open (src/util/mapped_file.cpp) calls open(2)
// before checking the file type, and open(2) of a FIFO blocks until a writer appears, so
// `nibble inspect some.fifo` hangs forever. Fix: open with O_NONBLOCK (then fstat, reject
// !S_ISREG, clear O_NONBLOCK), or stat() first. Disabled until then.
TEST(GgufCorruptCli, InspectFifoDoesNotHang) {
  const std::string path = test::temp_dir() + "/fifo.gguf";
  ASSERT_EQ(mkfifo(path.c_str(), 0600), 0);
  test::RunOptions opt;
  opt.timeout_ms = 5000;
  EXPECT_TRUE(is_cli_error(test::run_nibble_ex({"inspect", path}, opt), {"not a regular file"}));
}

// ------------------------------------------------------------------------------- writer edges

// KNOWN BUG (reported to the lead): gguf_canonical_n_dims (src/gguf/gguf_writer.cpp) keeps only
// dimensions up to the last one > 1, so a tensor of shape [4, 0] (0 elements, 0 bytes) is
// written with n_dims 1 and ne [4]: the file then claims 16 bytes that were never written, and
// every later tensor's offset is wrong. Fix: count a dimension != 1 (not > 1) as significant,
// or reject empty tensors in add_tensor. Disabled until then.
TEST(GgufWriterEdge, ZeroDimensionRoundTrips) {
  GgufWriter w;
  ASSERT_TRUE(w.add_tensor("empty", GgmlType::F32, {4, 0}, nullptr, 0).ok());
  ASSERT_TRUE(w.add_tensor("x", GgmlType::F32, {1}, kDataA.data(), 4).ok());
  auto bytes = w.write_to_memory();
  ASSERT_TRUE(bytes.ok());
  auto p = parse(bytes.value());
  auto& r = p.result;
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r.value()->find_tensor("empty")->n_elements, 0u);
}

TEST(GgufWriterEdge, WriterRefusesWhatTheReaderRejects) {
  GgufWriter w;
  uint8_t byte = 0;
  EXPECT_FALSE(w.add_tensor(std::string(64, 'n'), GgmlType::F32, {1}, &byte, 4).ok());
  EXPECT_FALSE(w.add_tensor("", GgmlType::F32, {1}, &byte, 4).ok());
  EXPECT_FALSE(w.add_tensor("five", GgmlType::F32, {1, 1, 1, 1, 1}, &byte, 4).ok());
  EXPECT_FALSE(w.add_tensor("q", GgmlType::Q4_0, {48}, &byte, 27).ok());
  EXPECT_FALSE(w.add_tensor("big", GgmlType::F32, {1ull << 62, 8}, &byte, 0).ok());
  EXPECT_FALSE(w.add_tensor("size", GgmlType::F32, {4}, &byte, 15).ok());
  ASSERT_TRUE(w.add_tensor("a", GgmlType::F32, {1}, kDataA.data(), 4).ok());
  EXPECT_FALSE(w.add_tensor("a", GgmlType::F32, {1}, kDataA.data(), 4).ok());
  for (uint32_t bad : {0u, 3u}) {
    GgufWriter wa;
    wa.metadata().set("general.alignment", GgufValue::u32(bad));
    EXPECT_FALSE(wa.write_to_memory().ok()) << bad;
  }
}

}  // namespace
}  // namespace nibble
