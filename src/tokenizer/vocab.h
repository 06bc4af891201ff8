// Vocab: the vocabulary as GGUF stores it (tokenizer.ggml.*), and importers from a Hugging Face
// checkpoint's tokenizer.model (SentencePiece protobuf) or tokenizer.json (HF BPE).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "gguf/gguf_value.h"
#include "util/result.h"

namespace nibble {

// tokenizer.ggml.token_type values (0, llama.cpp's "undefined", is read as normal).
enum class TokenType : int32_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

struct Vocab {
  std::string model = "gemma4";     // tokenizer.ggml.model
  std::vector<std::string> tokens;  // pieces, spaces as U+2581
  std::vector<float> scores;
  std::vector<int32_t> types;       // TokenType values
  std::vector<std::string> merges;  // "left right", rank order
  int32_t bos_id = 2, eos_id = 1, unk_id = 3, pad_id = 0;  // -1: the vocabulary has none
  bool add_bos = true;
  bool add_space_prefix = false;
};

// Imports a SentencePiece model file (BPE type). Merges are derived from piece scores the way
// llama.cpp's converter does, so ids match SentencePiece's own encoder.
Result<Vocab> vocab_from_sentencepiece_model(const std::string& path);
// Imports a Hugging Face tokenizer.json (model.type BPE, with added_tokens).
Result<Vocab> vocab_from_tokenizer_json(const std::string& path);

// The same from bytes already in memory; `name` (a path, usually) is used in error messages.
Result<Vocab> vocab_from_sentencepiece_bytes(std::string_view bytes, const std::string& name);
Result<Vocab> vocab_from_tokenizer_json_text(std::string_view text, const std::string& name);

// Rank-ordered merges ("left right") derived from the piece scores of a SentencePiece BPE
// vocabulary, as transformers' generate_merges does when it converts tokenizer.model to
// tokenizer.json: every split of a piece into two pieces is a merge; merges are ordered by the
// merged piece's score (descending), then by the left and right lengths in characters
// (descending), ties keeping (merged id, left id, right id) order.
std::vector<std::string> derive_merges_from_scores(const Vocab& vocab);

// Checks that the arrays have one entry per token, the ids are in range and the token types are
// known. `what` names the source in messages.
Status validate_vocab(const Vocab& vocab, const std::string& what);

// Writes the tokenizer.ggml.* keys (not the chat template).
void vocab_to_gguf(const Vocab& vocab, GgufMetadata& md);
// Reads and validates them (array lengths agree, ids in range).
Result<Vocab> vocab_from_gguf(const GgufMetadata& md);

}  // namespace nibble
