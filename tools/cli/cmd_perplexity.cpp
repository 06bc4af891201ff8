// nibble perplexity MODEL.gguf -f TEXT [--ctx 256] [--json]: the protocol of
// shared/models/README.md. The text is tokenized whole (no BOS), cut into non-overlapping chunks
// of ctx - 1 tokens (a final partial chunk is dropped); each chunk is evaluated as
// [BOS] + chunk[:-1] and every one of its tokens is scored; ppl = exp(total NLL / tokens).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "model/registry.h"
#include "runtime/session.h"
#include "tokenizer/tokenizer.h"

namespace nibble::cli {
namespace {

struct Options {
  std::string model, file;
  int64_t ctx = 256;
  bool json = false;
};

int run(const Options& o) {
  if (o.ctx < 2) return fail("perplexity: --ctx must be >= 2");
  std::ifstream in(o.file, std::ios::binary);
  if (!in) return fail("perplexity: cannot read '" + o.file + "'");
  const std::string text((std::istreambuf_iterator<char>(in)), {});
  auto model = load_model(o.model);
  if (!model.ok()) return fail("perplexity: " + model.error().message);
  auto tok = Tokenizer::from_gguf((*model)->file().metadata());
  if (!tok.ok()) return fail("perplexity: " + tok.error().message);
  const std::vector<int32_t> ids = (*tok)->encode(text, /*add_bos=*/false, /*parse_special=*/false);
  const int32_t bos = (*tok)->bos_id() >= 0 ? (*tok)->bos_id() : 2;
  const int64_t chunk = o.ctx - 1;
  const int64_t n_chunks = static_cast<int64_t>(ids.size()) / chunk;
  if (n_chunks == 0) {
    return fail("perplexity: '" + o.file + "' has " + std::to_string(ids.size()) +
                " tokens, fewer than one chunk of " + std::to_string(chunk));
  }
  SessionOptions so;
  so.n_ctx = o.ctx;
  so.n_batch = o.ctx;
  auto session = Session::create(**model, so);
  if (!session.ok()) return fail("perplexity: " + session.error().message);
  Session& s = **session;
  const int64_t n_vocab = s.n_vocab();
  std::vector<int32_t> input(static_cast<size_t>(chunk));
  std::vector<float> logits;
  double nll = 0.0;
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t c = 0; c < n_chunks; ++c) {
    const int32_t* text_ids = ids.data() + c * chunk;
    input[0] = bos;
    std::copy(text_ids, text_ids + chunk - 1, input.begin() + 1);
    s.reset();
    Status st = s.eval(input, true, logits);
    if (!st.ok()) return fail("perplexity: " + st.error().message);
    for (int64_t i = 0; i < chunk; ++i) {
      const float* l = logits.data() + i * n_vocab;
      float mx = l[0];
      for (int64_t v = 1; v < n_vocab; ++v) mx = l[v] > mx ? l[v] : mx;
      double sum = 0.0;
      for (int64_t v = 0; v < n_vocab; ++v) sum += std::exp(static_cast<double>(l[v]) - mx);
      nll += std::log(sum) + mx - l[text_ids[i]];
    }
    if (!o.json) {
      std::fprintf(stderr, "\rchunk %lld/%lld: ppl %.4f", static_cast<long long>(c + 1),
                   static_cast<long long>(n_chunks), std::exp(nll / ((c + 1) * chunk)));
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const int64_t n_scored = n_chunks * chunk;
  const double ppl = std::exp(nll / static_cast<double>(n_scored));
  if (o.json) {
    nlohmann::json j;
    j["ppl"] = ppl;
    j["tokens"] = n_scored;
    j["chunks"] = n_chunks;
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::fprintf(stderr, "\n");
    std::printf("perplexity: %.4f over %lld tokens (%lld chunks of %lld), %.1f tokens/s\n", ppl,
                static_cast<long long>(n_scored), static_cast<long long>(n_chunks),
                static_cast<long long>(chunk), n_scored / secs);
  }
  return 0;
}

void setup(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("perplexity", "Perplexity of a model on a text file");
  auto o = std::make_shared<Options>();
  cmd->add_option("MODEL", o->model, "GGUF model")->required();
  cmd->add_option("-f,--file", o->file, "Text file")->required();
  cmd->add_option("--ctx", o->ctx, "Chunk size including BOS (chunks of ctx - 1 text tokens)")
      ->capture_default_str();
  cmd->add_flag("--json", o->json, "Print {\"ppl\":..,\"tokens\":..,\"chunks\":..}");
  cmd->callback([o, &exit_code] { exit_code = run(*o); });
}

}  // namespace
NIBBLE_REGISTER_COMMAND(perplexity, 42, setup);
}  // namespace nibble::cli
