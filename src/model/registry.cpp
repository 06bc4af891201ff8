// Architecture table: "gemma4" -> load_gemma4.
#include "model/registry.h"

#include <cstring>

#include "model/gemma4.h"

namespace nibble {

namespace {

struct ArchEntry {
  const char* arch;
  ModelLoader load;
};

constexpr ArchEntry kArchitectures[] = {
    {"gemma4", &load_gemma4},
};

}  // namespace

Result<std::unique_ptr<Model>> load_model(std::unique_ptr<GgufFile> file) {
  auto arch = file->metadata().get_string("general.architecture");
  if (!arch.ok()) {
    return make_error(ErrorCode::kFormat, "model: %s: %s", file->path().c_str(),
                      arch.error().message.c_str());
  }
  std::string known;
  for (const ArchEntry& e : kArchitectures) {
    if (arch.value() == e.arch) return e.load(std::move(file));
    known += known.empty() ? e.arch : std::string(", ") + e.arch;
  }
  return make_error(ErrorCode::kUnsupported,
                    "model: %s: architecture '%s' is not supported (known: %s)",
                    file->path().c_str(), arch.value().c_str(), known.c_str());
}

Result<std::unique_ptr<Model>> load_model(const std::string& path) {
  NIBBLE_ASSIGN_OR_RETURN(auto file, GgufFile::open(path));
  return load_model(std::move(file));
}

}  // namespace nibble
