#include "convert/safetensors.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "util/json_brief.h"
#include "util/text.h"

#include "util/check.h"
#include "util/checked_math.h"
#include "util/fp16.h"

namespace nibble {

using json = nlohmann::json;
using ull = unsigned long long;

const char* st_dtype_name(StDtype t) {
  switch (t) {
    case StDtype::kF32: return "F32";
    case StDtype::kF16: return "F16";
    case StDtype::kBF16: return "BF16";
    case StDtype::kF64: return "F64";
    case StDtype::kI64: return "I64";
    case StDtype::kI32: return "I32";
    case StDtype::kI16: return "I16";
    case StDtype::kI8: return "I8";
    case StDtype::kU8: return "U8";
    case StDtype::kBool: return "BOOL";
  }
  return "?";
}

uint32_t st_dtype_size(StDtype t) {
  switch (t) {
    case StDtype::kF64: case StDtype::kI64: return 8;
    case StDtype::kF32: case StDtype::kI32: return 4;
    case StDtype::kF16: case StDtype::kBF16: case StDtype::kI16: return 2;
    default: return 1;
  }
}

namespace {


bool parse_dtype(const std::string& s, StDtype* out) {
  static const std::pair<const char*, StDtype> kNames[] = {
      {"F32", StDtype::kF32}, {"F16", StDtype::kF16}, {"BF16", StDtype::kBF16},
      {"F64", StDtype::kF64}, {"I64", StDtype::kI64}, {"I32", StDtype::kI32},
      {"I16", StDtype::kI16}, {"I8", StDtype::kI8},   {"U8", StDtype::kU8},
      {"BOOL", StDtype::kBool}};
  for (const auto& [n, t] : kNames) {
    if (s == n) {
      *out = t;
      return true;
    }
  }
  return false;
}

// Parses JSON, rejecting duplicate keys at the top level (nlohmann keeps the last silently).
Result<json> parse_json_strict(const char* begin, const char* end, const std::string& what) {
  std::vector<std::string> dup;
  std::vector<std::string> seen_top;
  json::parser_callback_t cb = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::key && depth == 1) {
      const std::string& k = parsed.get_ref<const std::string&>();
      seen_top.push_back(k);
    }
    return true;
  };
  json j;
  try {
    j = json::parse(begin, end, cb);
  } catch (const json::exception& e) {
    return make_error(ErrorCode::kFormat, "%s: invalid JSON: %s", what.c_str(), printable(e.what(), 200).c_str());
  }
  std::sort(seen_top.begin(), seen_top.end());
  auto it = std::adjacent_find(seen_top.begin(), seen_top.end());
  if (it != seen_top.end()) {
    return make_error(ErrorCode::kFormat, "%s: duplicate entry '%s'", what.c_str(), printable(*it).c_str());
  }
  return j;
}

}  // namespace

Result<std::unique_ptr<SafetensorsFile>> SafetensorsFile::open(const std::string& path) {
  NIBBLE_ASSIGN_OR_RETURN(std::unique_ptr<MappedFile> map, MappedFile::open(path));
  NIBBLE_ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> f,
                          parse(map->data(), map->size(), path));
  f->map_ = std::move(map);
  return f;
}

