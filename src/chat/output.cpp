// OutputParser: channel switching, the thought label, stop strings.
#include "chat/output.h"

#include <algorithm>

namespace nibble {

namespace {
constexpr std::string_view kLabel = "thought\n";
}

OutputParser::OutputParser(const Tokenizer& tok, std::vector<std::string> stops)
    : dec_(tok), stops_(std::move(stops)),
      open_id_(tok.find_token("<|channel>")), close_id_(tok.find_token("<channel|>")) {
  stops_.erase(std::remove(stops_.begin(), stops_.end(), std::string()), stops_.end());
}

bool OutputParser::emit_answer(const std::string& text, std::string& content) {
  if (stopped_) return true;
  pending_ += text;
  size_t best = std::string::npos;
  for (const auto& s : stops_) best = std::min(best, pending_.find(s));
  if (best != std::string::npos) {
    content += pending_.substr(0, best);
    pending_.clear();
    stopped_ = true;
    return true;
  }
  // Hold back the longest suffix that is a proper prefix of a stop string.
  size_t hold = 0;
  for (const auto& s : stops_) {
    for (size_t k = std::min(s.size() - 1, pending_.size()); k > hold; --k) {
      if (pending_.compare(pending_.size() - k, k, s, 0, k) == 0) {
        hold = k;
        break;
      }
    }
  }
  content += pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return false;
}

void OutputParser::emit_thinking(const std::string& text, std::string& thinking) {
  if (state_ == State::kHeader) {
    header_ += text;
    if (header_.size() < kLabel.size() && kLabel.compare(0, header_.size(), header_) == 0) return;
    state_ = State::kThinking;
    if (header_.compare(0, kLabel.size(), kLabel) == 0) header_.erase(0, kLabel.size());
    thinking += header_;
    header_.clear();
    return;
  }
  thinking += text;
}

bool OutputParser::push(int32_t id, std::string& content, std::string& thinking) {
  if (stopped_) return true;
  if (id >= 0 && (id == open_id_ || id == close_id_)) {
    const std::string rest = dec_.flush();
    if (state_ == State::kAnswer) {
      if (emit_answer(rest, content)) return true;
    } else {
      emit_thinking(rest, thinking);
    }
    if (id == open_id_) {
      if (state_ == State::kAnswer) {
        state_ = State::kHeader;
        header_.clear();
      }
    } else {
      if (state_ == State::kHeader) thinking += header_;  // a label that never completed
      header_.clear();
      state_ = State::kAnswer;
    }
    return false;
  }
  const std::string text = dec_.push(id);
  if (text.empty()) return false;
  if (state_ == State::kAnswer) return emit_answer(text, content);
  emit_thinking(text, thinking);
  return false;
}

void OutputParser::flush(std::string& content, std::string& thinking) {
  if (stopped_) return;
  const std::string rest = dec_.flush();
  if (state_ == State::kAnswer) {
    if (emit_answer(rest, content)) return;
    content += pending_;
    pending_.clear();
  } else {
    if (state_ == State::kHeader) {
      thinking += header_;
      header_.clear();
      state_ = State::kThinking;
    }
    thinking += rest;
  }
}

}  // namespace nibble
