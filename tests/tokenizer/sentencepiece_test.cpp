// Tests of the tokenizer.model importer: the fixture (a copy of the rand-* models' 512-piece
// SentencePiece BPE model) and, when ../shared is present, tiny-e's 8192-piece model on
// ../data/valid.txt and poe.txt, compared id for id with libsentencepiece (when the build found
// it); plus hostile files: every truncation, bad lengths, bad wire types, random corruption.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_test_util.h"
#include "tokenizer/vocab.h"

#ifdef NIBBLE_HAVE_SENTENCEPIECE
#include <sentencepiece_processor.h>
#endif

namespace nibble {
namespace {

using test::ProtoWriter;
using test::read_text;
using Ids = std::vector<int32_t>;

std::unique_ptr<Tokenizer> tokenizer_from_model(const std::string& path) {
  auto v = vocab_from_sentencepiece_model(path);
  EXPECT_TRUE(v.ok()) << v.error().message;
  if (!v.ok()) return nullptr;
  auto t = Tokenizer::from_vocab(std::move(v).value());
  EXPECT_TRUE(t.ok()) << t.error().message;
  return t.ok() ? std::move(t).value() : nullptr;
}

TEST(SentencePieceImport, FixtureVocabulary) {
  auto r = vocab_from_sentencepiece_model(test::rand_model_path());
  ASSERT_TRUE(r.ok()) << r.error().message;
  const Vocab& v = r.value();
  EXPECT_EQ(v.model, "gemma4");
  ASSERT_EQ(v.tokens.size(), 512u);
  EXPECT_EQ(v.tokens[0], "<pad>");
  EXPECT_EQ(v.tokens[2], "<bos>");
  EXPECT_EQ(v.pad_id, 0);
  EXPECT_EQ(v.eos_id, 1);
  EXPECT_EQ(v.bos_id, 2);
  EXPECT_EQ(v.unk_id, 3);
  EXPECT_EQ(v.types[0], static_cast<int32_t>(TokenType::kControl));
  EXPECT_EQ(v.types[3], static_cast<int32_t>(TokenType::kUnknown));
  EXPECT_EQ(v.tokens[4], "<|turn>");
  EXPECT_EQ(v.types[4], static_cast<int32_t>(TokenType::kUserDefined));
  EXPECT_EQ(v.tokens[9], "<0x00>");
  EXPECT_EQ(v.tokens[9 + 0x0A], "<0x0A>");
  EXPECT_EQ(v.types[9 + 0x0A], static_cast<int32_t>(TokenType::kByte));
  EXPECT_EQ(v.types[300], static_cast<int32_t>(TokenType::kNormal));
  EXPECT_TRUE(v.add_bos);
  EXPECT_FALSE(v.add_space_prefix);
  EXPECT_FALSE(v.merges.empty());
  auto tok = Tokenizer::from_vocab(v);
  ASSERT_TRUE(tok.ok()) << tok.error().message;
  EXPECT_EQ(tok.value()->n_merges_skipped(), 0u);
}

[[maybe_unused]] const std::vector<std::string>& sample_texts() {
  static const std::vector<std::string> k = {
      "Hello world",
      "The quick brown fox jumps over the lazy dog.\n",
      "  leading and trailing spaces  ",
      "tabs\tand\t\tmore\ttabs",
      "new\nlines\n\n\nand\r\nCRLF",
      "digits 1234567890 and 3.14159, 1,000,000",
      "caf\xC3\xA9 na\xC3\xAFve \xE2\x80\x94 \xE2\x80\x9Cquoted\xE2\x80\x9D",
      "\xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\x98\x80 \xD7\xA9\xD7\x9C\xD7\x95\xD7\x9D",
      "e\xCC\x81 combining",
      "",
      " ",
      "\n",
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
  };
  return k;
}

#ifdef NIBBLE_HAVE_SENTENCEPIECE
Ids sp_encode(const sentencepiece::SentencePieceProcessor& sp, const std::string& text) {
  std::vector<int> ids;
  const auto status = sp.Encode(text, &ids);
  EXPECT_TRUE(status.ok()) << status.ToString();
  return Ids(ids.begin(), ids.end());
}
#endif

TEST(SentencePieceImport, FixtureMatchesLibSentencePiece) {
#ifndef NIBBLE_HAVE_SENTENCEPIECE
  GTEST_SKIP() << "built without libsentencepiece; skipping the comparison";
#else
  auto tok = tokenizer_from_model(test::rand_model_path());
  ASSERT_NE(tok, nullptr);
  sentencepiece::SentencePieceProcessor sp;
  ASSERT_TRUE(sp.Load(test::rand_model_path()).ok());
  for (const std::string& text : sample_texts()) {
    EXPECT_EQ(tok->encode(text), sp_encode(sp, text)) << "text: '" << text << "'";
    EXPECT_EQ(tok->decode(tok->encode(text)), text);
  }
#endif
}

// ../data/*.txt line by line (newlines kept), as ../models/README.md's perplexity protocol
// tokenizes them, with tiny-e's tokenizer.model.
void check_shared_text(const char* file) {
  const std::string model = test::shared_dir() + "/models/tiny-e/hf/tokenizer.model";
  const std::string text = read_text(test::shared_dir() + "/data/" + file);
  ASSERT_FALSE(text.empty()) << file;
  auto tok = tokenizer_from_model(model);
  ASSERT_NE(tok, nullptr);
  const std::vector<std::string> lines = test::split_lines_keep_newline(text);

  std::vector<Ids> ours;
  ours.reserve(lines.size());
  const auto t0 = std::chrono::steady_clock::now();
  size_t n_tokens = 0;
  for (const std::string& line : lines) {
    ours.push_back(tok->encode(line));
    n_tokens += ours.back().size();
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[          ] %s: %zu lines, %zu bytes, %zu tokens encoded in %.3f s\n", file,
              lines.size(), text.size(), n_tokens, secs);

  size_t bad_roundtrip = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (tok->decode(ours[i]) != lines[i] && ++bad_roundtrip <= 3) {
      ADD_FAILURE() << file << " line " << i + 1 << " does not round-trip";
    }
  }
  EXPECT_EQ(bad_roundtrip, 0u);

#ifndef NIBBLE_HAVE_SENTENCEPIECE
  std::printf("[          ] built without libsentencepiece: ids not compared\n");
#else
  sentencepiece::SentencePieceProcessor sp;
  ASSERT_TRUE(sp.Load(model).ok());
  size_t mismatches = 0;
  size_t sp_tokens = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    const Ids want = sp_encode(sp, lines[i]);
    sp_tokens += want.size();
    if (ours[i] != want && ++mismatches <= 5) {
      ADD_FAILURE() << file << " line " << i + 1 << ": '" << lines[i]
                    << "'\n  sentencepiece: " << test::ids_to_string(want)
                    << "\n  nibble:        " << test::ids_to_string(ours[i]);
    }
  }
  EXPECT_EQ(mismatches, 0u) << "of " << lines.size() << " lines";
  EXPECT_EQ(n_tokens, sp_tokens);
  // The whole text at once: SentencePiece does not split at newlines, nibble splits at newline
  // runs (as llama.cpp does); the ids agree because no merge spans a newline boundary.
  const Ids whole = tok->encode(text);
  const Ids sp_whole = sp_encode(sp, text);
  EXPECT_EQ(whole.size(), sp_whole.size());
  EXPECT_TRUE(whole == sp_whole) << file << ": whole-text encodings differ";
#endif
}

