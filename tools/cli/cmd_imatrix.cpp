// nibble imatrix MODEL.gguf -f TEXT [-o imatrix.gguf] [--ctx 512] [--chunks N]: an importance
// matrix in llama.cpp's GGUF imatrix format (quality/imatrix_collector.h), for llama-quantize
// --imatrix and nibble quantize --imatrix. The text is chunked as `nibble perplexity` chunks it
// (ctx - 1 text tokens per chunk); each chunk is evaluated as [BOS] + its ctx - 1 tokens, ctx
// tokens in all, like llama-imatrix, so every weight's count is chunks * ctx (experts: the tokens
// routed to them). The output head is not collected (llama-imatrix's default).
#include <cstdio>
#include <memory>

#include "cli/command.h"
#include "cli/text_chunks.h"
#include "model/registry.h"
#include "quality/imatrix_collector.h"
#include "runtime/session.h"
#include "tokenizer/tokenizer.h"
#include "util/atomic_file.h"
#include "util/progress.h"

namespace nibble::cli {
namespace {

struct Options {
  std::string model, file, out = "imatrix.gguf";
  int64_t ctx = 512;
  int64_t chunks = 0;  // 0: all
};

int run(const Options& o) {
  if (o.ctx < 2) return fail("imatrix: --ctx must be >= 2");
  if (o.ctx > (int64_t{1} << 24)) return fail("imatrix: --ctx is too large");
  if (o.chunks < 0) return fail("imatrix: --chunks must be >= 0");
  if (!std::ifstream(o.file, std::ios::binary))
    return fail("imatrix: cannot read '" + o.file + "'");
  remove_partial_outputs_on_signals();
  auto model = load_model(o.model);
  if (!model.ok()) return fail("imatrix: " + model.error().message);
  auto tok = Tokenizer::from_gguf((*model)->file().metadata());
  if (!tok.ok()) return fail("imatrix: " + tok.error().message);
  auto text = read_text_chunks(o.file, **tok, o.ctx);
  if (!text.ok()) return fail("imatrix: " + text.error().message);
  const TextChunks& tc = *text;
  const int64_t n_chunks = o.chunks > 0 ? std::min(o.chunks, tc.n_chunks) : tc.n_chunks;

  SessionOptions so;
  so.n_ctx = o.ctx;
  so.n_batch = o.ctx;
  auto session = Session::create(**model, so);
  if (!session.ok()) return fail("imatrix: " + session.error().message);
  ImatrixCollector collector;
  (*model)->set_activation_observer(&collector);
  std::vector<int32_t> input(static_cast<size_t>(o.ctx));
  std::vector<float> logits;
  {
    ProgressBar bar("imatrix", static_cast<uint64_t>(n_chunks));
    for (int64_t c = 0; c < n_chunks; ++c) {
      input[0] = tc.bos;
      std::copy(tc.text(c), tc.text(c) + tc.chunk, input.begin() + 1);
      (*session)->reset();
      Status st = (*session)->eval(input, /*all_logits=*/false, logits);
      if (!st.ok()) {
        (*model)->set_activation_observer(nullptr);
        return fail("imatrix: " + st.error().message);
      }
      bar.update(static_cast<uint64_t>(c + 1));
    }
  }
  (*model)->set_activation_observer(nullptr);
  Status st = collector.write(o.out, {o.file}, static_cast<uint32_t>(n_chunks),
                              static_cast<uint32_t>(o.ctx));
  if (!st.ok()) return fail("imatrix: " + st.error().message);
  std::fprintf(stderr, "imatrix: wrote %s: %zu weights, %lld chunks of %lld tokens\n",
               o.out.c_str(), collector.entries().size(), static_cast<long long>(n_chunks),
               static_cast<long long>(o.ctx));
  return 0;
}

void setup(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand(
      "imatrix", "Importance matrix (llama.cpp GGUF imatrix format) for quantize --imatrix");
  cmd->footer(
      "For every weight matrix used in a matmul (attention q/k/v/output, FFN gate/up/down, MoE\n"
      "router and each expert's slice, PLE projections) the file holds <name>.in_sum2 (the sum\n"
      "over tokens of each input column's squared activation), <name>.counts (tokens; per\n"
      "expert, the tokens routed to it) and <name>.in_sum; llama-quantize uses in_sum2/counts.");
  auto o = std::make_shared<Options>();
  cmd->add_option("MODEL", o->model, "GGUF model (ideally BF16/F32)")->required();
  cmd->add_option("-f,--file", o->file, "Calibration text file")->required();
  cmd->add_option("-o,--output", o->out, "Output imatrix GGUF")->capture_default_str();
  cmd->add_option("--ctx", o->ctx, "Tokens per chunk, including BOS")->capture_default_str();
  cmd->add_option("--chunks", o->chunks, "Use at most N chunks (default: the whole text)");
  cmd->callback([o, &exit_code] { exit_code = run(*o); });
}

}  // namespace
NIBBLE_REGISTER_COMMAND(imatrix, 44, setup);
}  // namespace nibble::cli
