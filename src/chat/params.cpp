// ModelParams: parsing, validation and merging of Ollama-style parameters.
#include "chat/params.h"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <sstream>

#include "runtime/kv_cache.h"
#include "util/json_brief.h"
#include "util/text.h"

namespace nibble {

namespace {

constexpr int64_t kMaxCtx = int64_t{1} << 20;
constexpr size_t kMaxStops = 16;
constexpr size_t kMaxStopBytes = 256;

Error bad(const std::string& name, const std::string& value, const char* what) {
  return make_error(ErrorCode::kInvalidArgument, "parameter %s: '%s' %s", name.c_str(),
                    printable(value, 40).c_str(), what);
}

Result<int64_t> parse_int(const std::string& name, const std::string& v, int64_t lo, int64_t hi) {
  int64_t x = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
  if (v.empty() || ec != std::errc() || p != v.data() + v.size()) return bad(name, v, "is not a whole number");
  if (x < lo || x > hi) {
    return make_error(ErrorCode::kInvalidArgument, "parameter %s: %lld is out of range [%lld, %lld]",
                      name.c_str(), static_cast<long long>(x), static_cast<long long>(lo),
                      static_cast<long long>(hi));
  }
  return x;
}

Result<float> parse_float(const std::string& name, const std::string& v, double lo, double hi,
                          bool lo_open = false) {
  if (v.empty() || v.size() > 64) return bad(name, v, "is not a number");
  std::string s(v);
  char* end = nullptr;
  const double x = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size() || !std::isfinite(x)) return bad(name, v, "is not a finite number");
  if (x < lo || x > hi || (lo_open && x == lo)) {
    return make_error(ErrorCode::kInvalidArgument, "parameter %s: %g is out of range %s%g, %g]",
                      name.c_str(), x, lo_open ? "(" : "[", lo, hi);
  }
  return static_cast<float>(x);
}

Result<bool> parse_bool(const std::string& name, const std::string& v) {
  if (v == "true" || v == "1" || v == "on" || v == "yes") return true;
  if (v == "false" || v == "0" || v == "off" || v == "no") return false;
  return bad(name, v, "is not true or false");
}

std::string fmt_float(float f) {
  std::ostringstream os;
  os << f;
  return os.str();
}

}  // namespace

const std::vector<std::string>& model_param_names() {
  static const std::vector<std::string> names = {
      "num_ctx", "temperature", "top_k", "top_p", "min_p", "repeat_penalty", "repeat_last_n",
      "seed", "num_predict", "stop", "kv_cache_type", "kv_recent", "flash_attention"};
  return names;
}

Status ModelParams::set(const std::string& name, const std::string& value) {
  if (name == "num_ctx") {
    NIBBLE_ASSIGN_OR_RETURN(num_ctx, parse_int(name, value, 1, kMaxCtx));
  } else if (name == "temperature") {
    NIBBLE_ASSIGN_OR_RETURN(temperature, parse_float(name, value, 0, 100));
  } else if (name == "top_k") {
    NIBBLE_ASSIGN_OR_RETURN(auto k, parse_int(name, value, 0, 1 << 24));
    top_k = static_cast<int32_t>(k);
  } else if (name == "top_p") {
    NIBBLE_ASSIGN_OR_RETURN(top_p, parse_float(name, value, 0, 1, /*lo_open=*/true));
  } else if (name == "min_p") {
    NIBBLE_ASSIGN_OR_RETURN(min_p, parse_float(name, value, 0, 1));
  } else if (name == "repeat_penalty") {
    NIBBLE_ASSIGN_OR_RETURN(repeat_penalty, parse_float(name, value, 0, 100, /*lo_open=*/true));
  } else if (name == "repeat_last_n") {
    NIBBLE_ASSIGN_OR_RETURN(auto n, parse_int(name, value, 0, 1 << 20));
    repeat_last_n = static_cast<int32_t>(n);
  } else if (name == "seed") {
    NIBBLE_ASSIGN_OR_RETURN(auto s, parse_int(name, value, 0, INT64_MAX));
    seed = static_cast<uint64_t>(s);
  } else if (name == "num_predict") {
    NIBBLE_ASSIGN_OR_RETURN(num_predict, parse_int(name, value, -1, kMaxCtx));
  } else if (name == "stop") {
    if (value.empty()) return bad(name, value, "is empty");
    if (value.size() > kMaxStopBytes) return bad(name, value, "is longer than 256 bytes");
    if (stop.size() >= kMaxStops) return bad(name, value, "is one stop string too many (at most 16)");
    stop.push_back(value);
  } else if (name == "kv_cache_type") {
    auto t = parse_kv_type(value);
    if (!t.ok()) return make_error(ErrorCode::kInvalidArgument, "parameter kv_cache_type: %s", t.error().message.c_str());
    kv_cache_type = ggml_type_name(*t);
  } else if (name == "kv_recent") {
    NIBBLE_ASSIGN_OR_RETURN(kv_recent, parse_int(name, value, 0, 4096));
  } else if (name == "flash_attention") {
    NIBBLE_ASSIGN_OR_RETURN(flash_attention, parse_bool(name, value));
  } else {
    return make_error(ErrorCode::kInvalidArgument,
                      "unknown parameter '%s' (known: num_ctx, temperature, top_k, top_p, min_p, "
                      "repeat_penalty, repeat_last_n, seed, num_predict, stop, kv_cache_type, "
                      "kv_recent, flash_attention)",
                      printable(name, 40).c_str());
  }
  return ok_status();
}

