// nibble convert HF_DIR -o OUT.gguf [--type f32|f16|bf16|q8_0|q4_0]
#include <cstdio>
#include <unistd.h>

#include "cli/command.h"
#include "convert/gemma4_converter.h"
#include "util/atomic_file.h"
#include "util/progress.h"

namespace nibble::cli {
namespace {

void setup(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("convert", "Convert a Hugging Face Gemma 4 checkpoint to GGUF");
  auto dir = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto type = std::make_shared<std::string>("bf16");
  cmd->add_option("HF_DIR", *dir, "Checkpoint folder (config.json, *.safetensors, tokenizer)")->required();
  cmd->add_option("-o,--output", *out, "Output GGUF file")->required();
  cmd->add_option("--type", *type, "Tensor type: f32, f16, bf16 (default), q8_0, q4_0")
      ->check(CLI::IsMember({"f32", "f16", "bf16", "q8_0", "q4_0"}, CLI::ignore_case));
  cmd->callback([dir, out, type, &exit_code] {
    remove_partial_outputs_on_signals();
    ConvertOptions opt;
    opt.hf_dir = *dir;
    opt.out_path = *out;
    opt.type = *ggml_type_from_name(*type);
    opt.note = [](const std::string& s) { std::fprintf(stderr, "convert: %s\n", s.c_str()); };
    std::unique_ptr<ProgressBar> pb;
    opt.progress = [&pb](uint64_t done, uint64_t total) {
      if (!pb) pb = std::make_unique<ProgressBar>("converting", total, true);
      pb->update(done);
    };
    auto r = convert_gemma4_checkpoint(opt);
    if (pb) pb->finish();
    if (!r.ok()) {
      exit_code = fail("convert: " + r.error().message);
      return;
    }
    const auto& s = r.value();
    std::fprintf(stderr, "convert: wrote %s: %llu tensors, %llu parameters, %s of tensor data (%s)\n",
                 out->c_str(), static_cast<unsigned long long>(s.n_tensors),
                 static_cast<unsigned long long>(s.n_params), format_bytes(s.n_bytes).c_str(),
                 type->c_str());
  });
}

}  // namespace
NIBBLE_REGISTER_COMMAND(convert, 10, setup);
}  // namespace nibble::cli
