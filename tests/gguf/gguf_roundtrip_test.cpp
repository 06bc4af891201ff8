// GGUF writer/reader: the spec's worked byte example, every value type, round trips.
#include <gtest/gtest.h>

#include "gguf/gguf_file.h"
#include "gguf/gguf_writer.h"
#include "test_util.h"

namespace nibble {
namespace {

TEST(GgufWriter, ReproducesSpecWorkedExample) {
  // spec gguf-and-quant-formats §1.13
  GgufWriter w;
  w.metadata().set("general.architecture", GgufValue::str("llama"));
  const float data[2] = {1.0f, 2.0f};
  ASSERT_TRUE(w.add_tensor("t", GgmlType::F32, {2}, reinterpret_cast<const uint8_t*>(data), 8).ok());
  auto bytes = w.write_to_memory();
  ASSERT_TRUE(bytes.ok());
  std::vector<uint8_t> expected = {0x47, 0x47, 0x55, 0x46, 3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,
                                   1,    0,    0,    0,    0, 0, 0, 0, 20, 0, 0, 0, 0, 0, 0, 0};
  for (char c : std::string("general.architecture")) expected.push_back(static_cast<uint8_t>(c));
  for (uint8_t b : {8, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0}) expected.push_back(b);
  for (char c : std::string("llama")) expected.push_back(static_cast<uint8_t>(c));
  for (uint8_t b : {1, 0, 0, 0, 0, 0, 0, 0}) expected.push_back(b);
  expected.push_back('t');
  for (uint8_t b : {1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}) expected.push_back(b);
  expected.resize(0x80, 0);
  for (uint8_t b : {0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0x40}) expected.push_back(b);
  expected.resize(0xa0, 0);
  EXPECT_EQ(bytes.value(), expected);
}

GgufWriter make_all_types_writer(std::vector<std::vector<uint8_t>>& storage) {
  GgufWriter w;
  auto& md = w.metadata();
  md.set("general.architecture", GgufValue::str("test"));
  md.set("t.u8", GgufValue::u8(200));
  md.set("t.i8", GgufValue::i8(-100));
  md.set("t.u16", GgufValue::u16(60000));
  md.set("t.i16", GgufValue::i16(-30000));
  md.set("t.u32", GgufValue::u32(4000000000u));
  md.set("t.i32", GgufValue::i32(-2000000000));
  md.set("t.f32", GgufValue::f32(3.25f));
  md.set("t.bool", GgufValue::boolean(true));
  md.set("t.str", GgufValue::str("h\xc3\xa9llo"));
  md.set("t.empty_str", GgufValue::str(""));
  md.set("t.u64", GgufValue::u64(1ull << 63));
  md.set("t.i64", GgufValue::i64(-(1ll << 62)));
  md.set("t.f64", GgufValue::f64(-1.5e300));
  md.set("t.arr_str", GgufValue::str_array({"a", "", "\xe2\x96\x81x"}));
  md.set("t.arr_empty", GgufValue::str_array({}));
  md.set("t.arr_i32", GgufValue::array<int32_t>(GgufType::kInt32, {1, -2, 3}));
  md.set("t.arr_f32", GgufValue::array<float>(GgufType::kFloat32, {0.5f, -0.25f}));
  md.set("t.arr_bool", GgufValue::bool_array({true, false, true}));
  md.set("t.arr_u64", GgufValue::array<uint64_t>(GgufType::kUint64, {7, 8}));
  const std::pair<GgmlType, std::vector<uint64_t>> kTensors[] = {
      {GgmlType::F32, {3}}, {GgmlType::F16, {8, 2}}, {GgmlType::BF16, {4, 3, 2}},
      {GgmlType::Q4_0, {64, 2}}, {GgmlType::Q8_0, {32, 1, 3}}, {GgmlType::Q4_K, {256, 2}},
      {GgmlType::Q6_K, {256}}};
  int i = 0;
  for (const auto& [type, shape] : kTensors) {
    uint64_t n = 1;
    for (uint64_t d : shape) n *= d;
    std::vector<uint8_t> bytes(n / traits(type).block_size * traits(type).type_size);
    for (size_t k = 0; k < bytes.size(); ++k) bytes[k] = static_cast<uint8_t>(k * 31 + i);
    storage.push_back(bytes);
    std::string name = "tensor." + std::to_string(i) + std::string(i == 2 ? 50 : 0, 'x');
    ++i;
    EXPECT_TRUE(w.add_tensor(name, type, shape, storage.back().data(), storage.back().size()).ok());
  }
  return w;
}

TEST(GgufRoundTrip, AllValueTypesAndTensorTypes) {
  std::vector<std::vector<uint8_t>> storage;
  GgufWriter w = make_all_types_writer(storage);
  auto bytes = w.write_to_memory();
  ASSERT_TRUE(bytes.ok());
  auto f = GgufFile::parse(bytes->data(), bytes->size(), "mem");
  ASSERT_TRUE(f.ok()) << f.error().message;
  const GgufFile& g = *f.value();
  EXPECT_EQ(g.metadata().size(), w.metadata().size());
  for (const auto& [k, v] : w.metadata().entries()) {
    const GgufValue* r = g.metadata().find(k);
    ASSERT_NE(r, nullptr) << k;
    EXPECT_TRUE(*r == v) << k;
  }
  EXPECT_EQ(g.metadata().find("t.u32")->as<uint32_t>(), 4000000000u);
  EXPECT_EQ(g.metadata().find("t.arr_i32")->element<int32_t>(1), -2);
  EXPECT_EQ(g.metadata().find("t.arr_str")->strings()[2], "\xe2\x96\x81x");
  ASSERT_EQ(g.tensors().size(), storage.size());
  for (size_t i = 0; i < storage.size(); ++i) {
    const auto& t = g.tensors()[i];
    ASSERT_EQ(t.n_bytes, storage[i].size());
    EXPECT_EQ(0, std::memcmp(t.data, storage[i].data(), t.n_bytes)) << t.name;
    EXPECT_EQ(t.offset % 32, 0u);
  }
  // n_dims as ggml's writer records it: trailing 1s dropped ([32,1,3] keeps 3 dims).
  EXPECT_EQ(g.tensors()[4].shape, (std::vector<uint64_t>{32, 1, 3}));
  EXPECT_EQ(g.tensors()[0].shape, (std::vector<uint64_t>{3}));

  // read -> write -> identical bytes.
  GgufWriter w2;
  for (const auto& [k, v] : g.metadata().entries()) w2.metadata().set(k, v);
  for (const auto& t : g.tensors()) ASSERT_TRUE(w2.add_tensor(t.name, t.type, t.shape, t.data, t.n_bytes).ok());
  auto bytes2 = w2.write_to_memory();
  ASSERT_TRUE(bytes2.ok());
  EXPECT_EQ(bytes.value(), bytes2.value());
}

TEST(GgufRoundTrip, CustomAlignmentAndFileWrite) {
  GgufWriter w;
  w.metadata().set("general.architecture", GgufValue::str("x"));
  w.metadata().set("general.alignment", GgufValue::u32(64));
  std::vector<uint8_t> a(10 * 4, 1), b(6 * 4, 2);
  ASSERT_TRUE(w.add_tensor("a", GgmlType::F32, {10}, a.data(), a.size()).ok());
  ASSERT_TRUE(w.add_tensor("b", GgmlType::F32, {6}, b.data(), b.size()).ok());
  std::string path = test::temp_dir() + "/x.gguf";
  ASSERT_TRUE(w.write(path).ok());
  auto f = GgufFile::open(path);
  ASSERT_TRUE(f.ok()) << f.error().message;
  EXPECT_EQ(f.value()->alignment(), 64u);
  EXPECT_EQ(f.value()->data_offset() % 64, 0u);
  EXPECT_EQ(f.value()->tensors()[1].offset, 64u);
  EXPECT_EQ(f.value()->file_size() % 64, 0u);
  EXPECT_EQ(f.value()->tensors()[1].data[0], 2);
}

TEST(GgufWriter, RejectsBadTensors) {
  GgufWriter w;
  std::vector<uint8_t> d(64);
  EXPECT_FALSE(w.add_tensor(std::string(64, 'n'), GgmlType::F32, {1}, d.data(), 4).ok());
  EXPECT_FALSE(w.add_tensor("q", GgmlType::Q4_0, {16}, d.data(), 9).ok());  // 16 % 32 != 0
  EXPECT_FALSE(w.add_tensor("f", GgmlType::F32, {2}, d.data(), 4).ok());   // wrong byte count
  EXPECT_FALSE(w.add_tensor("five", GgmlType::F32, {1, 1, 1, 1, 1}, d.data(), 4).ok());
  EXPECT_TRUE(w.add_tensor("ok", GgmlType::F32, {2}, d.data(), 8).ok());
  EXPECT_FALSE(w.add_tensor("ok", GgmlType::F32, {2}, d.data(), 8).ok());  // duplicate
}

TEST(GgufMetadata, TypedGettersNameKeyAndTypes) {
  GgufMetadata md;
  md.set("a", GgufValue::i32(5));
  md.set("b", GgufValue::array<int32_t>(GgufType::kInt32, {1, 2, 3}));
  md.set("c", GgufValue::u32(7));
  auto r = md.get_u32("a");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("'a' has type int32, expected uint32"), std::string::npos);
  EXPECT_FALSE(md.get_u32("missing").ok());
  EXPECT_EQ(md.get_u32_per_layer("b", 3).value(), (std::vector<uint32_t>{1, 2, 3}));
  EXPECT_FALSE(md.get_u32_per_layer("b", 4).ok());
  EXPECT_EQ(md.get_u32_per_layer("c", 2).value(), (std::vector<uint32_t>{7, 7}));
  md.set("a", GgufValue::u32(9));  // replace in place keeps order
  EXPECT_EQ(md.entries()[0].first, "a");
  EXPECT_EQ(md.get_u32("a").value(), 9u);
  EXPECT_TRUE(md.erase("a"));
  EXPECT_EQ(md.entries()[0].first, "b");
  EXPECT_EQ(md.get_u32("c").value(), 7u);
}

}  // namespace
}  // namespace nibble
