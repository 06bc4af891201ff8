// Clear errors for bad input: wrong architecture, missing or misshapen tensors, bad metadata,
// token ids out of range, prompts longer than the context, sampler values out of range.
#include <gtest/gtest.h>

#include "gemma4_fixture.h"
#include "gguf/gguf_file.h"
#include "model/registry.h"
#include "test_util.h"

namespace nibble {
namespace {

using test::Gemma4FixtureShape;

Error load_error(const std::vector<uint8_t>& bytes) {
  auto file = GgufFile::parse(bytes.data(), bytes.size(), "bad.gguf");
  EXPECT_TRUE(file.ok()) << file.error().message;
  auto model = load_model(std::move(file).value());
  EXPECT_FALSE(model.ok());
  return model.ok() ? Error{} : model.error();
}

void expect_contains(const std::string& s, const std::string& part) {
  EXPECT_NE(s.find(part), std::string::npos) << "'" << s << "' does not mention '" << part << "'";
}

TEST(ModelErrors, WrongArchitecture) {
  const Error e = load_error(test::build_gemma4_gguf(Gemma4FixtureShape{}, "llama"));
  EXPECT_EQ(e.code, ErrorCode::kUnsupported);
  expect_contains(e.message, "'llama'");
  expect_contains(e.message, "gemma4");
}

TEST(ModelErrors, MissingTensor) {
  const Error e =
      load_error(test::build_gemma4_gguf(Gemma4FixtureShape{}, "gemma4", "blk.2.ffn_up.weight"));
  EXPECT_EQ(e.code, ErrorCode::kNotFound);
  expect_contains(e.message, "blk.2.ffn_up.weight");
  const Error e2 =
      load_error(test::build_gemma4_gguf(Gemma4FixtureShape{}, "gemma4", "rope_freqs.weight"));
  expect_contains(e2.message, "rope_freqs.weight");
}

TEST(ModelErrors, MisshapenTensor) {
  const Error e = load_error(
      test::build_gemma4_gguf(Gemma4FixtureShape{}, "gemma4", "", "blk.1.attn_q.weight"));
  EXPECT_EQ(e.code, ErrorCode::kFormat);
  expect_contains(e.message, "blk.1.attn_q.weight");
  expect_contains(e.message, "{64, 16}");  // actual
  expect_contains(e.message, "{32, 16}");  // expected
}

TEST(ModelErrors, BadMetadata) {
  Gemma4FixtureShape s;
  s.n_shared_kv = 5;  // every layer shared: nothing to read from
  const Error e = load_error(test::build_gemma4_gguf(s));
  expect_contains(e.message, "shared_kv_layers");
  Gemma4FixtureShape s2;
  s2.sliding = {false, true, true};
  s2.n_shared_kv = 2;  // layer 1 (sliding) has no earlier sliding owner
  expect_contains(load_error(test::build_gemma4_gguf(s2)).message, "no earlier KV-owning layer");
}

class CliErrors : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    path_ = test::temp_dir() + "/fixture.gguf";
    test::write_bytes(path_, test::build_gemma4_gguf(Gemma4FixtureShape{}));
  }
  static std::string path_;
};
std::string CliErrors::path_;

TEST_F(CliErrors, TokenIdOutOfRange) {
  auto r =
      test::run_nibble({"logits", path_, "--tokens", "2,64", "--out", test::temp_dir() + "/x.f32"});
  EXPECT_NE(r.exit_code, 0);
  expect_contains(r.err, "token id 64");
  expect_contains(r.err, "[0, 64)");
  r = test::run_nibble({"logits", path_, "--tokens", "2,x", "--out", test::temp_dir() + "/x.f32"});
  EXPECT_NE(r.exit_code, 0);
  expect_contains(r.err, "'x'");
}

TEST_F(CliErrors, PromptLongerThanContext) {
  auto r = test::run_nibble({"generate", path_, "--tokens", "2,3,4,5,6", "-n", "4", "--ctx", "6"});
  EXPECT_NE(r.exit_code, 0);
  expect_contains(r.err, "context");
  r = test::run_nibble({"logits", path_, "--tokens", "2,3,4,5,6", "--ctx", "3", "--out",
                        test::temp_dir() + "/x.f32"});
  EXPECT_NE(r.exit_code, 0);
  expect_contains(r.err, "context");
}

TEST_F(CliErrors, SamplerValuesOutOfRange) {
  auto r = test::run_nibble({"generate", path_, "--tokens", "2", "-n", "2", "--temp", "-1"});
  EXPECT_NE(r.exit_code, 0);
  expect_contains(r.err, "--temp");
  r = test::run_nibble({"generate", path_, "--tokens", "2", "-n", "2", "--top-p", "1.5"});
  EXPECT_NE(r.exit_code, 0);
  expect_contains(r.err, "--top-p");
  r = test::run_nibble({"run", path_, "hello", "--min-p", "-0.1"});
  EXPECT_NE(r.exit_code, 0);
  expect_contains(r.err, "--min-p");
}

TEST_F(CliErrors, WrongArchitectureFromTheCli) {
  const std::string p = test::temp_dir() + "/llama.gguf";
  test::write_bytes(p, test::build_gemma4_gguf(Gemma4FixtureShape{}, "llama"));
  auto r = test::run_nibble({"logits", p, "--tokens", "2", "--out", test::temp_dir() + "/x.f32"});
  EXPECT_NE(r.exit_code, 0);
  expect_contains(r.err, "architecture 'llama'");
}

TEST_F(CliErrors, GenerateAndLogitsWork) {
  auto r = test::run_nibble(
      {"generate", path_, "--tokens", "2,5,9", "-n", "5", "--greedy", "--ignore-eos"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  int count = 0;
  for (size_t i = 0; i < r.out.size(); ++i)
    count += r.out[i] != ' ' && r.out[i] != '\n' && (i == 0 || r.out[i - 1] == ' ');
  EXPECT_EQ(count, 5) << r.out;
  const std::string out = test::temp_dir() + "/l.f32";
  r = test::run_nibble({"logits", path_, "--tokens", "2,5,9", "--out", out});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(test::read_bytes(out).size(), 3u * 64 * 4);
}

}  // namespace
}  // namespace nibble
