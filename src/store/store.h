// ModelStore: named models in $NIBBLE_HOME (default ~/.nibble), Ollama-style.
//
//   $NIBBLE_HOME/manifests/<name>/<tag>.json   one entry: the GGUF it runs, parameters, system
//                                             message, template, preset messages
//   $NIBBLE_HOME/blobs/sha256-<hex>            GGUFs downloaded by `nibble pull`
//
// Names are Ollama's: [host/][namespace/]model[:tag], tag "latest" when omitted; each part is
// letters, digits, '.', '_' or '-'. The bundled model (models/nibble-tiny-e.gguf) is always
// listed as "nibble-tiny-e:latest", so a fresh install can chat and serve at once; it cannot be
// removed or overwritten. Entries are written atomically (temp + rename).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "chat/chat_template.h"
#include "chat/params.h"
#include "util/result.h"

namespace nibble {

struct StoreEntry {
  std::string name;        // "model:tag"
  std::string model_path;  // the GGUF file
  std::string from;        // what it was made from (a path or another name)
  ModelParams params;
  std::string system;
  std::string template_text;  // a Modelfile TEMPLATE ("" = the GGUF's own)
  std::vector<ChatMessage> messages;
  std::string license;
  std::string created;     // UTC, RFC 3339
  bool bundled = false;

  // The template to chat with: TEMPLATE when set, else the GGUF's.
  Result<ChatTemplate> chat_template(const ChatTemplate& gguf_template) const;
};

// "name" -> "name:latest", checked. Errors say which character or part is wrong.
Result<std::string> normalize_model_name(const std::string& name);

class ModelStore {
 public:
  // $NIBBLE_HOME, else $HOME/.nibble; the bundled model from `bundled_path`.
  static ModelStore open_default(const std::string& bundled_path);
  ModelStore(std::string home, std::string bundled_path);

  static constexpr const char* kBundledName = "nibble-tiny-e:latest";

  const std::string& home() const { return home_; }
  std::string blobs_dir() const { return home_ + "/blobs"; }

  // Every entry, the bundled one first, then by name. Unreadable entries are skipped and
  // reported in `problems` (one line each) when given.
  std::vector<StoreEntry> list(std::vector<std::string>* problems = nullptr) const;
  Result<StoreEntry> get(const std::string& name) const;
  bool exists(const std::string& name) const;
  // Writes (or replaces) an entry; the name is normalised.
  Status put(StoreEntry entry) const;
  Status remove(const std::string& name) const;
  Status copy(const std::string& from, const std::string& to) const;
  // A store name, or a path to a .gguf file (an unnamed entry running that file).
  Result<StoreEntry> resolve(const std::string& name_or_path) const;

  static nlohmann::json entry_to_json(const StoreEntry& e);
  static Result<StoreEntry> entry_from_json(const nlohmann::json& j, const std::string& where);

 private:
  Result<std::string> manifest_path(const std::string& normalized) const;
  StoreEntry bundled_entry() const;

  std::string home_;
  std::string bundled_path_;
};

// The current time as RFC 3339 UTC ("2026-11-27T03:04:05Z").
std::string utc_now_rfc3339();

}  // namespace nibble
