// Gemma 4 text models (E2B, E4B, 31B, 26B-A4B and any GGUF of the same shape family): loader
// registered under general.architecture = "gemma4" (model/registry.cpp).
#pragma once

#include <memory>

#include "gguf/gguf_file.h"
#include "model/model.h"
#include "util/result.h"

namespace nibble {

Result<std::unique_ptr<Model>> load_gemma4(std::unique_ptr<GgufFile> file);

}  // namespace nibble