TEST(SentencePieceImport, SharedValidTextMatchesSentencePiece) {
  NIBBLE_REQUIRE_SHARED();
  check_shared_text("valid.txt");
}

TEST(SentencePieceImport, SharedPoeTextMatchesSentencePiece) {
  NIBBLE_REQUIRE_SHARED();
  check_shared_text("poe.txt");
}

// Every error is one line and names the file.
void expect_clean_error(const Result<Vocab>& r, const std::string& what) {
  ASSERT_FALSE(r.ok()) << what;
  EXPECT_EQ(r.error().message.find('\n'), std::string::npos) << what << ": " << r.error().message;
  EXPECT_EQ(r.error().message.rfind("test.model", 0), 0u) << what << ": " << r.error().message;
}

TEST(SentencePieceImport, MinimalHandBuiltModel) {
  auto r = vocab_from_sentencepiece_bytes(test::minimal_sp_model(), "test.model");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->tokens.size(), 6u);
  EXPECT_EQ(r->merges, std::vector<std::string>{"a b"});
  // Proto defaults: unk 0, bos 1, eos 2, pad -1.
  EXPECT_EQ(r->unk_id, 0);
  EXPECT_EQ(r->bos_id, 1);
  EXPECT_EQ(r->eos_id, 2);
  EXPECT_EQ(r->pad_id, -1);
}

TEST(SentencePieceImport, EveryTruncationIsAnError) {
  const std::string bytes = read_text(test::rand_model_path());
  ASSERT_EQ(bytes.size(), 7655u);
  // The pieces come first and the normalizer spec last, so every proper prefix is either
  // malformed or lacks the specs nibble needs.
  for (size_t n = 0; n < bytes.size(); ++n) {
    expect_clean_error(
        vocab_from_sentencepiece_bytes(std::string_view(bytes).substr(0, n), "test.model"),
        "prefix of " + std::to_string(n) + " bytes");
  }
  EXPECT_TRUE(vocab_from_sentencepiece_bytes(bytes, "test.model").ok());
}