Result<std::unique_ptr<SafetensorsFile>> SafetensorsFile::parse(const uint8_t* data,
                                                                uint64_t size,
                                                                const std::string& name) {
  const char* n = name.c_str();
  if (size < 8) {
    return make_error(ErrorCode::kFormat, "%s: not a safetensors file: only %llu bytes", n,
                      static_cast<ull>(size));
  }
  uint64_t header_len;
  std::memcpy(&header_len, data, 8);
  if (header_len > kSafetensorsMaxHeader || header_len > size - 8) {
    return make_error(ErrorCode::kFormat,
                      "%s: header length %llu exceeds the file (%llu bytes) or the %llu-byte limit",
                      n, static_cast<ull>(header_len), static_cast<ull>(size),
                      static_cast<ull>(kSafetensorsMaxHeader));
  }
  const char* hbegin = reinterpret_cast<const char*>(data + 8);
  NIBBLE_ASSIGN_OR_RETURN(json header, parse_json_strict(hbegin, hbegin + header_len,
                                                         name + " header"));
  if (!header.is_object()) {
    return make_error(ErrorCode::kFormat, "%s: header is not a JSON object", n);
  }
  const uint64_t data_start = 8 + header_len;
  const uint64_t data_size = size - data_start;
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    const std::string& tname = it.key();
    const std::string tn_text = printable(tname);
    const char* tn = tn_text.c_str();
    const json& e = it.value();
    if (!e.is_object() || !e.contains("dtype") || !e.contains("shape") ||
        !e.contains("data_offsets")) {
      return make_error(ErrorCode::kFormat,
                        "%s: tensor '%s' needs 'dtype', 'shape' and 'data_offsets'", n, tn);
    }
    StTensor t;
    t.name = tname;
    t.file = name;
    if (!e["dtype"].is_string() || !parse_dtype(e["dtype"].get<std::string>(), &t.dtype)) {
      return make_error(ErrorCode::kFormat, "%s: tensor '%s' has unknown dtype %s", n, tn,
                        json_brief(e["dtype"]).c_str());
    }
    const json& shape = e["shape"];
    if (!shape.is_array() || shape.size() > kSafetensorsMaxDims) {
      return make_error(ErrorCode::kFormat, "%s: tensor '%s': shape must be an array of at most %zu sizes",
                        n, tn, kSafetensorsMaxDims);
    }
    uint64_t numel = 1;
    for (const auto& d : shape) {
      if (!d.is_number_unsigned()) {
        return make_error(ErrorCode::kFormat, "%s: tensor '%s': shape entry %s is not a size", n,
                          tn, json_brief(d).c_str());
      }
      const uint64_t v = d.get<uint64_t>();
      auto m = checked_mul(numel, v);
      if (!m) return make_error(ErrorCode::kFormat, "%s: tensor '%s': shape overflows", n, tn);
      numel = *m;
      t.shape.push_back(v);
    }
    const json& off = e["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() ||
        !off[1].is_number_unsigned()) {
      return make_error(ErrorCode::kFormat, "%s: tensor '%s': data_offsets must be [begin, end]",
                        n, tn);
    }
    const uint64_t b = off[0].get<uint64_t>(), en = off[1].get<uint64_t>();
    if (b > en || en > data_size) {
      return make_error(ErrorCode::kFormat,
                        "%s: tensor '%s': data_offsets [%llu, %llu] outside the %llu data bytes", n,
                        tn, static_cast<ull>(b), static_cast<ull>(en), static_cast<ull>(data_size));
    }
    auto need = checked_mul(numel, st_dtype_size(t.dtype));
    if (!need || *need != en - b) {
      return make_error(ErrorCode::kFormat,
                        "%s: tensor '%s': shape needs %llu bytes of %s, data_offsets give %llu", n,
                        tn, static_cast<ull>(need.value_or(UINT64_MAX)), st_dtype_name(t.dtype),
                        static_cast<ull>(en - b));
    }
    t.n_elements = numel;
    t.n_bytes = en - b;
    t.data = data + data_start + b;
    if (t.n_bytes > 0) ranges.emplace_back(b, en);
    f->tensors_.emplace(tname, std::move(t));
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i].first < ranges[i - 1].second) {
      return make_error(ErrorCode::kFormat,
                        "%s: tensor data overlaps: [%llu, %llu) and [%llu, %llu)", n,
                        static_cast<ull>(ranges[i - 1].first), static_cast<ull>(ranges[i - 1].second),
                        static_cast<ull>(ranges[i].first), static_cast<ull>(ranges[i].second));
    }
  }
  return f;
}

