// Helpers shared by the tokenizer tests: a tiny hand-made vocabulary, a protobuf writer for
// building SentencePiece files byte by byte, and where the fixtures live.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "test_util.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab.h"

namespace nibble::test {

inline std::string rand_model_path() {
  return source_dir() + "/tests/fixtures/tokenizer/rand.model";
}

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Splits text into lines, each keeping its '\n' (the last may lack one).
inline std::vector<std::string> split_lines_keep_newline(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    size_t end = nl == std::string::npos ? text.size() : nl + 1;
    lines.push_back(text.substr(start, end - start));
    start = end;
  }
  return lines;
}

inline std::string ids_to_string(const std::vector<int32_t>& ids) {
  std::string s;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) s += ' ';
    s += std::to_string(ids[i]);
  }
  return s;
}

// A small Gemma-like vocabulary:
//   0 <pad> 1 <eos> 2 <bos> (control), 3 <unk> (unknown), 4 <|turn> (control),
//   5 <|channel> (user-defined), 6 <|tu (user-defined, a prefix of <|turn>),
//   7 .. 262 <0x00> .. <0xFF> (byte), then normal pieces (see kNormalPieces).
inline constexpr int32_t kFirstByte = 7;
inline const std::vector<std::string>& small_normal_pieces() {
  static const std::vector<std::string> k = {
      "\xE2\x96\x81",  // 263 ▁
      "a",
      "b",
      "c",
      "ab",
      "bc",
      "abc",  // 264 .. 269
      "\xE2\x96\x81"
      "a",                         // 270 ▁a
      "\xE2\x96\x81\xE2\x96\x81",  // 271 ▁▁
      "\n",
      "\n\n",      // 272, 273
      "\xC3\xA9",  // 274 é
      "\xE2\x96\x81"
      "ab",  // 275 ▁ab
      "<",
      "|",
      "t",
      "u",  // 276 .. 279
  };
  return k;
}
inline int32_t small_id(const std::string& piece) {
  const auto& p = small_normal_pieces();
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] == piece) return static_cast<int32_t>(kFirstByte + 256 + i);
  }
  return -1;
}

inline Vocab small_vocab() {
  Vocab v;
  v.model = "gemma4";
  auto add = [&](const std::string& piece, TokenType type) {
    v.tokens.push_back(piece);
    v.scores.push_back(0.0f);
    v.types.push_back(static_cast<int32_t>(type));
  };
  add("<pad>", TokenType::kControl);
  add("<eos>", TokenType::kControl);
  add("<bos>", TokenType::kControl);
  add("<unk>", TokenType::kUnknown);
  add("<|turn>", TokenType::kControl);
  add("<|channel>", TokenType::kUserDefined);
  add("<|tu", TokenType::kUserDefined);
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
    add(buf, TokenType::kByte);
  }
  for (const std::string& p : small_normal_pieces()) add(p, TokenType::kNormal);
  const std::string sp = "\xE2\x96\x81";
  // Rank order: "b c" before "a b" makes "abc" -> a + bc, then "a bc" -> abc.
  v.merges = {"b c", "a b", "a bc", sp + " a", sp + " " + sp, sp + "a b", "\n \n"};
  v.bos_id = 2;
  v.eos_id = 1;
  v.unk_id = 3;
  v.pad_id = 0;
  return v;
}

inline std::unique_ptr<Tokenizer> small_tokenizer() {
  auto r = Tokenizer::from_vocab(small_vocab());
  if (!r.ok()) {
    std::fprintf(stderr, "small_tokenizer: %s\n", r.error().message.c_str());
    std::abort();
  }
  return std::move(r).value();
}

// Protocol-buffer wire-format writer for building (and breaking) SentencePiece models.
class ProtoWriter {
 public:
  ProtoWriter& varint(uint32_t field, uint64_t v) {
    key(field, 0);
    raw_varint(v);
    return *this;
  }
  ProtoWriter& fixed32(uint32_t field, float f) {
    key(field, 5);
    uint32_t u;
    std::memcpy(&u, &f, 4);
    for (int i = 0; i < 4; ++i) out_.push_back(static_cast<char>((u >> (8 * i)) & 0xFF));
    return *this;
  }
  ProtoWriter& bytes(uint32_t field, const std::string& b) {
    key(field, 2);
    raw_varint(b.size());
    out_ += b;
    return *this;
  }
  ProtoWriter& raw(const std::string& b) {
    out_ += b;
    return *this;
  }
  void key(uint32_t field, uint32_t wire) {
    raw_varint((static_cast<uint64_t>(field) << 3) | wire);
  }
  void raw_varint(uint64_t v) {
    while (v >= 0x80) {
      out_.push_back(static_cast<char>((v & 0x7F) | 0x80));
      v >>= 7;
    }
    out_.push_back(static_cast<char>(v));
  }
  const std::string& str() const { return out_; }

 private:
  std::string out_;
};

inline std::string sp_piece(const std::string& piece, float score, int type) {
  return ProtoWriter().bytes(1, piece).fixed32(2, score).varint(3, type).str();
}

// A valid minimal BPE model: <unk> <s> </s>, "a", "b", "ab".
inline std::string minimal_sp_model(int model_type = 2) {
  ProtoWriter m;
  m.bytes(1, sp_piece("<unk>", 0, 2));
  m.bytes(1, sp_piece("<s>", 0, 3));
  m.bytes(1, sp_piece("</s>", 0, 3));
  m.bytes(1, sp_piece("ab", -1, 1));
  m.bytes(1, sp_piece("a", -2, 1));
  m.bytes(1, sp_piece("b", -3, 1));
  m.bytes(2, ProtoWriter().varint(3, static_cast<uint64_t>(model_type)).str());
  m.bytes(3, ProtoWriter().bytes(1, "identity").varint(3, 0).varint(4, 0).str());
  return m.str();
}

}  // namespace nibble::test
