// nibble show NAME [--modelfile|--parameters|--template|--system|--license]: what a store entry
// (or a .gguf) is and how it runs.
#include "chat/chat_template.h"
#include "chat/model_summary.h"
#include "cli/command.h"
#include "cli/gen_options.h"
#include "gguf/gguf_file.h"
#include "store/modelfile.h"
#include "store/store.h"
#include "util/progress.h"

namespace nibble::cli {
namespace {

struct Options {
  std::string name;
  bool modelfile = false, parameters = false, template_ = false, system = false, license = false;
};

int run(const Options& o) {
  const ModelStore store = ModelStore::open_default(default_model_path());
  auto e = store.resolve(o.name);
  if (!e.ok()) return fail("show: " + e.error().message);
  if (o.modelfile) {
    std::printf("%s", entry_to_modelfile(*e).c_str());
    return 0;
  }
  if (o.parameters) {
    std::printf("%s", e->params.to_lines().c_str());
    return 0;
  }
  if (o.system) {
    std::printf("%s\n", e->system.c_str());
    return 0;
  }
  if (o.license) {
    std::printf("%s\n", e->license.c_str());
    return 0;
  }
  auto f = GgufFile::open(e->model_path);
  if (!f.ok()) return fail("show: " + f.error().message);
  std::string jinja;
  if (const GgufValue* v = (*f)->metadata().find("tokenizer.chat_template"); v != nullptr && v->type() == GgufType::kString) {
    jinja = v->string();
  }
  const ChatTemplate gguf_t = ChatTemplate::from_gguf(jinja);
  auto t = e->chat_template(gguf_t);
  if (o.template_) {
    std::printf("%s\n", e->template_text.empty() ? jinja.c_str() : e->template_text.c_str());
    return 0;
  }
  const ModelSummary s = summarize_gguf(**f);
  std::printf("  Model\n");
  std::printf("    name                %s\n", e->name.c_str());
  std::printf("    file                %s\n", e->model_path.c_str());
  std::printf("    architecture        %s\n", s.arch.c_str());
  std::printf("    parameters          %s\n", format_param_count(s.n_params).c_str());
  std::printf("    quantization        %s\n", s.quantization.c_str());
  std::printf("    size                %s\n", format_bytes(s.file_bytes).c_str());
  std::printf("    context length      %lld\n", static_cast<long long>(s.context_length));
  std::printf("    embedding length    %lld\n", static_cast<long long>(s.embedding_length));
  std::printf("    template            %s\n", t.ok() ? t->describe().c_str() : t.error().message.c_str());
  if (!e->params.empty()) {
    std::printf("\n  Parameters\n");
    const std::string lines = e->params.to_lines();
    size_t a = 0;
    while (a < lines.size()) {
      const size_t nl = lines.find('\n', a);
      std::printf("    %s\n", lines.substr(a, nl - a).c_str());
      a = nl + 1;
    }
  }
  if (!e->system.empty()) std::printf("\n  System\n    %s\n", e->system.c_str());
  if (!e->messages.empty()) std::printf("\n  Messages\n    %zu preset message(s)\n", e->messages.size());
  return 0;
}

void setup(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("show", "Show a model of the store (or a .gguf): details, Modelfile, parameters");
  auto o = std::make_shared<Options>();
  cmd->add_option("NAME", o->name, "Store name or .gguf path")->required();
  auto* g = cmd->add_option_group("what");
  g->add_flag("--modelfile", o->modelfile, "The Modelfile that recreates it");
  g->add_flag("--parameters", o->parameters, "Its parameters");
  g->add_flag("--template", o->template_, "Its chat template");
  g->add_flag("--system", o->system, "Its system message");
  g->add_flag("--license", o->license, "Its license");
  g->require_option(0, 1);
  cmd->callback([o, &exit_code] { exit_code = run(*o); });
}

}  // namespace
NIBBLE_REGISTER_COMMAND(show, 34, setup);
}  // namespace nibble::cli
