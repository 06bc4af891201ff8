// nibble generate MODEL.gguf --tokens IDS -n N [--greedy | sampling flags]: continues a token
// sequence and prints the generated ids separated by spaces. Stops early at the end-of-sequence
// token unless --ignore-eos.
#include <cstdio>
#include <memory>

#include "cli/command.h"
#include "cli/gen_options.h"
#include "cli/memory_report.h"
#include "model/registry.h"
#include "runtime/session.h"
#include "sampling/sampler.h"

namespace nibble::cli {
namespace {

struct Options {
  std::string model, tokens;
  int64_t n_predict = 32;
  bool greedy = false;
  bool ignore_eos = false;
  int64_t ctx = 0;
  SamplerParams sampling;
  MemoryReportFlags mem;  // --memory-report
  KvFlags kv;
};

int run(Options o) {
  MemoryReporter mem_reporter;  // --memory-report: RSS before loading
  if (o.greedy) o.sampling.temperature = 0.0f;
  SessionOptions so;
  if (Status kv = apply_kv_flags(o.kv, so); !kv.ok()) return fail("generate: " + kv.error().message);
  Status valid = o.sampling.validate();
  if (!valid.ok()) return fail("generate: " + valid.error().message);
  if (o.n_predict < 0) return fail("generate: -n must be >= 0");
  auto ids = parse_token_list(o.tokens);
  if (!ids.ok()) return fail("generate: " + ids.error().message);
  auto model = load_model(o.model);
  if (!model.ok()) return fail("generate: " + model.error().message);
  const auto& md = (*model)->file().metadata();
  int32_t eos = -1;
  if (md.contains("tokenizer.ggml.eos_token_id")) {
    auto e = md.get_u32("tokenizer.ggml.eos_token_id");
    if (e.ok()) eos = static_cast<int32_t>(e.value());
  }
  so.n_ctx = o.ctx;
  auto session = Session::create(**model, so);
  if (!session.ok()) return fail("generate: " + session.error().message);
  const int64_t n_prompt = static_cast<int64_t>(ids->size());
  if (n_prompt + o.n_predict > (*session)->n_ctx()) {
    return fail("generate: prompt of " + std::to_string(n_prompt) + " tokens plus -n " +
                std::to_string(o.n_predict) + " exceeds the context of " +
                std::to_string((*session)->n_ctx()) + " tokens (use --ctx)");
  }
  if (o.mem.enabled()) mem_reporter.before_eval(**model, (*session)->kv_cache());
  Sampler sampler(o.sampling);
  for (int32_t id : *ids) sampler.accept(id);
  std::vector<float> logits;
  Status st = (*session)->eval(*ids, false, logits);
  if (!st.ok()) return fail("generate: " + st.error().message);
  std::string out;
  for (int64_t i = 0; i < o.n_predict; ++i) {
    const int32_t next = sampler.sample(logits);
    sampler.accept(next);
    out += (i > 0 ? " " : "") + std::to_string(next);
    if (next == eos && !o.ignore_eos) break;
    if (i + 1 == o.n_predict) break;
    st = (*session)->eval(std::span<const int32_t>(&next, 1), false, logits);
    if (!st.ok()) return fail("generate: " + st.error().message);
  }
  std::printf("%s\n", out.c_str());
  if (std::string e = emit_memory_report(o.mem, mem_reporter, **model, (*session)->kv_cache(),
                                       (*session)->n_past(), false);
      !e.empty())
    return fail("generate: " + e);
  return 0;
}

void setup(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("generate", "Continue a sequence of token ids; print the new ids");
  auto o = std::make_shared<Options>();
  cmd->add_option("MODEL", o->model, "GGUF model")->required();
  cmd->add_option("--tokens", o->tokens, "Comma-separated prompt token ids")->required();
  cmd->add_option("-n,--n-predict", o->n_predict, "Tokens to generate")->capture_default_str();
  cmd->add_flag("--greedy", o->greedy, "Always take the most likely token (same as --temp 0)");
  cmd->add_flag("--ignore-eos", o->ignore_eos, "Keep generating after the end-of-sequence token");
  cmd->add_option("--ctx", o->ctx, "Context size (default: the model's, at most 4096)");
  add_sampling_options(cmd, o->sampling);
  add_memory_report_options(cmd, o->mem);
  add_kv_options(cmd, o->kv);
  cmd->callback([o, &exit_code] { exit_code = run(*o); });
}

}  // namespace
NIBBLE_REGISTER_COMMAND(generate, 41, setup);
}  // namespace nibble::cli