Result<std::unique_ptr<SafetensorsCheckpoint>> SafetensorsCheckpoint::open_dir(
    const std::string& dir) {
  namespace fs = std::filesystem;
  std::unique_ptr<SafetensorsCheckpoint> ck(new SafetensorsCheckpoint());
  const std::string index_path = dir + "/model.safetensors.index.json";
  std::vector<std::string> files;
  std::map<std::string, std::string> weight_map;
  if (fs::exists(index_path)) {
    NIBBLE_ASSIGN_OR_RETURN(std::string text, read_file_to_string(index_path, 64ull << 20));
    NIBBLE_ASSIGN_OR_RETURN(json idx, parse_json_strict(text.data(), text.data() + text.size(),
                                                        index_path));
    if (!idx.is_object() || !idx.contains("weight_map") || !idx["weight_map"].is_object()) {
      return make_error(ErrorCode::kFormat, "%s: missing the 'weight_map' object",
                        index_path.c_str());
    }
    for (auto it = idx["weight_map"].begin(); it != idx["weight_map"].end(); ++it) {
      if (!it.value().is_string()) {
        return make_error(ErrorCode::kFormat, "%s: weight_map['%s'] is not a file name",
                          index_path.c_str(), printable(it.key()).c_str());
      }
      const std::string file = it.value().get<std::string>();
      if (file.empty() || file.find('/') != std::string::npos || file.find('\\') != std::string::npos ||
          file == "." || file == "..") {
        return make_error(ErrorCode::kFormat,
                          "%s: weight_map['%s'] = '%s' is not a plain file name in the checkpoint folder",
                          index_path.c_str(), printable(it.key()).c_str(), printable(file).c_str());
      }
      weight_map[it.key()] = file;
      if (std::find(files.begin(), files.end(), file) == files.end()) files.push_back(file);
    }
  } else if (fs::exists(dir + "/model.safetensors")) {
    files.push_back("model.safetensors");
  } else {
    return make_error(ErrorCode::kNotFound,
                      "%s: no model.safetensors or model.safetensors.index.json", dir.c_str());
  }
  for (const auto& file : files) {
    NIBBLE_ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> sf,
                            SafetensorsFile::open(dir + "/" + file));
    for (const auto& [name, t] : sf->tensors()) {
      if (ck->tensors_.count(name) != 0) {
        return make_error(ErrorCode::kFormat, "%s: tensor '%s' appears in both %s and %s",
                          dir.c_str(), printable(name).c_str(), ck->tensors_[name].file.c_str(),
                          t.file.c_str());
      }
      if (!weight_map.empty()) {
        auto w = weight_map.find(name);
        if (w == weight_map.end() || w->second != file) {
          return make_error(ErrorCode::kFormat, "%s: tensor '%s' is in %s but the index says %s",
                            dir.c_str(), name.c_str(), file.c_str(),
                            w == weight_map.end() ? "nothing" : w->second.c_str());
        }
      }
      ck->tensors_[name] = t;
    }
    ck->files_.push_back(std::move(sf));
  }
  for (const auto& [name, file] : weight_map) {
    if (ck->tensors_.count(name) == 0) {
      return make_error(ErrorCode::kFormat, "%s: the index lists tensor '%s' in %s, which lacks it",
                        dir.c_str(), printable(name).c_str(), printable(file).c_str());
    }
  }
  return ck;
}

const StTensor* SafetensorsCheckpoint::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

void st_to_f32(const StTensor& t, uint64_t first, uint64_t n, float* out) {
  const uint8_t* p = t.data + first * st_dtype_size(t.dtype);
  switch (t.dtype) {
    case StDtype::kF32:
      std::memcpy(out, p, n * 4);
      return;
    case StDtype::kF16:
      for (uint64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        out[i] = f16_to_f32(h);
      }
      return;
    case StDtype::kBF16:
      for (uint64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        out[i] = bf16_to_f32(h);
      }
      return;
    default:
      NIBBLE_CHECK(false, "st_to_f32: not a float dtype");
  }
}

}  // namespace nibble
