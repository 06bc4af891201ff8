// GgufWriter::add_tensor_streamed (used by `nibble synth` for tensors too large to buffer): the
// file is byte-identical to the buffered producer's, and a stream of the wrong length is an error.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>

#include "gguf/gguf_file.h"
#include "gguf/gguf_writer.h"
#include "test_util.h"

namespace nibble {
namespace {

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 7);
  return v;
}

TEST(GgufStreamed, SameBytesAsBufferedProducer) {
  const auto a = pattern(4 * 33 * 5, 1);  // f32 [33, 5]: 660 bytes, not a multiple of 32
  const auto b = pattern(18 * 4, 9);      // q4_0 [32, 4]: 72 bytes
  GgufWriter buffered, streamed;
  for (GgufWriter* w : {&buffered, &streamed}) w->metadata().set("k", GgufValue::u32(3));
  ASSERT_TRUE(buffered.add_tensor("a", GgmlType::F32, {33, 5}, a.data(), a.size()).ok());
  ASSERT_TRUE(buffered.add_tensor("b", GgmlType::Q4_0, {32, 4}, b.data(), b.size()).ok());
  // Streamed in uneven pieces, including an empty one.
  auto pieces = [](const std::vector<uint8_t>& d) {
    return [&d](const GgufWriter::Sink& sink) -> Status {
      size_t off = 0;
      for (size_t step : {size_t{0}, size_t{1}, size_t{100}, size_t{7}}) {
        step = std::min(step, d.size() - off);
        NIBBLE_TRY(sink(d.data() + off, step));
        off += step;
      }
      return sink(d.data() + off, d.size() - off);
    };
  };
  ASSERT_TRUE(streamed.add_tensor_streamed("a", GgmlType::F32, {33, 5}, pieces(a)).ok());
  ASSERT_TRUE(streamed.add_tensor_streamed("b", GgmlType::Q4_0, {32, 4}, pieces(b)).ok());
  auto x = buffered.write_to_memory();
  auto y = streamed.write_to_memory();
  ASSERT_TRUE(x.ok() && y.ok());
  EXPECT_EQ(x.value(), y.value());
  auto f = GgufFile::parse(y->data(), y->size(), "streamed");
  ASSERT_TRUE(f.ok()) << f.error().message;
  EXPECT_EQ(0, std::memcmp((*f)->tensors()[1].data, b.data(), b.size()));
}

TEST(GgufStreamed, WrongLengthIsAnErrorAndLeavesNoFile) {
  const auto a = pattern(64, 1);
  for (size_t n : {size_t{60}, size_t{64 + 4}}) {
    GgufWriter w;
    ASSERT_TRUE(w.add_tensor_streamed("a", GgmlType::F32, {16}, [&](const GgufWriter::Sink& sink) -> Status {
                   NIBBLE_TRY(sink(a.data(), std::min<size_t>(n, 64)));
                   if (n > 64) return sink(a.data(), n - 64);
                   return ok_status();
                 }).ok());
    auto r = w.write_to_memory();
    ASSERT_FALSE(r.ok()) << n;
    EXPECT_NE(r.error().message.find("'a'"), std::string::npos) << r.error().message;
    const std::string path = test::temp_dir() + "/streamed-bad.gguf";
    EXPECT_FALSE(w.write(path).ok());
    EXPECT_FALSE(test::file_exists(path));
  }
  // A producer's own error is passed on.
  GgufWriter w;
  ASSERT_TRUE(w.add_tensor_streamed("a", GgmlType::F32, {16}, [](const GgufWriter::Sink&) -> Status {
                 return make_error(ErrorCode::kIo, "disk on fire");
               }).ok());
  auto r = w.write_to_memory();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "disk on fire");
}

}  // namespace
}  // namespace nibble
