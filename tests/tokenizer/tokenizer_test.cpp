// Unit tests of the BPE tokenizer on a small hand-made vocabulary: merge order, byte fallback,
// special tokens with and without parse_special, whitespace and newline runs, decoding,
// streaming decode, long inputs, and the GGUF keys (round trip and malformed metadata).
#include "tokenizer/tokenizer.h"

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "tokenizer/tokenizer_test_util.h"
#include "tokenizer/vocab.h"

namespace nibble {
namespace {

using test::small_id;
using test::small_tokenizer;
using test::small_vocab;
using Ids = std::vector<int32_t>;

constexpr const char* kSpace = "\xE2\x96\x81";

int32_t byte_tok(uint8_t b) { return test::kFirstByte + b; }

TEST(Tokenizer, EmptyInput) {
  auto tok = small_tokenizer();
  EXPECT_EQ(tok->encode(""), Ids{});
  EXPECT_EQ(tok->encode("", /*add_bos=*/true), Ids{2});
  EXPECT_EQ(tok->encode("", false, /*parse_special=*/true), Ids{});
  EXPECT_EQ(tok->decode({}), "");
}

TEST(Tokenizer, MergesApplyInRankOrder) {
  auto tok = small_tokenizer();
  // "b c" (rank 0) before "a b" (rank 1), then "a bc".
  EXPECT_EQ(tok->encode("abc"), Ids{small_id("abc")});
  EXPECT_EQ(tok->encode("ab"), Ids{small_id("ab")});
  // "a b" (rank 1) beats "▁ a" (rank 3); no merge joins ▁ and ab.
  EXPECT_EQ(tok->encode(" ab"), (Ids{small_id(kSpace), small_id("ab")}));
  // "▁ a" (rank 3) beats "▁ ▁" (rank 4).
  EXPECT_EQ(tok->encode("  a"), (Ids{small_id(kSpace), small_id(std::string(kSpace) + "a")}));
  EXPECT_EQ(tok->encode("a"), Ids{small_id("a")});
}

TEST(Tokenizer, SpacesBecomeMarkersWithoutDummyPrefix) {
  auto tok = small_tokenizer();
  EXPECT_EQ(tok->encode("a"), Ids{small_id("a")});  // no leading ▁
  EXPECT_EQ(tok->encode("a  b"),
            (Ids{small_id("a"), small_id(std::string(kSpace) + kSpace), small_id("b")}));
  EXPECT_EQ(tok->encode(" "), Ids{small_id(kSpace)});
  EXPECT_EQ(tok->decode(tok->encode("a  b ")), "a  b ");
}

TEST(Tokenizer, NewlineRuns) {
  auto tok = small_tokenizer();
  EXPECT_EQ(tok->encode("\n"), Ids{small_id("\n")});
  EXPECT_EQ(tok->encode("\n\n"), Ids{small_id("\n\n")});
  // Not a token: BPE over the run, leftmost merge first.
  EXPECT_EQ(tok->encode("\n\n\n"), (Ids{small_id("\n\n"), small_id("\n")}));
  EXPECT_EQ(tok->encode("a\n\nb"), (Ids{small_id("a"), small_id("\n\n"), small_id("b")}));
}

TEST(Tokenizer, ByteFallbackUsesUppercaseHexTokens) {
  auto tok = small_tokenizer();
  EXPECT_EQ(tok->find_token("<0x0A>"), byte_tok(0x0A));
  EXPECT_EQ(tok->find_token("<0x0a>"), -1);
  EXPECT_EQ(tok->encode("z"), Ids{byte_tok('z')});
  EXPECT_EQ(tok->encode("\t"), Ids{byte_tok('\t')});
  // A character not in the vocabulary: one token per UTF-8 byte.
  EXPECT_EQ(tok->encode("\xE2\x82\xAC"), (Ids{byte_tok(0xE2), byte_tok(0x82), byte_tok(0xAC)}));
  EXPECT_EQ(tok->encode("\xC3\xA9"), Ids{small_id("\xC3\xA9")});              // é is a token
  EXPECT_EQ(tok->encode("\xC3\xA8"), (Ids{byte_tok(0xC3), byte_tok(0xA8)}));  // è is not
  // Invalid UTF-8 survives as bytes.
  EXPECT_EQ(tok->encode("\xFF"
                        "a"),
            (Ids{byte_tok(0xFF), small_id("a")}));
  for (const std::string s : {"z\xE2\x82\xAC\t", "\xFF\xFE", "\xC3", "a\xE2\x82"}) {
    EXPECT_EQ(tok->decode(tok->encode(s)), s);
  }
}

TEST(Tokenizer, SpecialTokensOnlyWithParseSpecial) {
  auto tok = small_tokenizer();
  const Ids plain = tok->encode("<|turn>");
  EXPECT_EQ(plain, (Ids{small_id("<"), small_id("|"), small_id("t"), small_id("u"), byte_tok('r'),
                        byte_tok('n'), byte_tok('>')}));
  for (int32_t id : plain) EXPECT_NE(id, 4);
  EXPECT_EQ(tok->encode("<|turn>", false, true), Ids{4});
  // User-defined tokens follow the same rule.
  EXPECT_EQ(tok->encode("<|channel>", false, true), Ids{5});
  for (int32_t id : tok->encode("<|channel>")) EXPECT_NE(id, 5);
  // Longest match wins; a shorter special matches when the longer one does not.
  EXPECT_EQ(tok->encode("<|tu", false, true), Ids{6});
  EXPECT_EQ(tok->encode("<|turx", false, true), (Ids{6, byte_tok('r'), byte_tok('x')}));
  // Specials split the text; each fragment is encoded on its own.
  EXPECT_EQ(tok->encode("ab<|turn> a<bos>", true, true),
            (Ids{2, small_id("ab"), 4, small_id(std::string(kSpace) + "a"), 2}));
  EXPECT_EQ(tok->encode("<bos><bos>", false, true), (Ids{2, 2}));
  // Plain text round-trips either way.
  for (bool special : {false, true}) {
    EXPECT_EQ(tok->decode(tok->encode("x <|turn> y", false, special), true), "x <|turn> y");
  }
}

TEST(Tokenizer, DecodeRendersControlTokensOnlyWhenAsked) {
  auto tok = small_tokenizer();
  const Ids ids = {2, small_id("a"), 4, small_id(kSpace), 5, 3, 1};
  EXPECT_EQ(tok->decode(ids), "a <|channel>");
  EXPECT_EQ(tok->decode(ids, true), "<bos>a<|turn> <|channel><unk><eos>");
  EXPECT_EQ(tok->token_to_bytes(byte_tok(0xE2)), "\xE2");
  EXPECT_EQ(tok->token_to_bytes(-1), "");
  EXPECT_EQ(tok->token_to_bytes(tok->n_vocab()), "");
  EXPECT_EQ(tok->decode({-5, 99999, small_id("a")}), "a");
}

TEST(StreamDecoder, HoldsBackPartialCharacters) {
  auto tok = small_tokenizer();
  StreamDecoder sd(*tok);
  // "€" as three byte tokens, then a 4-byte emoji split the same way.
  EXPECT_EQ(sd.push(byte_tok(0xE2)), "");
  EXPECT_EQ(sd.push(byte_tok(0x82)), "");
  EXPECT_EQ(sd.push(byte_tok(0xAC)), "\xE2\x82\xAC");
  EXPECT_EQ(sd.push(small_id("a")), "a");
  EXPECT_EQ(sd.push(byte_tok(0xF0)), "");
  EXPECT_EQ(sd.push(byte_tok(0x9F)), "");
  EXPECT_EQ(sd.push(byte_tok(0x98)), "");
  EXPECT_EQ(sd.push(byte_tok(0x80)), "\xF0\x9F\x98\x80");
  // A complete token after an unfinished sequence releases both once the sequence completes.
  EXPECT_EQ(sd.push(byte_tok(0xC3)), "");
  EXPECT_EQ(sd.push(byte_tok(0xA8)), "\xC3\xA8");
  EXPECT_EQ(sd.flush(), "");
}

TEST(StreamDecoder, InvalidBytesBecomeReplacementCharacters) {
  auto tok = small_tokenizer();
  const std::string fffd = "\xEF\xBF\xBD";
  StreamDecoder sd(*tok);
  // A lone continuation byte can never complete: replaced at once.
  EXPECT_EQ(sd.push(byte_tok(0x80)), fffd);
  // A lead byte followed by a non-continuation: the lead is replaced, the rest goes on.
  EXPECT_EQ(sd.push(byte_tok(0xE2)), "");
  EXPECT_EQ(sd.push(small_id("a")), fffd + "a");
  // Unfinished at the end: flush replaces it.
  EXPECT_EQ(sd.push(byte_tok(0xF0)), "");
  EXPECT_EQ(sd.push(byte_tok(0x9F)), "");
  EXPECT_EQ(sd.flush(), fffd);
  EXPECT_EQ(sd.flush(), "");
}

TEST(StreamDecoder, ConcatenationEqualsDecode) {
  auto tok = small_tokenizer();
  const std::string text = "ab \xE2\x82\xAC\xC3\xA8\n\n\xF0\x9F\x98\x80 abc <|turn>";
  const Ids ids = tok->encode(text, true, true);
  for (bool special : {false, true}) {
    StreamDecoder sd(*tok, special);
    std::string streamed;
    for (int32_t id : ids) streamed += sd.push(id);
    streamed += sd.flush();
    EXPECT_EQ(streamed, tok->decode(ids, special));
  }
}

TEST(Tokenizer, LongInputsStayFast) {
  auto tok = small_tokenizer();
  // 1 MB without a space or newline: one BPE run.
  std::string s;
  for (int i = 0; i < 500000; ++i) s += "ab";
  const auto t0 = std::chrono::steady_clock::now();
  const Ids ids = tok->encode(s);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(ids.size(), 500000u);
  EXPECT_EQ(ids.front(), small_id("ab"));
  EXPECT_LT(secs, 10.0) << "1 MB run took " << secs << " s";
  // 1 MB of one repeated character, and of bytes that are not tokens.
  const std::string spaces(1 << 20, ' ');
  EXPECT_EQ(tok->decode(tok->encode(spaces)), spaces);
  std::string junk;
  for (uint32_t i = 0; i < (1u << 20); ++i) junk.push_back(static_cast<char>((i * 7919u) & 0xFFu));
  EXPECT_EQ(tok->decode(tok->encode(junk)), junk);
}

TEST(Tokenizer, MergesOfUnknownPiecesAreSkipped) {
  Vocab v = small_vocab();
  v.merges.push_back("x y");  // neither piece is a token
  v.merges.push_back("c c");  // "cc" is not a token
  auto tok = Tokenizer::from_vocab(v);
  ASSERT_TRUE(tok.ok()) << tok.error().message;
  EXPECT_EQ(tok.value()->n_merges_skipped(), 2u);
  EXPECT_EQ(tok.value()->encode("abc"), Ids{small_id("abc")});
}

TEST(Tokenizer, RejectsUnusableVocabularies) {
  Vocab v = small_vocab();
  v.merges.clear();
  auto r = Tokenizer::from_vocab(v);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("merges"), std::string::npos) << r.error().message;

