// KV cache and flash-attention flags of the model-running commands (--kv-type, --kv-type-full,
// --kv-type-swa, --kv-recent, --flash-attn) and their environment defaults (NIBBLE_/OLLAMA_
// KV_CACHE_TYPE and FLASH_ATTENTION, NIBBLE_KV_RECENT): each setting changes the logits the way the flag says, the variables
// act as defaults that flags override, and bad values are one-line errors naming the flag or
// variable and the allowed values. Uses the bundled tiny model.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>

#include "test_util.h"

namespace nibble {
namespace {

const char* kVars[] = {"NIBBLE_KV_CACHE_TYPE", "OLLAMA_KV_CACHE_TYPE", "NIBBLE_FLASH_ATTENTION",
                       "OLLAMA_FLASH_ATTENTION", "NIBBLE_KV_RECENT"};

class KvFlags : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* v : kVars) unsetenv(v);
    model_ = test::source_dir() + "/models/nibble-tiny-e.gguf";
    if (!test::file_exists(model_)) GTEST_SKIP() << "bundled model absent";
  }
  void TearDown() override {
    for (const char* v : kVars) unsetenv(v);
  }
  // Logits of a short prompt with extra flags; "" when the command failed (err_ holds stderr).
  std::vector<uint8_t> logits(std::vector<std::string> extra) {
    const std::string out = test::temp_dir() + "/l.f32";
    std::vector<std::string> args = {"logits", model_, "--tokens", "2,651,1176,563,9,70,4", "--out",
                                     out};
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = test::run_nibble(args);
    err_ = r.err;
    if (r.exit_code != 0) return {};
    return test::read_bytes(out);
  }
  std::string model_, err_;
};

TEST_F(KvFlags, TypesAndKernelsChangeTheLogitsAsSaid) {
  const auto f16 = logits({});
  ASSERT_FALSE(f16.empty()) << err_;
  EXPECT_EQ(logits({"--kv-type", "f16"}), f16);  // f16 is the default
  EXPECT_EQ(logits({"--flash-attn", "auto"}), f16);
  EXPECT_EQ(logits({"--flash-attn", "on"}), f16);  // auto is on
  // --kv-recent 0: the quantized rows alone (the 7-token prompt is within the default 32
  // recent positions, which would read every row from the f16 copies).
  const auto f32 = logits({"--kv-type", "f32"}), q8 = logits({"--kv-type", "q8_0", "--kv-recent", "0"});
  const auto q4 = logits({"--kv-type", "Q4_0", "--kv-recent", "0"});
  ASSERT_FALSE(f32.empty() || q8.empty() || q4.empty()) << err_;
  EXPECT_NE(f32, f16);
  EXPECT_NE(q8, f16);
  EXPECT_NE(q4, q8);
  // The kinds separately: both set = --kv-type; one set = a mix different from both.
  EXPECT_EQ(logits({"--kv-type-full", "q4_0", "--kv-type-swa", "q4_0", "--kv-recent", "0"}), q4);
  const auto mix = logits({"--kv-type", "q4_0", "--kv-type-full", "q8_0", "--kv-recent", "0"});
  ASSERT_FALSE(mix.empty()) << err_;
  EXPECT_NE(mix, q4);
  EXPECT_NE(mix, q8);
  EXPECT_EQ(logits({"--kv-type-swa", "q4_0", "--kv-type-full", "q8_0", "--kv-recent", "0"}), mix);
  // Recent positions at f16: all 7 (the default 32) make q8_0 and q4_0 read the same f16 rows;
  // 3 mixes both stores; f16 caches ignore the setting.
  const auto q4_all = logits({"--kv-type", "q4_0"}), q4_3 = logits({"--kv-type", "q4_0", "--kv-recent", "3"});
  ASSERT_FALSE(q4_all.empty() || q4_3.empty()) << err_;
  EXPECT_EQ(logits({"--kv-type", "q8_0", "--kv-recent", "32"}), q4_all);
  EXPECT_NE(q4_all, q4);
  EXPECT_NE(q4_3, q4);
  EXPECT_NE(q4_3, q4_all);
  EXPECT_EQ(logits({"--kv-recent", "0"}), f16);
  const auto off = logits({"--flash-attn", "off"});
  ASSERT_FALSE(off.empty()) << err_;
}

