// Model registry: maps general.architecture to the architecture's loader (STYLE §2.1). The one
// place that knows which architectures exist.
#pragma once

#include <memory>
#include <string>

#include "gguf/gguf_file.h"
#include "model/model.h"
#include "util/result.h"

namespace nibble {

using ModelLoader = Result<std::unique_ptr<Model>> (*)(std::unique_ptr<GgufFile> file);

// Opens a GGUF and loads it with the loader of its architecture.
Result<std::unique_ptr<Model>> load_model(const std::string& path);
Result<std::unique_ptr<Model>> load_model(std::unique_ptr<GgufFile> file);

}  // namespace nibble
