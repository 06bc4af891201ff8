// `nibble tokenize MODEL.gguf (-f FILE | -p TEXT) [--bos] [--special] [--ids]`: prints the token
// ids of a text with the model's tokenizer. With --ids, one line of space-separated ids;
// otherwise one "id<TAB>'piece'" line per token (control characters in the piece escaped, byte
// tokens shown as <0xXX>). Reads only the GGUF's metadata, never its tensors.
#include <cstdio>
#include <memory>
#include <string>

#include "cli/command.h"
#include "util/text.h"
#include "gguf/gguf_file.h"
#include "tokenizer/tokenizer.h"
#include "util/mapped_file.h"

namespace nibble::cli {

namespace {

struct TokenizeOptions {
  std::string model;
  std::string file;
  std::string prompt;
  bool bos = false;
  bool special = false;
  bool ids_only = false;
  CLI::Option* file_opt = nullptr;
  CLI::Option* prompt_opt = nullptr;
};

constexpr uint64_t kMaxInputBytes = 1ull << 30;

// The piece as it would print, made safe for one line (control bytes and stray UTF-8 bytes
// escaped; byte tokens shown by name).
std::string printable_piece(const Tokenizer& tok, int32_t id) {
  const auto type = static_cast<TokenType>(tok.vocab().types[id]);
  if (type == TokenType::kByte) return tok.vocab().tokens[id];
  const std::string bytes = tok.token_to_bytes(id, /*render_special=*/true);
  return printable(bytes, bytes.size());
}

int run_tokenize(const TokenizeOptions& o) {
  const bool has_file = o.file_opt->count() > 0;
  const bool has_prompt = o.prompt_opt->count() > 0;
  if (has_file == has_prompt) return fail("tokenize: give exactly one of -f FILE or -p TEXT");
  std::string text = o.prompt;
  if (has_file) {
    auto r = read_file_to_string(o.file, kMaxInputBytes);
    if (!r.ok()) return fail("tokenize: " + r.error().message);
    text = std::move(r).value();
  }
  auto gguf = GgufFile::open(o.model);
  if (!gguf.ok()) return fail("tokenize: " + gguf.error().message);
  auto tok = Tokenizer::from_gguf(gguf.value()->metadata());
  if (!tok.ok()) return fail("tokenize: " + o.model + ": " + tok.error().message);

  const std::vector<int32_t> ids = tok.value()->encode(text, o.bos, o.special);
  std::string out;
  if (o.ids_only) {
    for (size_t i = 0; i < ids.size(); ++i) {
      if (i > 0) out.push_back(' ');
      out += std::to_string(ids[i]);
    }
    out.push_back('\n');
  } else {
    for (int32_t id : ids) {
      out += std::to_string(id);
      out += "\t'";
      out += printable_piece(*tok.value(), id);
      out += "'\n";
    }
  }
  if (std::fwrite(out.data(), 1, out.size(), stdout) != out.size()) {
    return fail("tokenize: cannot write to stdout");
  }
  return 0;
}

}  // namespace

NIBBLE_REGISTER_COMMAND(tokenize, 40, [](CLI::App& app, int& exit_code) {
  auto opts = std::make_shared<TokenizeOptions>();
  CLI::App* cmd = app.add_subcommand("tokenize", "Print the token ids of a text");
  cmd->add_option("model", opts->model, "GGUF model file (only its tokenizer is read)")->required();
  opts->file_opt = cmd->add_option("-f,--file", opts->file, "Read the text from FILE");
  opts->prompt_opt = cmd->add_option("-p,--prompt", opts->prompt, "The text itself");
  opts->file_opt->excludes(opts->prompt_opt);
  cmd->add_flag("--bos", opts->bos, "Prepend the BOS token");
  cmd->add_flag("--special", opts->special,
                "Turn special-token strings in the text (e.g. <|turn>) into their ids");
  cmd->add_flag("--ids", opts->ids_only, "Print only the ids, separated by spaces");
  cmd->callback([opts, &exit_code] { exit_code = run_tokenize(*opts); });
});

}  // namespace nibble::cli
