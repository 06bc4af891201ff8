// nibble: one command, many subcommands (convert, inspect, tokenize, run, ...).
#include <algorithm>
#include <cstdio>

#include "cli/command.h"
#include "util/text.h"

namespace nibble::cli {

std::vector<CommandInfo>& command_registry() {
  static std::vector<CommandInfo> registry;
  return registry;
}

int fail(const std::string& message) {
  std::fprintf(stderr, "nibble: %s\n", message.c_str());
  return 1;
}

}  // namespace nibble::cli

int main(int argc, char** argv) {
  CLI::App app{"nibble: run Google's Gemma 4 models at 4 bits and beyond", "nibble"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "nibble 0.1.0");
  int exit_code = 0;
  auto& registry = nibble::cli::command_registry();
  std::sort(registry.begin(), registry.end(),
            [](const auto& a, const auto& b) { return a.order < b.order; });
  for (auto& cmd : registry) cmd.setup(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    // Errors are values inside nibble; this catches what the standard library may still throw
    // (std::filesystem on a hostile path, allocation failure) so the process never aborts.
    return nibble::cli::fail(nibble::printable(e.what(), 300));
  }
  return exit_code;
}
