// Session: input checks and the batched prefill / decode loop.
#include "runtime/session.h"

#include <algorithm>

namespace nibble {

Result<std::unique_ptr<Session>> Session::create(const Model& model, SessionOptions opts) {
  int64_t n_ctx = opts.n_ctx;
  const int64_t train = model.info().n_ctx_train;
  if (n_ctx < 0) {
    return make_error(ErrorCode::kInvalidArgument, "session: context size %lld is negative",
                      static_cast<long long>(n_ctx));
  }
  if (n_ctx == 0)
    n_ctx = train > 0 ? std::min(train, SessionOptions::kDefaultCtx) : SessionOptions::kDefaultCtx;
  if (n_ctx > (int64_t{1} << 24)) {
    return make_error(ErrorCode::kInvalidArgument, "session: context size %lld is too large",
                      static_cast<long long>(n_ctx));
  }
  if (opts.n_batch < 1) {
    return make_error(ErrorCode::kInvalidArgument, "session: batch size %lld must be >= 1",
                      static_cast<long long>(opts.n_batch));
  }
  const int64_t n_batch = std::min(opts.n_batch, n_ctx);
  KvTypes types{opts.kv_type_full, opts.kv_type_swa};
  types.recent = opts.kv_recent;
  Status kv_ok = KvCache::check(model.kv_layout(), types);
  if (!kv_ok.ok())
    return make_error(kv_ok.error().code, "session: %s", kv_ok.error().message.c_str());
  const bool flash = opts.flash_attn != FlashAttn::kOff;
  return std::unique_ptr<Session>(new Session(model, n_ctx, n_batch, types, flash));
}

Status Session::eval(std::span<const int32_t> tokens, bool all_logits, std::vector<float>& logits) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  const int64_t n_vocab = model_.info().n_vocab;
  if (n == 0) return make_error(ErrorCode::kInvalidArgument, "session: no tokens to evaluate");
  for (int64_t i = 0; i < n; ++i) {
    if (tokens[i] < 0 || tokens[i] >= n_vocab) {
      return make_error(ErrorCode::kOutOfRange,
                        "token id %d at index %lld is out of range [0, %lld)", tokens[i],
                        static_cast<long long>(i), static_cast<long long>(n_vocab));
    }
  }
  if (n_past_ + n > cache_.n_ctx()) {
    return make_error(ErrorCode::kOutOfRange,
                      "%lld tokens do not fit in the context: %lld already used of %lld",
                      static_cast<long long>(n), static_cast<long long>(n_past_),
                      static_cast<long long>(cache_.n_ctx()));
  }
  logits.resize(static_cast<size_t>((all_logits ? n : 1) * n_vocab));
  for (int64_t start = 0; start < n; start += n_batch_) {
    const int64_t nb = std::min(n_batch_, n - start);
    const bool last_batch = start + nb == n;
    if (!all_logits && !last_batch) {
      // Logits of a middle batch are not needed; evaluate with a throwaway last-token output.
      std::vector<float> scratch(static_cast<size_t>(n_vocab));
      model_.forward(tokens.data() + start, nb, n_past_, cache_.views(), false, scratch.data());
    } else {
      float* out = all_logits ? logits.data() + start * n_vocab : logits.data();
      model_.forward(tokens.data() + start, nb, n_past_, cache_.views(), all_logits, out);
    }
    n_past_ += nb;
  }
  return ok_status();
}

}  // namespace nibble