  v = small_vocab();
  v.model = "bert";
  r = Tokenizer::from_vocab(v);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kUnsupported);

  v = small_vocab();
  v.scores.pop_back();
  r = Tokenizer::from_vocab(v);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("scores"), std::string::npos) << r.error().message;

  v = small_vocab();
  v.bos_id = 100000;
  EXPECT_FALSE(Tokenizer::from_vocab(v).ok());

  v = small_vocab();
  v.types[10] = 9;
  EXPECT_FALSE(Tokenizer::from_vocab(v).ok());

  v = small_vocab();
  v.merges.push_back("nospace");
  EXPECT_FALSE(Tokenizer::from_vocab(v).ok());
}

TEST(DeriveMerges, OrdersByScoreThenPieceLengths) {
  Vocab v;
  v.model = "llama";
  v.tokens = {"a", "b", "c", "ab", "bc", "abc"};
  v.scores = {-10, -11, -12, -1, -2, -3};
  v.types.assign(6, 1);
  v.merges.clear();
  // ab (-1), bc (-2), then abc's splits: longer left first.
  EXPECT_EQ(derive_merges_from_scores(v), (std::vector<std::string>{"a b", "b c", "ab c", "a bc"}));
  // Multi-byte characters are never split.
  v.tokens = {"\xC3\xA9", "x", "\xC3\xA9x"};
  v.scores = {-5, -6, -1};
  v.types.assign(3, 1);
  EXPECT_EQ(derive_merges_from_scores(v), (std::vector<std::string>{"\xC3\xA9 x"}));
}

