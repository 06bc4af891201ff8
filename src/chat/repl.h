// ChatRepl: the interactive chat of `nibble run MODEL` without a prompt, minus the terminal
// (cmd_run.cpp owns line editing, history and Ctrl-C). Each line is a message to the model or
// a command: /set parameter|system|think|nothink|verbose|quiet, /show info|parameters|template|
// system|memory, /save NAME, /load NAME, /clear, /bye, /? (Ollama's). A line of """ starts and
// ends a multi-line message. Replies stream to `out`; errors go to `err`.
#pragma once

#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "chat/engine.h"
#include "store/store.h"

namespace nibble {

class ChatRepl {
 public:
  // `entry` is what runs (a store entry or an unnamed GGUF); `engine` has its GGUF loaded.
  ChatRepl(const ModelStore& store, StoreEntry entry, std::unique_ptr<Engine> engine,
           std::FILE* out, std::FILE* err);

  // Handles one input line. Returns false when the session should end (/bye).
  bool handle(const std::string& line, const std::atomic<bool>* cancel);
  // ">>> ", or "... " inside a """ message.
  std::string prompt() const { return in_multiline_ ? "... " : ">>> "; }
  bool in_multiline() const { return in_multiline_; }

  // The parameters in force (entry's, overlaid with /set parameter).
  ModelParams effective_params() const;
  const std::vector<ChatMessage>& history() const { return history_; }
  const StoreEntry& entry() const { return entry_; }

 private:
  void chat(const std::string& text, const std::atomic<bool>* cancel);
  void command(const std::string& line);
  void show(const std::string& what);
  void help(const std::string& topic);
  void save(const std::string& name);
  void load(const std::string& name);
  void error(const std::string& msg);

  const ModelStore& store_;
  StoreEntry entry_;
  std::unique_ptr<Engine> engine_;
  std::FILE* out_;
  std::FILE* err_;
  ModelParams overrides_;
  std::string system_;
  bool think_ = false;
  bool verbose_ = false;
  std::vector<ChatMessage> history_;
  bool in_multiline_ = false;
  std::string multiline_;
};

}  // namespace nibble
