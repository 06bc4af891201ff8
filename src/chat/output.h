// OutputParser: turns generated token ids into answer text and thinking text, incrementally.
// Gemma 4 thinks as <|channel>thought\n{reasoning}<channel|>{answer} (spec gemma4-architecture
// §6.3): the channel tokens switch streams and the "thought\n" label is dropped. Stop strings
// end the answer: text is held back while it could still be the start of one, and the stop
// string itself is never emitted. UTF-8 characters split across tokens are held until complete.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace nibble {

class OutputParser {
 public:
  OutputParser(const Tokenizer& tok, std::vector<std::string> stops);

  // Feeds one generated token; appends what became final to `content` and `thinking`. Returns
  // true when a stop string completed (generation should end).
  bool push(int32_t id, std::string& content, std::string& thinking);
  // At the end of generation: whatever was held back.
  void flush(std::string& content, std::string& thinking);

 private:
  enum class State { kAnswer, kHeader, kThinking };
  bool emit_answer(const std::string& text, std::string& content);
  void emit_thinking(const std::string& text, std::string& thinking);

  StreamDecoder dec_;
  std::vector<std::string> stops_;
  int32_t open_id_, close_id_;
  State state_ = State::kAnswer;
  std::string header_;   // text after <|channel> while it may still be the "thought\n" label
  std::string pending_;  // answer text that may be the start of a stop string
  bool stopped_ = false;
};

}  // namespace nibble