TEST(DeriveMerges, LlamaVocabularyWithoutMergesUsesScores) {
  Vocab v;
  v.model = "llama";
  v.tokens = {"<unk>", "<s>", "</s>", "a", "b", "c", "ab", "bc", "abc"};
  v.scores = {0, 0, 0, -10, -11, -12, -1, -2, -3};
  v.types = {2, 3, 3, 1, 1, 1, 1, 1, 1};
  v.unk_id = 0;
  v.bos_id = 1;
  v.eos_id = 2;
  v.pad_id = -1;
  v.add_space_prefix = false;
  auto tok = Tokenizer::from_vocab(v);
  ASSERT_TRUE(tok.ok()) << tok.error().message;
  // "ab" (score -1) merges before "bc" (-2): a b c -> ab c -> abc.
  EXPECT_EQ(tok.value()->encode("abc"), Ids{8});
  EXPECT_EQ(tok.value()->encode("cab"), (Ids{5, 6}));
}

TEST(VocabGguf, RoundTripsEveryKey) {
  const Vocab v = small_vocab();
  GgufMetadata md;
  vocab_to_gguf(v, md);
  const std::vector<std::string> keys = {"tokenizer.ggml.model",
                                         "tokenizer.ggml.tokens",
                                         "tokenizer.ggml.scores",
                                         "tokenizer.ggml.token_type",
                                         "tokenizer.ggml.merges",
                                         "tokenizer.ggml.bos_token_id",
                                         "tokenizer.ggml.eos_token_id",
                                         "tokenizer.ggml.unknown_token_id",
                                         "tokenizer.ggml.padding_token_id",
                                         "tokenizer.ggml.add_space_prefix",
                                         "tokenizer.ggml.add_bos_token"};
  ASSERT_EQ(md.size(), keys.size());
  for (size_t i = 0; i < keys.size(); ++i) EXPECT_EQ(md.entries()[i].first, keys[i]);
  EXPECT_EQ(md.find("tokenizer.ggml.model")->string(), "gemma4");
  EXPECT_EQ(md.find("tokenizer.ggml.scores")->array_type(), GgufType::kFloat32);
  EXPECT_EQ(md.find("tokenizer.ggml.token_type")->array_type(), GgufType::kInt32);
  EXPECT_EQ(md.find("tokenizer.ggml.bos_token_id")->type(), GgufType::kUint32);
  EXPECT_EQ(md.find("tokenizer.ggml.add_bos_token")->type(), GgufType::kBool);
  EXPECT_TRUE(md.find("tokenizer.ggml.add_bos_token")->as<bool>());
  EXPECT_FALSE(md.find("tokenizer.ggml.add_space_prefix")->as<bool>());

  auto back = vocab_from_gguf(md);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->model, v.model);
  EXPECT_EQ(back->tokens, v.tokens);
  EXPECT_EQ(back->scores, v.scores);
  EXPECT_EQ(back->types, v.types);
  EXPECT_EQ(back->merges, v.merges);
  EXPECT_EQ(back->bos_id, v.bos_id);
  EXPECT_EQ(back->eos_id, v.eos_id);
  EXPECT_EQ(back->unk_id, v.unk_id);
  EXPECT_EQ(back->pad_id, v.pad_id);
  EXPECT_EQ(back->add_bos, v.add_bos);
  EXPECT_EQ(back->add_space_prefix, v.add_space_prefix);

  auto tok = Tokenizer::from_gguf(md);
  ASSERT_TRUE(tok.ok()) << tok.error().message;
  EXPECT_EQ(tok.value()->encode("abc", true), (Ids{2, small_id("abc")}));
}

