// Modelfile: Ollama's recipe for a store entry.
//
//   # comment
//   FROM ./model.gguf | name[:tag]
//   PARAMETER temperature 0.7
//   PARAMETER stop "<end>"
//   SYSTEM """You are terse."""
//   TEMPLATE """{{ if .System }}{{ .System }} {{ end }}{{ .Prompt }}"""
//   MESSAGE user Hello
//   MESSAGE assistant Hi.
//   LICENSE """..."""
//
// Instructions are case-insensitive; arguments may be "quoted" or """triple-quoted""" (which
// may span lines). Errors name the line.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "chat/chat_template.h"
#include "store/store.h"
#include "util/result.h"

namespace nibble {

struct Modelfile {
  std::string from;
  std::vector<std::pair<std::string, std::string>> parameters;
  bool has_system = false, has_template = false, has_license = false;
  std::string system, template_text, license;
  std::vector<ChatMessage> messages;
};

Result<Modelfile> parse_modelfile(std::string_view text);

// Builds a store entry: FROM resolved against the store or, as a path, against `base_dir`
// (the Modelfile's folder); the GGUF is opened and checked; PARAMETERs validated; a TEMPLATE
// must parse. Inherits the FROM entry's settings when FROM names a store model.
Result<StoreEntry> build_store_entry(const Modelfile& mf, const ModelStore& store,
                                     const std::string& base_dir, const std::string& name);

// The Modelfile that recreates an entry (`nibble show --modelfile`).
std::string entry_to_modelfile(const StoreEntry& e);

}  // namespace nibble
