// ModelParams: the run-time parameters a Modelfile, `/set parameter` or an API request may set
// (Ollama's names). Every field is optional so layers can be merged: model defaults <- Modelfile
// <- interactive /set <- request options. Values are validated when set, with errors that name
// the parameter and the value.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sampling/sampler.h"
#include "util/result.h"

namespace nibble {

struct ModelParams {
  std::optional<int64_t> num_ctx;
  std::optional<float> temperature;
  std::optional<int32_t> top_k;
  std::optional<float> top_p;
  std::optional<float> min_p;
  std::optional<float> repeat_penalty;
  std::optional<int32_t> repeat_last_n;
  std::optional<uint64_t> seed;
  std::optional<int64_t> num_predict;  // -1: until a stop or the context is full
  std::vector<std::string> stop;       // accumulates (PARAMETER stop may repeat)
  std::optional<std::string> kv_cache_type;
  std::optional<int64_t> kv_recent;  // positions a quantized KV cache keeps at f16 (0..4096)
  std::optional<bool> flash_attention;

  // Sets one parameter from its text form ("temperature", "0.7"). Unknown names and bad values
  // are errors naming both.
  Status set(const std::string& name, const std::string& value);
  // Sets one parameter from a JSON value (API "options"); numbers may come as JSON numbers.
  Status set_json(const std::string& name, const nlohmann::json& value);
  // Later layers win; stop lists replace when the overlay has any.
  void overlay(const ModelParams& o);

  SamplerParams sampler() const;     // with nibble's defaults for unset fields
  int64_t predict_limit() const { return num_predict.value_or(-1); }

  nlohmann::json to_json() const;    // only the set fields
  static Result<ModelParams> from_json(const nlohmann::json& j);
  // "name value" lines, Ollama's `show --parameters` format.
  std::string to_lines() const;
  bool empty() const { return to_json().empty(); }
};

// The parameter names `set` knows, for help text.
const std::vector<std::string>& model_param_names();

}  // namespace nibble