TEST_F(KvFlags, EnvironmentIsTheDefaultAndFlagsWin) {
  const auto f32 = logits({"--kv-type", "f32"}), q4 = logits({"--kv-type", "q4_0"});
  const auto f16 = logits({});
  const auto off = logits({"--flash-attn", "off"});
  ASSERT_FALSE(f32.empty() || q4.empty() || f16.empty() || off.empty()) << err_;
  setenv("OLLAMA_KV_CACHE_TYPE", "q4_0", 1);
  EXPECT_EQ(logits({}), q4);
  setenv("NIBBLE_KV_CACHE_TYPE", "f32", 1);  // NIBBLE_ before OLLAMA_
  EXPECT_EQ(logits({}), f32);
  EXPECT_EQ(logits({"--kv-type", "q4_0"}), q4);  // the flag wins
  unsetenv("NIBBLE_KV_CACHE_TYPE");
  unsetenv("OLLAMA_KV_CACHE_TYPE");
  for (const char* v : {"0", "false", "off", "OFF"}) {
    setenv("OLLAMA_FLASH_ATTENTION", v, 1);
    EXPECT_EQ(logits({}), off) << v;
  }
  EXPECT_EQ(logits({"--flash-attn", "on"}), f16);
  setenv("NIBBLE_FLASH_ATTENTION", "1", 1);
  EXPECT_EQ(logits({}), f16);
  setenv("NIBBLE_FLASH_ATTENTION", "true", 1);
  EXPECT_EQ(logits({}), f16);
  unsetenv("NIBBLE_FLASH_ATTENTION");
  unsetenv("OLLAMA_FLASH_ATTENTION");
  // NIBBLE_KV_RECENT is --kv-recent's default; the flag wins.
  const auto q4_off = logits({"--kv-type", "q4_0", "--kv-recent", "0"});
  ASSERT_FALSE(q4_off.empty()) << err_;
  setenv("NIBBLE_KV_RECENT", "0", 1);
  EXPECT_EQ(logits({"--kv-type", "q4_0"}), q4_off);
  EXPECT_EQ(logits({"--kv-type", "q4_0", "--kv-recent", "32"}), q4);
  setenv("NIBBLE_KV_RECENT", "bogus", 1);  // not read when the flag is given
  EXPECT_EQ(logits({"--kv-type", "q4_0", "--kv-recent", "32"}), q4) << err_;
  unsetenv("NIBBLE_KV_RECENT");
  // A variable the flags fully override is not even read.
  setenv("NIBBLE_KV_CACHE_TYPE", "bogus", 1);
  EXPECT_EQ(logits({"--kv-type", "f32"}), f32) << err_;
}

TEST_F(KvFlags, BadValuesAreClearErrors) {
  struct Bad {
    std::vector<std::string> flags;
    const char* var;
    const char* value;
    const char* names;   // what the message must name
    const char* allowed;  // and the choices it must list
  };
  const Bad cases[] = {
      {{"--kv-type", "q5_1"}, nullptr, nullptr, "--kv-type", "f32, f16, q8_0, q4_0"},
      {{"--kv-type-full", "q4_k"}, nullptr, nullptr, "--kv-type-full", "f32, f16, q8_0, q4_0"},
      {{"--kv-type-swa", ""}, nullptr, nullptr, "--kv-type-swa", "f32, f16, q8_0, q4_0"},
      {{"--flash-attn", "maybe"}, nullptr, nullptr, "--flash-attn", "on, off, auto"},
      {{"--kv-recent", "-1"}, nullptr, nullptr, "--kv-recent", "0 to 4096"},
      {{"--kv-recent", "4097"}, nullptr, nullptr, "--kv-recent", "0 to 4096"},
      {{"--kv-recent", "12x"}, nullptr, nullptr, "--kv-recent", "0 to 4096"},
      {{"--kv-recent", ""}, nullptr, nullptr, "--kv-recent", "0 to 4096"},
      {{}, "NIBBLE_KV_RECENT", "lots", "NIBBLE_KV_RECENT", "0 to 4096"},
      {{}, "NIBBLE_KV_CACHE_TYPE", "f8", "NIBBLE_KV_CACHE_TYPE", "f32, f16, q8_0, q4_0"},
      {{}, "OLLAMA_KV_CACHE_TYPE", "q8", "OLLAMA_KV_CACHE_TYPE", "f32, f16, q8_0, q4_0"},
      {{}, "NIBBLE_FLASH_ATTENTION", "2", "NIBBLE_FLASH_ATTENTION", "on, off"},
      {{}, "OLLAMA_FLASH_ATTENTION", "yes\x1b[31m", "OLLAMA_FLASH_ATTENTION", "on, off"},
  };
  for (const Bad& b : cases) {
    if (b.var != nullptr) setenv(b.var, b.value, 1);
    const auto l = logits(b.flags);
    EXPECT_TRUE(l.empty()) << b.names;
    EXPECT_NE(err_.find(b.names), std::string::npos) << err_;
    EXPECT_NE(err_.find(b.allowed), std::string::npos) << err_;
    EXPECT_EQ(err_.find('\x1b'), std::string::npos) << "raw escape in: " << err_;
    EXPECT_EQ(std::count(err_.begin(), err_.end(), '\n'), 1) << err_;
    if (b.var != nullptr) unsetenv(b.var);
  }
  // generate, run and perplexity take the same flags.
  for (std::vector<std::string> args :
       {std::vector<std::string>{"generate", model_, "--tokens", "2", "-n", "1"},
        std::vector<std::string>{"run", model_, "Hello", "-n", "1"},
        std::vector<std::string>{"perplexity", model_, "-f", model_}}) {
    args.push_back("--kv-type");
    args.push_back("int3");
    auto r = test::run_nibble(args);
    EXPECT_NE(r.exit_code, 0) << args[0];
    EXPECT_NE(r.err.find("--kv-type: 'int3' is not a KV cache type"), std::string::npos)
        << args[0] << ": " << r.err;
  }
  auto ok = test::run_nibble({"generate", model_, "--tokens", "2,651", "-n", "3", "--greedy",
                              "--kv-type", "q8_0", "--flash-attn", "off"});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
}

}  // namespace
}  // namespace nibble
