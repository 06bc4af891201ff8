// `nibble tokenize`: ids and the per-token listing, checked against the library's own encoding of
// the same text, on a GGUF that holds only the fixture vocabulary (no tensors).
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "gguf/gguf_writer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_test_util.h"
#include "tokenizer/vocab.h"

namespace nibble {
namespace {

class TokenizeCli : public ::testing::Test {
 protected:
  void SetUp() override {
    auto v = vocab_from_sentencepiece_model(test::rand_model_path());
    ASSERT_TRUE(v.ok()) << v.error().message;
    GgufWriter w;
    w.metadata().set("general.architecture", GgufValue::str("gemma4"));
    vocab_to_gguf(v.value(), w.metadata());
    dir_ = test::temp_dir();
    model_ = dir_ + "/vocab-only.gguf";
    ASSERT_TRUE(w.write(model_).ok());
    auto t = Tokenizer::from_vocab(std::move(v).value());
    ASSERT_TRUE(t.ok()) << t.error().message;
    tok_ = std::move(t).value();
  }

  std::string dir_, model_;
  std::unique_ptr<Tokenizer> tok_;
};

TEST_F(TokenizeCli, PromptIds) {
  const std::string text = "Hello world, caf\xC3\xA9 \xF0\x9F\x98\x80!";
  auto r = test::run_nibble({"tokenize", model_, "-p", text, "--ids"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, test::ids_to_string(tok_->encode(text)) + "\n");

  r = test::run_nibble({"tokenize", model_, "-p", text, "--bos", "--ids"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, test::ids_to_string(tok_->encode(text, true)) + "\n");
  EXPECT_EQ(r.out.rfind("2 ", 0), 0u);

  r = test::run_nibble({"tokenize", model_, "-p", "", "--ids"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "\n");
}

TEST_F(TokenizeCli, FileWithNewlines) {
  const std::string text = "line one\nline two\n\n\ttabbed  spaced\n";
  const std::string path = dir_ + "/input.txt";
  test::write_bytes(path, std::vector<uint8_t>(text.begin(), text.end()));
  auto r = test::run_nibble({"tokenize", model_, "-f", path, "--ids"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, test::ids_to_string(tok_->encode(text)) + "\n");
}

TEST_F(TokenizeCli, ListingShowsOneTokenPerLine) {
  const std::string text = "the\nend \xE2\x82\xAC";
  auto r = test::run_nibble({"tokenize", model_, "-p", text, "--bos"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<int32_t> ids = tok_->encode(text, true);
  const std::vector<std::string> lines = test::split_lines_keep_newline(r.out);
  ASSERT_EQ(lines.size(), ids.size()) << r.out;
  EXPECT_EQ(lines[0], "2\t'<bos>'\n");
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(lines[i].rfind(std::to_string(ids[i]) + "\t'", 0), 0u) << lines[i];
  }
  // A newline token is escaped, so every token stays on its line (the fixture vocabulary has
  // none; the small test vocabulary has "\n" and "\n\n").
  GgufWriter w;
  vocab_to_gguf(test::small_vocab(), w.metadata());
  const std::string small = dir_ + "/small.gguf";
  ASSERT_TRUE(w.write(small).ok());
  r = test::run_nibble({"tokenize", small, "-p", "a\n\nb\tc"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, std::to_string(test::small_id("a")) + "\t'a'\n" +
                       std::to_string(test::small_id("\n\n")) + "\t'\\n\\n'\n" +
                       std::to_string(test::small_id("b")) + "\t'b'\n" +
                       std::to_string(test::kFirstByte + '\t') + "\t'<0x09>'\n" +
                       std::to_string(test::small_id("c")) + "\t'c'\n");
}

TEST_F(TokenizeCli, SpecialFlag) {
  const int32_t turn = tok_->find_token("<|turn>");
  ASSERT_GE(turn, 0);
  auto r = test::run_nibble({"tokenize", model_, "-p", "<|turn>user", "--ids"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind(std::to_string(turn) + " ", 0), std::string::npos) << r.out;
  r = test::run_nibble({"tokenize", model_, "-p", "<|turn>user", "--ids", "--special"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, test::ids_to_string(tok_->encode("<|turn>user", false, true)) + "\n");
  EXPECT_EQ(r.out.rfind(std::to_string(turn) + " ", 0), 0u) << r.out;
}

void expect_one_line_error(const test::CommandResult& r, const std::string& needle) {
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_EQ(r.err.rfind("nibble: tokenize: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

TEST_F(TokenizeCli, Errors) {
  expect_one_line_error(test::run_nibble({"tokenize", model_, "--ids"}), "-f FILE or -p TEXT");
  expect_one_line_error(test::run_nibble({"tokenize", "/nonexistent/m.gguf", "-p", "x"}),
                        "/nonexistent/m.gguf");
  expect_one_line_error(test::run_nibble({"tokenize", model_, "-f", "/nonexistent/in.txt"}),
                        "/nonexistent/in.txt");
  // A GGUF without a tokenizer.
  GgufWriter w;
  w.metadata().set("general.architecture", GgufValue::str("gemma4"));
  const std::string bare = dir_ + "/bare.gguf";
  ASSERT_TRUE(w.write(bare).ok());
  expect_one_line_error(test::run_nibble({"tokenize", bare, "-p", "x"}), "tokenizer.ggml.model");
  // -f and -p together is a usage error.
  EXPECT_NE(test::run_nibble({"tokenize", model_, "-p", "x", "-f", "y"}).exit_code, 0);
}

}  // namespace
}  // namespace nibble
