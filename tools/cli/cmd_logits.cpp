// nibble logits MODEL.gguf --tokens 2,17,9 --out FILE.f32 [--incremental] [--batch N]:
// logits at every position as raw little-endian float32 [n_tokens, n_vocab]. One prompt pass by
// default; --incremental feeds one token at a time (the two must agree).
#include <cstdio>
#include <memory>

#include "cli/command.h"
#include "cli/gen_options.h"
#include "model/registry.h"
#include "runtime/session.h"

namespace nibble::cli {
namespace {

struct Options {
  std::string model, tokens, out;
  bool incremental = false;
  int64_t batch = 0;
  int64_t ctx = 0;
  KvFlags kv;
};

int run(const Options& o) {
  SessionOptions so;
  if (Status kv = apply_kv_flags(o.kv, so); !kv.ok()) return fail("logits: " + kv.error().message);
  auto ids = parse_token_list(o.tokens);
  if (!ids.ok()) return fail("logits: " + ids.error().message);
  auto model = load_model(o.model);
  if (!model.ok()) return fail("logits: " + model.error().message);
  const int64_t n = static_cast<int64_t>(ids->size());
  so.n_ctx = o.ctx > 0 ? o.ctx : n;
  so.n_batch = o.incremental ? 1 : (o.batch > 0 ? o.batch : n);
  auto session = Session::create(**model, so);
  if (!session.ok()) return fail("logits: " + session.error().message);
  const int64_t n_vocab = (*session)->n_vocab();
  std::vector<float> all(static_cast<size_t>(n * n_vocab));
  std::vector<float> logits;
  if (o.incremental) {
    for (int64_t t = 0; t < n; ++t) {
      Status st = (*session)->eval(std::span<const int32_t>(ids->data() + t, 1), true, logits);
      if (!st.ok()) return fail("logits: " + st.error().message);
      std::copy(logits.begin(), logits.end(), all.begin() + t * n_vocab);
    }
  } else {
    Status st = (*session)->eval(*ids, true, all);
    if (!st.ok()) return fail("logits: " + st.error().message);
  }
  std::FILE* f = std::fopen(o.out.c_str(), "wb");
  if (f == nullptr) return fail("logits: cannot open '" + o.out + "' for writing");
  const size_t written = std::fwrite(all.data(), sizeof(float), all.size(), f);
  const bool closed = std::fclose(f) == 0;
  if (written != all.size() || !closed) return fail("logits: writing '" + o.out + "' failed");
  return 0;
}

void setup(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand(
      "logits", "Write the logits at every position as raw float32 [n_tokens, n_vocab]");
  auto o = std::make_shared<Options>();
  cmd->add_option("MODEL", o->model, "GGUF model")->required();
  cmd->add_option("--tokens", o->tokens, "Comma-separated token ids, e.g. 2,17,9")->required();
  cmd->add_option("--out", o->out, "Output file (raw little-endian float32)")->required();
  cmd->add_flag("--incremental", o->incremental, "Evaluate one token at a time");
  cmd->add_option("--batch", o->batch, "Tokens per forward call (default: all at once)");
  cmd->add_option("--ctx", o->ctx, "Context size (default: the number of tokens)");
  add_kv_options(cmd, o->kv);
  cmd->callback([o, &exit_code] { exit_code = run(*o); });
}

}  // namespace
NIBBLE_REGISTER_COMMAND(logits, 40, setup);
}  // namespace nibble::cli
