// nibble quantize IN.gguf OUT.gguf TYPE [--imatrix FILE] [--output-type T] [--embd-type T]
//                 [--tensor-type REGEX=T]... [--pure] [--threads N]
// llama-quantize's recipes (quant/recipe.h) over a GGUF model; see quant/quantize_model.h.
#include <csignal>
#include <cstdio>
#include <memory>

#include "cli/command.h"
#include "quant/quantize_model.h"
#include "util/atomic_file.h"
#include "util/progress.h"

namespace nibble::cli {
namespace {

void on_signal(int sig) {
  atomic_file_cleanup_all();  // never leave a partial output file behind
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

std::string type_list() {
  std::string s;
  for (const auto& f : ftype_table()) {
    if (!s.empty()) s += ", ";
    s += f.cli_name;
  }
  return s + " (aliases Q3_K, Q4_K, Q5_K = the _M variants)";
}

struct Args {
  std::string in, out, type, imatrix, output_type, embd_type;
  std::vector<std::string> tensor_types;
  bool pure = false;
  int threads = 0;
};

int run(const Args& a) {
  QuantizeOptions o;
  o.input_path = a.in;
  o.output_path = a.out;
  const auto ftype = parse_ftype(a.type);
  if (!ftype) return fail("quantize: unknown type '" + a.type + "'; one of " + type_list());
  o.ftype = *ftype;
  o.imatrix_path = a.imatrix;
  o.n_threads = a.threads;
  o.recipe.pure = a.pure;
  auto parse_type = [](const std::string& name, const char* flag, std::optional<GgmlType>& dst) {
    if (name.empty()) return true;
    dst = ggml_type_from_name(name);
    if (!dst) {
      fail(std::string("quantize: ") + flag + ": unknown type '" + name + "'");
      return false;
    }
    return true;
  };
  if (!parse_type(a.output_type, "--output-type", o.recipe.output_type)) return 1;
  if (!parse_type(a.embd_type, "--embd-type", o.recipe.embd_type)) return 1;
  bool sfp8 = o.ftype == LlamaFtype::NIBBLE_SFP8 || o.recipe.output_type == GgmlType::SFP8 ||
              o.recipe.embd_type == GgmlType::SFP8;
  for (const auto& tt : a.tensor_types) {
    auto r = parse_tensor_type_override(tt);
    if (!r.ok()) return fail(r.error().message);
    sfp8 |= r.value().type == GgmlType::SFP8;
    o.recipe.tensor_types.push_back(std::move(r.value()));
  }
  if (sfp8) {
    std::fprintf(
        stderr,
        "quantize: warning: SFP8 is a nibble extension (GGUF tensor type %u): llama.cpp and "
        "Ollama cannot read SFP8 files\n",
        kNibbleSfp8TypeId);
  }
  o.note = [](const std::string& s) { std::fprintf(stderr, "quantize: %s\n", s.c_str()); };
  std::unique_ptr<ProgressBar> pb;
  o.progress = [&pb](uint64_t done, uint64_t total) {
    if (!pb) pb = std::make_unique<ProgressBar>("quantizing", total, true);
    pb->update(done);
  };
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  auto r = quantize_model(o);
  if (pb) pb->finish();
  if (!r.ok()) return fail(r.error().message);
  std::printf("%s", format_quantize_summary(r.value()).c_str());
  return 0;
}

void setup(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand(
      "quantize",
      "Quantize a GGUF model with llama-quantize's recipes (Q4_K_M, Q8_0, ...) or SFP8");
  auto a = std::make_shared<Args>();
  cmd->add_option("IN", a->in, "Input GGUF (F32/F16/BF16 or already quantized)")->required();
  cmd->add_option("OUT", a->out, "Output GGUF (written atomically)")->required();
  cmd->add_option("TYPE", a->type, "File type: " + type_list())->required();
  cmd->add_option("--imatrix", a->imatrix, "Importance matrix (llama-imatrix GGUF or legacy .dat)");
  cmd->add_option("--output-type", a->output_type, "Type of output.weight (e.g. q8_0, q6_K, f16)");
  cmd->add_option("--embd-type", a->embd_type, "Type of the token embeddings");
  cmd->add_option(
      "--tensor-type", a->tensor_types,
      "REGEX=TYPE: tensors whose name matches REGEX get TYPE (first match wins; repeatable)");
  cmd->add_flag("--pure", a->pure,
                "No k-quant mixtures: every quantizable tensor gets the default type");
  cmd->add_option("-t,--threads", a->threads, "Threads (default: all)");
  cmd->callback([a, &exit_code] { exit_code = run(*a); });
}

}  // namespace
NIBBLE_REGISTER_COMMAND(quantize, 15, setup);
}  // namespace nibble::cli