TEST(SentencePieceImport, HostileFiles) {
  struct Case {
    const char* name;
    std::string bytes;
    const char* expect_in_message;
  };
  std::string huge_length;
  {
    ProtoWriter w;
    w.key(1, 2);
    w.raw_varint(1000000);
    w.raw("abc");
    huge_length = w.str();
  }
  std::string length_overflow;
  {
    ProtoWriter w;
    w.key(1, 2);
    w.raw_varint(~0ull);
    length_overflow = w.str();
  }
  const std::string piece_ok = test::sp_piece("a", -1, 1);
  const std::vector<Case> cases = {
      {"empty", "", "empty"},
      {"varint too long", std::string(11, '\xFF'), "varint"},
      {"truncated varint", std::string("\x08\xFF", 2), "varint"},
      {"length past end", huge_length, "needs 1000000 bytes"},
      {"length overflows", length_overflow, "needs"},
      {"group wire type", ProtoWriter().raw("\x0B").str(), "wire type 3"},
      {"field number zero", ProtoWriter().raw(std::string("\x00\x01", 2)).str(), "field number"},
      {"pieces as varint", ProtoWriter().varint(1, 5).str(), "pieces"},
      {"score as varint",
       ProtoWriter().bytes(1, ProtoWriter().bytes(1, "a").varint(2, 7).str()).str(), "score"},
      {"piece missing", ProtoWriter().bytes(1, ProtoWriter().fixed32(2, 1.0f).str()).str(),
       "piece"},
      {"empty piece", ProtoWriter().bytes(1, test::sp_piece("", 0, 1)).str(), "piece"},
      {"unknown piece type", ProtoWriter().bytes(1, test::sp_piece("a", 0, 9)).str(), "type 9"},
      {"negative piece type",
       ProtoWriter().bytes(1, ProtoWriter().bytes(1, "a").varint(3, ~0ull).str()).str(), "type -1"},
      {"no pieces", ProtoWriter().bytes(2, ProtoWriter().varint(3, 2).str()).str(), "no pieces"},
      {"unigram", test::minimal_sp_model(1), "UNIGRAM"},
      {"no trainer spec", ProtoWriter().bytes(1, piece_ok).str(), "model_type"},
      {"duplicate piece",
       ProtoWriter()
           .bytes(1, piece_ok)
           .bytes(1, piece_ok)
           .bytes(2, ProtoWriter().varint(3, 2).str())
           .bytes(3, ProtoWriter().varint(4, 0).str())
           .str(),
       "twice"},
      {"bos id out of range",
       ProtoWriter()
           .bytes(1, piece_ok)
           .bytes(2, ProtoWriter().varint(3, 2).varint(40, 0).varint(41, 7).str())
           .bytes(3, ProtoWriter().varint(4, 0).str())
           .str(),
       "bos_id = 7"},
      {"charsmap",
       ProtoWriter()
           .bytes(1, piece_ok)
           .bytes(2, ProtoWriter().varint(3, 2).varint(40, 0).varint(41, -1).varint(42, -1).str())
           .bytes(3, ProtoWriter().bytes(1, "nmt_nfkc").bytes(2, "xyz").varint(4, 0).str())
           .str(),
       "charsmap"},
      {"trainer spec truncated inside",
       ProtoWriter().bytes(1, piece_ok).bytes(2, std::string("\x18", 1)).str(), "trainer_spec"},
  };
  for (const Case& c : cases) {
    auto r = vocab_from_sentencepiece_bytes(c.bytes, "test.model");
    expect_clean_error(r, c.name);
    if (!r.ok()) {
      EXPECT_NE(r.error().message.find(c.expect_in_message), std::string::npos)
          << c.name << ": " << r.error().message;
    }
  }
  EXPECT_EQ(vocab_from_sentencepiece_bytes(test::minimal_sp_model(1), "m").error().code,
            ErrorCode::kUnsupported);
}

TEST(SentencePieceImport, RandomCorruptionNeverCrashes) {
  const std::string bytes = read_text(test::rand_model_path());
  std::mt19937 rng(1234);  // fixed seed
  size_t n_ok = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::string b = bytes;
    const int n_flips = 1 + static_cast<int>(rng() % 8);
    for (int k = 0; k < n_flips; ++k) b[rng() % b.size()] = static_cast<char>(rng() & 0xFF);
    auto r = vocab_from_sentencepiece_bytes(b, "test.model");
    if (r.ok()) {
      ++n_ok;
      auto tok = Tokenizer::from_vocab(std::move(r).value());
      if (tok.ok()) (void)tok.value()->encode("The quick brown fox\n\n <|turn>", true, true);
    } else {
      EXPECT_EQ(r.error().message.find('\n'), std::string::npos) << r.error().message;
    }
  }
  std::printf("[          ] seed 1234: %zu of 3000 corrupted files still parsed\n", n_ok);
}

TEST(SentencePieceImport, MissingFile) {
  auto r = vocab_from_sentencepiece_model("/nonexistent/tokenizer.model");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("/nonexistent/tokenizer.model"), std::string::npos);
}

}  // namespace
}  // namespace nibble
