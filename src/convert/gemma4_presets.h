// The four released Gemma 4 text models as Hugging Face configs (spec gemma4-architecture §1.2):
// e2b, e4b, 31b, 26b-a4b. With gemma4_layout.h they give a model's exact tensors and metadata
// without its weights: for memory planning and synthetic benchmark models.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "convert/hf_config.h"
#include "util/result.h"

namespace nibble {

// "e2b", "e4b", "31b", "26b-a4b".
const std::vector<std::string>& gemma4_preset_names();
// The config.json text of a preset.
Result<std::string> gemma4_preset_config_json(std::string_view name);
// The parsed config of a preset.
Result<Gemma4HfConfig> gemma4_preset(std::string_view name);

}  // namespace nibble