// Each case breaks one key; the error must name it.
TEST(VocabGguf, MalformedMetadataIsAnError) {
  struct Case {
    const char* name;
    std::function<void(GgufMetadata&)> breaks;
    const char* expect_in_message;
  };
  const size_t n = small_vocab().tokens.size();
  const std::vector<Case> cases = {
      {"no model", [](GgufMetadata& md) { md.erase("tokenizer.ggml.model"); },
       "tokenizer.ggml.model"},
      {"no tokens", [](GgufMetadata& md) { md.erase("tokenizer.ggml.tokens"); },
       "tokenizer.ggml.tokens"},
      {"tokens not strings",
       [](GgufMetadata& md) {
         md.set("tokenizer.ggml.tokens", GgufValue::array<int32_t>(GgufType::kInt32, {1, 2}));
       },
       "tokenizer.ggml.tokens"},
      {"empty tokens",
       [](GgufMetadata& md) { md.set("tokenizer.ggml.tokens", GgufValue::str_array({})); },
       "tokenizer.ggml.tokens"},
      {"short scores",
       [&](GgufMetadata& md) {
         md.set("tokenizer.ggml.scores",
                GgufValue::array<float>(GgufType::kFloat32, std::vector<float>(n - 1)));
       },
       "tokenizer.ggml.scores"},
      {"scores wrong type",
       [&](GgufMetadata& md) {
         md.set("tokenizer.ggml.scores",
                GgufValue::array<int32_t>(GgufType::kInt32, std::vector<int32_t>(n)));
       },
       "tokenizer.ggml.scores"},
      {"long types",
       [&](GgufMetadata& md) {
         md.set("tokenizer.ggml.token_type",
                GgufValue::array<int32_t>(GgufType::kInt32, std::vector<int32_t>(n + 1, 1)));
       },
       "tokenizer.ggml.token_type"},
      {"bad type value",
       [&](GgufMetadata& md) {
         std::vector<int32_t> t(n, 1);
         t[7] = 42;
         md.set("tokenizer.ggml.token_type", GgufValue::array<int32_t>(GgufType::kInt32, t));
       },
       "token_type"},
      {"bos out of range",
       [&](GgufMetadata& md) {
         md.set("tokenizer.ggml.bos_token_id", GgufValue::u32(static_cast<uint32_t>(n)));
       },
       "bos_token_id"},
      {"eos wrong type",
       [](GgufMetadata& md) { md.set("tokenizer.ggml.eos_token_id", GgufValue::f32(1.0f)); },
       "eos_token_id"},
      {"merges wrong type",
       [](GgufMetadata& md) {
         md.set("tokenizer.ggml.merges", GgufValue::array<int32_t>(GgufType::kInt32, {1}));
       },
       "tokenizer.ggml.merges"},
      {"merge without space",
       [](GgufMetadata& md) { md.set("tokenizer.ggml.merges", GgufValue::str_array({"ab"})); },
       "merge 0"},
      {"add_bos wrong type",
       [](GgufMetadata& md) { md.set("tokenizer.ggml.add_bos_token", GgufValue::u32(1)); },
       "add_bos_token"},
  };
  for (const Case& c : cases) {
    GgufMetadata md;
    vocab_to_gguf(small_vocab(), md);
    c.breaks(md);
    auto r = vocab_from_gguf(md);
    ASSERT_FALSE(r.ok()) << c.name;
    EXPECT_NE(r.error().message.find(c.expect_in_message), std::string::npos)
        << c.name << ": " << r.error().message;
    EXPECT_EQ(r.error().message.find('\n'), std::string::npos) << c.name;
    EXPECT_FALSE(Tokenizer::from_gguf(md).ok()) << c.name;
  }
}

}  // namespace
}  // namespace nibble
