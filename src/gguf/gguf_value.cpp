#include "gguf/gguf_value.h"

#include <cinttypes>
#include <cstdio>

namespace nibble {

const char* gguf_type_name(GgufType t) {
  switch (t) {
    case GgufType::kUint8: return "uint8";
    case GgufType::kInt8: return "int8";
    case GgufType::kUint16: return "uint16";
    case GgufType::kInt16: return "int16";
    case GgufType::kUint32: return "uint32";
    case GgufType::kInt32: return "int32";
    case GgufType::kFloat32: return "float32";
    case GgufType::kBool: return "bool";
    case GgufType::kString: return "string";
    case GgufType::kArray: return "array";
    case GgufType::kUint64: return "uint64";
    case GgufType::kInt64: return "int64";
    case GgufType::kFloat64: return "float64";
  }
  return "unknown";
}

uint32_t gguf_type_size(GgufType t) {
  switch (t) {
    case GgufType::kUint8: case GgufType::kInt8: case GgufType::kBool: return 1;
    case GgufType::kUint16: case GgufType::kInt16: return 2;
    case GgufType::kUint32: case GgufType::kInt32: case GgufType::kFloat32: return 4;
    case GgufType::kUint64: case GgufType::kInt64: case GgufType::kFloat64: return 8;
    default: return 0;
  }
}

namespace {
std::string scalar_to_string(GgufType t, const GgufValue& v, uint64_t index, bool in_array) {
  auto get_f = [&](auto tag) -> double {
    using T = decltype(tag);
    return in_array ? v.element<T>(index) : v.as<T>();
  };
  char buf[64];
  switch (t) {
    case GgufType::kFloat32:
    case GgufType::kFloat64:
      std::snprintf(buf, sizeof(buf), "%.9g", get_f(double{}));
      return buf;
    case GgufType::kBool:
      return (in_array ? v.element<int>(index) : v.as<int>()) ? "true" : "false";
    case GgufType::kInt8: case GgufType::kInt16: case GgufType::kInt32: case GgufType::kInt64:
      std::snprintf(buf, sizeof(buf), "%" PRId64,
                    in_array ? v.element<int64_t>(index) : v.as<int64_t>());
      return buf;
    default:
      std::snprintf(buf, sizeof(buf), "%" PRIu64,
                    in_array ? v.element<uint64_t>(index) : v.as<uint64_t>());
      return buf;
  }
}

std::string quote(const std::string& s, size_t max_len) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size() && i < max_len; ++i) {
    char c = s[i];
    if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c == '"') out += "\\\"";
    else if (static_cast<unsigned char>(c) < 0x20) out += "?";
    else out += c;
  }
  if (s.size() > max_len) out += "...";
  return out + "\"";
}
}  // namespace

std::string GgufValue::to_display_string(size_t max_items) const {
  if (type_ == GgufType::kString) return quote(str_, 80);
  if (type_ != GgufType::kArray) return scalar_to_string(type_, *this, 0, false);
  std::string out = "[";
  uint64_t n = count_ < max_items ? count_ : max_items;
  for (uint64_t i = 0; i < n; ++i) {
    if (i) out += ", ";
    out += array_type_ == GgufType::kString ? quote(strs_[i], 24)
                                            : scalar_to_string(array_type_, *this, i, true);
  }
  if (count_ > n) out += ", ... (" + std::to_string(count_) + " " + gguf_type_name(array_type_) + ")";
  return out + "]";
}

void GgufMetadata::set(const std::string& key, GgufValue value) {
  auto it = index_.find(key);
  if (it != index_.end()) {
    entries_[it->second].second = std::move(value);
    return;
  }
  index_[key] = entries_.size();
  entries_.emplace_back(key, std::move(value));
}

bool GgufMetadata::erase(const std::string& key) {
  auto it = index_.find(key);
  if (it == index_.end()) return false;
  entries_.erase(entries_.begin() + static_cast<std::ptrdiff_t>(it->second));
  index_.clear();
  for (size_t i = 0; i < entries_.size(); ++i) index_[entries_[i].first] = i;
  return true;
}

const GgufValue* GgufMetadata::find(const std::string& key) const {
  auto it = index_.find(key);
  return it == index_.end() ? nullptr : &entries_[it->second].second;
}

namespace {
Error missing(const std::string& key) {
  return make_error(ErrorCode::kNotFound, "metadata key '%s' is missing", key.c_str());
}
Error wrong_type(const std::string& key, const char* want, const GgufValue& v) {
  std::string have = gguf_type_name(v.type());
  if (v.is_array()) have += std::string(" of ") + gguf_type_name(v.array_type());
  return make_error(ErrorCode::kFormat, "metadata key '%s' has type %s, expected %s", key.c_str(),
                    have.c_str(), want);
}
}  // namespace

Result<uint32_t> GgufMetadata::get_u32(const std::string& key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return missing(key);
  if (v->type() != GgufType::kUint32) return wrong_type(key, "uint32", *v);
  return v->as<uint32_t>();
}

Result<float> GgufMetadata::get_f32(const std::string& key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return missing(key);
  if (v->type() != GgufType::kFloat32) return wrong_type(key, "float32", *v);
  return v->as<float>();
}

Result<bool> GgufMetadata::get_bool(const std::string& key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return missing(key);
  if (v->type() != GgufType::kBool) return wrong_type(key, "bool", *v);
  return v->as<uint8_t>() != 0;
}

Result<std::string> GgufMetadata::get_string(const std::string& key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return missing(key);
  if (v->type() != GgufType::kString) return wrong_type(key, "string", *v);
  return v->string();
}

Result<const GgufValue*> GgufMetadata::get_array(const std::string& key, GgufType elem) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return missing(key);
  if (!v->is_array() || v->array_type() != elem) {
    return wrong_type(key, (std::string("array of ") + gguf_type_name(elem)).c_str(), *v);
  }
  return v;
}

Result<std::vector<uint32_t>> GgufMetadata::get_u32_per_layer(const std::string& key,
                                                              uint32_t n) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return missing(key);
  if (v->type() == GgufType::kUint32) return std::vector<uint32_t>(n, v->as<uint32_t>());
  if (v->is_array() &&
      (v->array_type() == GgufType::kUint32 || v->array_type() == GgufType::kInt32)) {
    if (v->array_size() != n) {
      return make_error(ErrorCode::kFormat, "metadata key '%s' has %llu entries, expected %u (one per layer)",
                        key.c_str(), static_cast<unsigned long long>(v->array_size()), n);
    }
    std::vector<uint32_t> out(n);
    for (uint32_t i = 0; i < n; ++i) {
      int64_t x = v->element<int64_t>(i);
      if (v->array_type() == GgufType::kInt32 && x < 0) {
        return make_error(ErrorCode::kFormat, "metadata key '%s'[%u] is negative (%lld)", key.c_str(), i,
                          static_cast<long long>(x));
      }
      out[i] = static_cast<uint32_t>(v->element<uint32_t>(i));
    }
    return out;
  }
  return wrong_type(key, "uint32 or array of uint32", *v);
}

}  // namespace nibble