Status ModelParams::set_json(const std::string& name, const nlohmann::json& v) {
  if (name == "stop") {
    if (v.is_string()) return set(name, v.get<std::string>());
    if (!v.is_array()) {
      return make_error(ErrorCode::kInvalidArgument, "option stop: expected a string or a list of strings, got %s",
                        json_brief(v).c_str());
    }
    for (const auto& s : v) {
      if (!s.is_string()) {
        return make_error(ErrorCode::kInvalidArgument, "option stop: expected strings, got %s",
                          json_brief(s).c_str());
      }
      NIBBLE_TRY(set(name, s.get<std::string>()));
    }
    return ok_status();
  }
  if (v.is_string()) {
    if (name == "kv_cache_type") return set(name, v.get<std::string>());
  } else if (v.is_boolean()) {
    if (name == "flash_attention") return set(name, v.get<bool>() ? "true" : "false");
  } else if (v.is_number_integer()) {
    return set(name, v.is_number_unsigned() ? std::to_string(v.get<uint64_t>())
                                            : std::to_string(v.get<int64_t>()));
  } else if (v.is_number_float()) {
    const double d = v.get<double>();
    if (name == "temperature" || name == "top_p" || name == "min_p" || name == "repeat_penalty") {
      std::ostringstream os;
      os.precision(17);
      os << d;
      return set(name, os.str());
    }
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15) {
      return set(name, std::to_string(static_cast<long long>(d)));
    }
  }
  bool known = false;
  for (const auto& n : model_param_names()) known = known || n == name;
  if (!known) return set(name, "");  // the unknown-parameter error
  return make_error(ErrorCode::kInvalidArgument, "option %s: wrong type of value %s",
                    printable(name, 40).c_str(), json_brief(v).c_str());
}

void ModelParams::overlay(const ModelParams& o) {
  if (o.num_ctx) num_ctx = o.num_ctx;
  if (o.temperature) temperature = o.temperature;
  if (o.top_k) top_k = o.top_k;
  if (o.top_p) top_p = o.top_p;
  if (o.min_p) min_p = o.min_p;
  if (o.repeat_penalty) repeat_penalty = o.repeat_penalty;
  if (o.repeat_last_n) repeat_last_n = o.repeat_last_n;
  if (o.seed) seed = o.seed;
  if (o.num_predict) num_predict = o.num_predict;
  if (!o.stop.empty()) stop = o.stop;
  if (o.kv_cache_type) kv_cache_type = o.kv_cache_type;
  if (o.kv_recent) kv_recent = o.kv_recent;
  if (o.flash_attention) flash_attention = o.flash_attention;
}

SamplerParams ModelParams::sampler() const {
  SamplerParams p;
  if (temperature) p.temperature = *temperature;
  if (top_k) p.top_k = *top_k;
  if (top_p) p.top_p = *top_p;
  if (min_p) p.min_p = *min_p;
  if (repeat_penalty) p.repeat_penalty = *repeat_penalty;
  if (repeat_last_n) p.repeat_last_n = *repeat_last_n;
  if (seed) p.seed = *seed;
  return p;
}

nlohmann::json ModelParams::to_json() const {
  nlohmann::json j = nlohmann::json::object();
  if (num_ctx) j["num_ctx"] = *num_ctx;
  if (temperature) j["temperature"] = *temperature;
  if (top_k) j["top_k"] = *top_k;
  if (top_p) j["top_p"] = *top_p;
  if (min_p) j["min_p"] = *min_p;
  if (repeat_penalty) j["repeat_penalty"] = *repeat_penalty;
  if (repeat_last_n) j["repeat_last_n"] = *repeat_last_n;
  if (seed) j["seed"] = *seed;
  if (num_predict) j["num_predict"] = *num_predict;
  if (!stop.empty()) j["stop"] = stop;
  if (kv_cache_type) j["kv_cache_type"] = *kv_cache_type;
  if (kv_recent) j["kv_recent"] = *kv_recent;
  if (flash_attention) j["flash_attention"] = *flash_attention;
  return j;
}

Result<ModelParams> ModelParams::from_json(const nlohmann::json& j) {
  ModelParams p;
  if (j.is_null()) return p;
  if (!j.is_object()) {
    return make_error(ErrorCode::kInvalidArgument, "options: expected an object, got %s",
                      json_brief(j).c_str());
  }
  for (const auto& [k, v] : j.items()) NIBBLE_TRY(p.set_json(k, v));
  return p;
}

std::string ModelParams::to_lines() const {
  std::string out;
  auto line = [&](const std::string& k, const std::string& v) { out += k + " " + v + "\n"; };
  if (num_ctx) line("num_ctx", std::to_string(*num_ctx));
  if (temperature) line("temperature", fmt_float(*temperature));
  if (top_k) line("top_k", std::to_string(*top_k));
  if (top_p) line("top_p", fmt_float(*top_p));
  if (min_p) line("min_p", fmt_float(*min_p));
  if (repeat_penalty) line("repeat_penalty", fmt_float(*repeat_penalty));
  if (repeat_last_n) line("repeat_last_n", std::to_string(*repeat_last_n));
  if (seed) line("seed", std::to_string(*seed));
  if (num_predict) line("num_predict", std::to_string(*num_predict));
  for (const auto& s : stop) {
    std::string q(1, '"');
    q.append(printable(s, 256));
    q.push_back('"');
    line("stop", q);
  }
  if (kv_cache_type) line("kv_cache_type", *kv_cache_type);
  if (kv_recent) line("kv_recent", std::to_string(*kv_recent));
  if (flash_attention) line("flash_attention", *flash_attention ? "true" : "false");
  return out;
}

}  // namespace nibble
