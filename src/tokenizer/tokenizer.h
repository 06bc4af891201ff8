// Tokenizer: Gemma 4's BPE (SentencePiece-derived): spaces as U+2581, no dummy prefix,
// rank-ordered merges over whole Unicode characters, <0xXX> byte fallback, special tokens
// matched only when asked. Built from GGUF metadata; see vocab.h for importing a vocabulary
// from tokenizer.model / tokenizer.json.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "gguf/gguf_value.h"
#include "tokenizer/vocab.h"
#include "util/result.h"

namespace nibble {

class Tokenizer {
 public:
  // Reads tokenizer.ggml.* keys (model must be "gemma4" or "llama"-style BPE with merges).
  static Result<std::unique_ptr<Tokenizer>> from_gguf(const GgufMetadata& md);
  static Result<std::unique_ptr<Tokenizer>> from_vocab(Vocab vocab);

  // Encodes text. `add_bos` prepends BOS; `parse_special` lets control/user-defined token
  // strings in the text (e.g. "<|turn>") become their ids; otherwise they are plain text.
  std::vector<int32_t> encode(std::string_view text, bool add_bos = false,
                              bool parse_special = false) const;
  // Decodes ids to text (control tokens rendered only when `render_special`).
  std::string decode(const std::vector<int32_t>& ids, bool render_special = false) const;
  // Raw bytes of one token as decoding would produce them (may be a partial UTF-8 sequence).
  std::string token_to_bytes(int32_t id, bool render_special = false) const;

  const Vocab& vocab() const { return vocab_; }
  int32_t n_vocab() const { return static_cast<int32_t>(vocab_.tokens.size()); }
  int32_t bos_id() const { return vocab_.bos_id; }
  int32_t eos_id() const { return vocab_.eos_id; }
  // Id of an exact token string, or -1.
  int32_t find_token(std::string_view piece) const;
  // Merges that could not be used because a piece or the merged piece is not a token.
  size_t n_merges_skipped() const;

 private:
  Vocab vocab_;
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

// Streaming decode: feed ids one at a time; returns only complete UTF-8 text, holding back the
// bytes of a character that is not finished yet.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok, bool render_special = false)
      : tok_(tok), render_special_(render_special) {}
  std::string push(int32_t id);
  // Whatever is left (invalid trailing bytes are emitted as U+FFFD).
  std::string flush();

 private:
  const Tokenizer& tok_;
  bool render_special_;
  std::string pending_;
};

}  // namespace nibble
