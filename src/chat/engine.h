// Engine: one loaded model with its tokenizer and one Session, for chats and completions (the
// interactive `nibble run` and `nibble serve`). Not thread-safe: the server serialises requests.
//
// The session keeps the tokens it has evaluated; a prompt that extends them (the next turn of a
// chat) evaluates only the new tokens, anything else starts the sequence over.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "chat/chat_template.h"
#include "chat/params.h"
#include "model/model.h"
#include "runtime/session.h"
#include "tokenizer/tokenizer.h"
#include "util/result.h"

namespace nibble {

struct GenerateResult {
  std::string content;   // the answer
  std::string thinking;  // the thought channel, when the model used it
  int64_t prompt_tokens = 0;    // tokens in the prompt
  int64_t prompt_evaluated = 0; // of them, evaluated now (the rest was already in the cache)
  int64_t eval_tokens = 0;      // tokens generated
  double prompt_seconds = 0, eval_seconds = 0;
  std::string done_reason;      // "stop" (end of turn or a stop string), "length", "cancel"
};

// Called with each piece of new text (either may be empty). Returning false cancels.
using OnDelta = std::function<bool(const std::string& content, const std::string& thinking)>;

// The KV cache a parameter set gives: bytes by layer kind, layer counts, types.
struct KvReport {
  int64_t n_ctx = 0;
  KvCacheBytes bytes;
  int n_full = 0, n_sliding = 0, n_shared = 0;
  KvTypes types;
  bool flash = true;
};

// SessionOptions for a parameter set (num_ctx, kv_cache_type, flash_attention).
Result<SessionOptions> session_options_for(const ModelParams& p);

class Engine {
 public:
  static Result<std::unique_ptr<Engine>> load(const std::string& gguf_path);

  const std::string& path() const { return path_; }
  const Model& model() const { return *model_; }
  const Tokenizer& tokenizer() const { return *tok_; }
  // The template of the GGUF (tokenizer.chat_template).
  const ChatTemplate& gguf_template() const { return template_; }
  uint64_t file_bytes() const { return file_bytes_; }
  // The context a parameter set gives (num_ctx, else the model's training context up to 4096).
  int64_t context_for(const ModelParams& p) const;
  Result<KvReport> kv_report(const ModelParams& p) const;
  // The live session's context (0 before the first generation).
  int64_t session_ctx() const { return session_ ? session_->n_ctx() : 0; }

  // A conversation as tokens. When it does not fit in `budget` tokens the oldest turns after the
  // system message are dropped (`dropped` counts them); the last message is always kept.
  Result<std::vector<int32_t>> chat_tokens(const ChatTemplate& tmpl, std::vector<ChatMessage> messages,
                                           const RenderOptions& opts, int64_t budget,
                                           int* dropped = nullptr) const;
  // Plain text as tokens (BOS first, special-token spellings parsed, as `nibble run` does).
  std::vector<int32_t> text_tokens(const std::string& text) const;

  // Generates after `prompt` until end of turn, a stop string, num_predict tokens, a full
  // context, or a cancel (the flag, or on_delta returning false). Errors: bad parameters, a
  // prompt that does not fit in the context.
  Result<GenerateResult> generate(const std::vector<int32_t>& prompt, const ModelParams& params,
                                  const std::atomic<bool>* cancel, const OnDelta& on_delta);

  // Frees the session's KV cache (the model stays loaded).
  void drop_session() { session_.reset(); cached_.clear(); }

 private:
  Engine() = default;
  Status prepare_session(const ModelParams& p);

  std::string path_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<Tokenizer> tok_;
  ChatTemplate template_;
  uint64_t file_bytes_ = 0;
  std::vector<int32_t> stop_ids_;
  std::unique_ptr<Session> session_;
  std::vector<int32_t> cached_;  // tokens in session_, in order
};

}  // namespace nibble
