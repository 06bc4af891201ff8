// Engine: loading, prompt building, and the generation loop shared by `run` and `serve`.
#include "chat/engine.h"

#include <algorithm>
#include <chrono>
#include <limits>
#include <unordered_map>

#include "chat/output.h"
#include "model/registry.h"
#include "sampling/sampler.h"

namespace nibble {

Result<std::unique_ptr<Engine>> Engine::load(const std::string& gguf_path) {
  std::unique_ptr<Engine> e(new Engine());
  e->path_ = gguf_path;
  NIBBLE_ASSIGN_OR_RETURN(e->model_, load_model(gguf_path));
  const GgufFile& f = e->model_->file();
  NIBBLE_ASSIGN_OR_RETURN(e->tok_, Tokenizer::from_gguf(f.metadata()));
  e->file_bytes_ = f.file_size();
  std::string jinja;
  if (const GgufValue* v = f.metadata().find("tokenizer.chat_template");
      v != nullptr && v->type() == GgufType::kString) {
    jinja = v->string();
  }
  e->template_ = ChatTemplate::from_gguf(jinja);
  // End of generation: <eos>, <turn|>, <|tool_response> (spec §6.2).
  for (int32_t id : {e->tok_->eos_id(), e->tok_->find_token("<turn|>"),
                     e->tok_->find_token("<|tool_response>")}) {
    if (id >= 0) e->stop_ids_.push_back(id);
  }
  return e;
}

int64_t Engine::context_for(const ModelParams& p) const {
  if (p.num_ctx) return *p.num_ctx;
  const int64_t train = model_->info().n_ctx_train;
  return train > 0 ? std::min(train, SessionOptions::kDefaultCtx) : SessionOptions::kDefaultCtx;
}

Result<SessionOptions> session_options_for(const ModelParams& p) {
  SessionOptions so;
  if (p.num_ctx) so.n_ctx = *p.num_ctx;
  if (p.kv_cache_type) {
    auto t = parse_kv_type(*p.kv_cache_type);
    if (!t.ok()) return make_error(ErrorCode::kInvalidArgument, "parameter kv_cache_type: %s", t.error().message.c_str());
    so.kv_type_full = so.kv_type_swa = *t;
  }
  if (p.kv_recent) so.kv_recent = *p.kv_recent;
  if (p.flash_attention) so.flash_attn = *p.flash_attention ? FlashAttn::kOn : FlashAttn::kOff;
  return so;
}

Result<KvReport> Engine::kv_report(const ModelParams& p) const {
  NIBBLE_ASSIGN_OR_RETURN(SessionOptions so, session_options_for(p));
  KvReport r;
  r.n_ctx = context_for(p);
  r.types = KvTypes{so.kv_type_full, so.kv_type_swa};
  r.types.recent = so.kv_recent;
  r.flash = so.flash_attn != FlashAttn::kOff;
  const auto layout = model_->kv_layout();
  NIBBLE_TRY(KvCache::check(layout, r.types));
  r.bytes = KvCache::estimate(layout, r.n_ctx, std::min(so.n_batch, r.n_ctx), r.types);
  for (size_t i = 0; i < layout.size(); ++i) {
    if (layout[i].source_layer != static_cast<int>(i)) {
      ++r.n_shared;
    } else if (layout[i].window > 0) {
      ++r.n_sliding;
    } else {
      ++r.n_full;
    }
  }
  return r;
}

std::vector<int32_t> Engine::text_tokens(const std::string& text) const {
  std::vector<int32_t> ids = tok_->encode(text, /*add_bos=*/true, /*parse_special=*/true);
  if (ids.size() >= 2 && ids[0] == tok_->bos_id() && ids[1] == tok_->bos_id()) ids.erase(ids.begin());
  return ids;
}

Result<std::vector<int32_t>> Engine::chat_tokens(const ChatTemplate& tmpl,
                                                 std::vector<ChatMessage> messages,
                                                 const RenderOptions& opts, int64_t budget,
                                                 int* dropped) const {
  if (dropped != nullptr) *dropped = 0;
  // Each distinct segment is tokenized once (a long conversation is re-rendered while turns are
  // dropped; hostile requests may carry thousands of messages).
  std::unordered_map<std::string, std::vector<int32_t>> cache[2];
  auto tokens_for = [&](size_t n_drop) -> Result<std::vector<int32_t>> {
    const size_t first = !messages.empty() && (messages[0].role == "system" || messages[0].role == "developer") ? 1 : 0;
    std::vector<ChatMessage> kept(messages.begin(), messages.begin() + static_cast<std::ptrdiff_t>(first));
    kept.insert(kept.end(), messages.begin() + static_cast<std::ptrdiff_t>(first + n_drop), messages.end());
    NIBBLE_ASSIGN_OR_RETURN(auto segs, tmpl.render(kept, opts));
    std::vector<int32_t> ids;
    for (const auto& seg : segs) {
      auto& c = cache[seg.special ? 1 : 0];
      auto it = c.find(seg.text);
      if (it == c.end()) it = c.emplace(seg.text, tok_->encode(seg.text, false, seg.special)).first;
      ids.insert(ids.end(), it->second.begin(), it->second.end());
    }
    // Exactly one BOS at position 0 (spec §6.3).
    if (tok_->bos_id() >= 0) {
      if (ids.empty() || ids[0] != tok_->bos_id()) ids.insert(ids.begin(), tok_->bos_id());
      size_t k = 1;
      while (k < ids.size() && ids[k] == tok_->bos_id()) ++k;
      ids.erase(ids.begin() + 1, ids.begin() + static_cast<std::ptrdiff_t>(k));
    }
    return ids;
  };
  NIBBLE_ASSIGN_OR_RETURN(auto all, tokens_for(0));
  if (static_cast<int64_t>(all.size()) <= budget) return all;
  // Drop the oldest messages after a leading system message, keeping the last one: the fewest
  // that make it fit (binary search; fewer messages never render longer).
  const size_t first = !messages.empty() && (messages[0].role == "system" || messages[0].role == "developer") ? 1 : 0;
  if (messages.size() <= first + 1) {
    return make_error(ErrorCode::kOutOfRange,
                      "the prompt is %zu tokens, more than the %lld the context leaves for it "
                      "(raise num_ctx)",
                      all.size(), static_cast<long long>(budget));
  }
  size_t lo = 1, hi = messages.size() - first - 1;  // candidates for the number dropped
  NIBBLE_ASSIGN_OR_RETURN(auto most, tokens_for(hi));
  if (static_cast<int64_t>(most.size()) > budget) {
    return make_error(ErrorCode::kOutOfRange,
                      "the last message alone is %zu tokens with the template, more than the %lld "
                      "the context leaves for it (raise num_ctx)",
                      most.size(), static_cast<long long>(budget));
  }
  std::vector<int32_t> best = std::move(most);
  size_t best_k = hi;
  while (lo < hi) {
    const size_t mid = lo + (hi - lo) / 2;
    NIBBLE_ASSIGN_OR_RETURN(auto t, tokens_for(mid));
    if (static_cast<int64_t>(t.size()) <= budget) {
      hi = mid;
      best = std::move(t);
      best_k = mid;
    } else {
      lo = mid + 1;
    }
  }
  if (dropped != nullptr) *dropped = static_cast<int>(best_k);
  return best;
}

Status Engine::prepare_session(const ModelParams& p) {
  NIBBLE_ASSIGN_OR_RETURN(SessionOptions so, session_options_for(p));
  const int64_t n_ctx = context_for(p);
  const int64_t train = model_->info().n_ctx_train;
  if (p.num_ctx && train > 0 && *p.num_ctx > train) {
    return make_error(ErrorCode::kOutOfRange,
                      "parameter num_ctx: %lld is more than the model's training context of %lld",
                      static_cast<long long>(*p.num_ctx), static_cast<long long>(train));
  }
  so.n_ctx = n_ctx;
  const bool same = session_ && session_->n_ctx() == n_ctx &&
                    session_->kv_cache().types().full == so.kv_type_full &&
                    session_->kv_cache().types().swa == so.kv_type_swa &&
                    session_->kv_cache().types().recent == so.kv_recent &&
                    session_->kv_cache().flash() == (so.flash_attn != FlashAttn::kOff);
  if (same) return ok_status();
  session_.reset();
  cached_.clear();
  NIBBLE_ASSIGN_OR_RETURN(session_, Session::create(*model_, so));
  return ok_status();
}

Result<GenerateResult> Engine::generate(const std::vector<int32_t>& prompt, const ModelParams& params,
                                        const std::atomic<bool>* cancel, const OnDelta& on_delta) {
  const SamplerParams sp = params.sampler();
  NIBBLE_TRY(sp.validate());
  if (prompt.empty()) return make_error(ErrorCode::kInvalidArgument, "the prompt is empty");
  NIBBLE_TRY(prepare_session(params));
  Session& s = *session_;
  const int64_t n_ctx = s.n_ctx();
  if (static_cast<int64_t>(prompt.size()) >= n_ctx) {
    return make_error(ErrorCode::kOutOfRange,
                      "the prompt is %zu tokens, the context holds %lld (raise num_ctx)",
                      prompt.size(), static_cast<long long>(n_ctx));
  }
  using clock = std::chrono::steady_clock;
  GenerateResult r;
  r.prompt_tokens = static_cast<int64_t>(prompt.size());
  const auto t0 = clock::now();
  size_t start = 0;
  if (!cached_.empty() && cached_.size() < prompt.size() &&
      std::equal(cached_.begin(), cached_.end(), prompt.begin())) {
    start = cached_.size();
  } else {
    s.reset();
    cached_.clear();
  }
  std::vector<float> logits;
  const size_t chunk = 256;
  for (size_t i = start; i < prompt.size(); i += chunk) {
    if (cancel != nullptr && cancel->load()) {
      r.done_reason = "cancel";
      return r;
    }
    const size_t n = std::min(chunk, prompt.size() - i);
    Status st = s.eval(std::span<const int32_t>(prompt.data() + i, n), false, logits);
    if (!st.ok()) {
      s.reset();
      cached_.clear();
      return st.take_error();
    }
    cached_.insert(cached_.end(), prompt.begin() + static_cast<std::ptrdiff_t>(i),
                   prompt.begin() + static_cast<std::ptrdiff_t>(i + n));
  }
  r.prompt_evaluated = static_cast<int64_t>(prompt.size() - start);
  const auto t1 = clock::now();

  Sampler sampler(sp);
  const size_t hist = std::min(prompt.size(), static_cast<size_t>(sp.repeat_last_n));
  for (size_t i = prompt.size() - hist; i < prompt.size(); ++i) sampler.accept(prompt[i]);
  OutputParser parser(*tok_, params.stop);
  const int64_t limit = params.predict_limit() < 0 ? std::numeric_limits<int64_t>::max()
                                                   : params.predict_limit();
  std::string content, thinking;
  auto deliver = [&]() {
    bool go_on = true;
    if (!content.empty() || !thinking.empty()) {
      r.content += content;
      r.thinking += thinking;
      if (on_delta) go_on = on_delta(content, thinking);
      content.clear();
      thinking.clear();
    }
    return go_on;
  };
  r.done_reason = "length";
  while (r.eval_tokens < limit) {
    if (cancel != nullptr && cancel->load()) {
      r.done_reason = "cancel";
      break;
    }
    const int32_t next = sampler.sample(logits);
    sampler.accept(next);
    if (std::find(stop_ids_.begin(), stop_ids_.end(), next) != stop_ids_.end()) {
      r.done_reason = "stop";
      break;
    }
    ++r.eval_tokens;
    const bool stopped = parser.push(next, content, thinking);
    if (!deliver()) {
      r.done_reason = "cancel";
      break;
    }
    if (stopped) {
      r.done_reason = "stop";
      break;
    }
    if (r.eval_tokens >= limit || s.n_past() >= n_ctx) break;
    Status st = s.eval(std::span<const int32_t>(&next, 1), false, logits);
    if (!st.ok()) return st.take_error();
    cached_.push_back(next);
  }
  if (r.done_reason != "cancel") {
    parser.flush(content, thinking);
    deliver();
  }
  r.prompt_seconds = std::chrono::duration<double>(t1 - t0).count();
  r.eval_seconds = std::chrono::duration<double>(clock::now() - t1).count();
  return r;
}

}  // namespace nibble
