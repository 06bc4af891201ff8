// The `nibble` command's subcommand registry. Each cmd_*.cpp registers itself with
// NIBBLE_REGISTER_COMMAND; main.cpp builds the CLI11 app from the registry, so adding a command
// touches no other file.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace nibble::cli {

// Adds the subcommand to `app` and installs its callback. The callback returns the process exit
// code through `exit_code` (0 = success). Errors are printed as one line "nibble CMD: message".
using CommandSetup = std::function<void(CLI::App& app, int& exit_code)>;

struct CommandInfo {
  std::string name;
  int order;  // position in --help
  CommandSetup setup;
};

std::vector<CommandInfo>& command_registry();

struct CommandRegistrar {
  CommandRegistrar(std::string name, int order, CommandSetup setup) {
    command_registry().push_back({std::move(name), order, std::move(setup)});
  }
};

// Prints "nibble: <message>" to stderr and returns 1 (for use in command callbacks).
int fail(const std::string& message);

}  // namespace nibble::cli

#define NIBBLE_REGISTER_COMMAND(name, order, fn) \
  static ::nibble::cli::CommandRegistrar nibble_cmd_registrar_##name(#name, order, fn)
