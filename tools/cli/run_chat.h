// The interactive chat of `nibble run` (no prompt on a terminal, or --interactive): the terminal
// side of src/chat/repl.h: libedit line editing, history in $NIBBLE_HOME/history, Ctrl-C
// stopping a reply rather than the session.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "chat/params.h"
#include "sampling/sampler.h"
#include "store/store.h"

namespace nibble::cli {

// Runs the chat with `model` (a store name or a .gguf path); `overrides` come from flags.
int run_chat(const ModelStore& store, const std::string& model, const ModelParams& overrides);

// The sampling / length / context flags the user gave explicitly on `cmd`, as parameters.
ModelParams explicit_flag_params(const CLI::App* cmd, const SamplerParams& s, int64_t n_predict,
                                 int64_t ctx, const std::string& kv_type, const std::string& flash);

}  // namespace nibble::cli
