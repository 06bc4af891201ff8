// Importance-matrix loading (GGUF and legacy .dat), mirroring llama.cpp's common_imatrix_load and
// llama-quantize's load_imatrix.
#include "quant/imatrix.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>

#include "gguf/gguf_file.h"
#include "util/mapped_file.h"

namespace nibble {

namespace {

using ull = unsigned long long;

bool remove_suffix(std::string& s, const std::string& suffix) {
  if (s.size() < suffix.size() || s.compare(s.size() - suffix.size(), suffix.size(), suffix) != 0) {
    return false;
  }
  s.resize(s.size() - suffix.size());
  return true;
}

Status check_finite(const std::string& path, const std::string& name, const std::vector<float>& v) {
  for (size_t i = 0; i < v.size(); ++i) {
    if (!std::isfinite(v[i])) {
      return make_error(ErrorCode::kFormat, "imatrix %s: entry '%s' value %zu is not finite (%f)",
                        path.c_str(), name.c_str(), i, static_cast<double>(v[i]));
    }
  }
  return ok_status();
}

Result<Imatrix> load_gguf(const std::string& path) {
  NIBBLE_ASSIGN_OR_RETURN(auto file, GgufFile::open(path));
  const GgufMetadata& md = file->metadata();
  Imatrix im;
  const GgufValue* datasets = md.find("imatrix.datasets");
  const GgufValue* chunk_count = md.find("imatrix.chunk_count");
  const GgufValue* chunk_size = md.find("imatrix.chunk_size");
  if (datasets == nullptr || chunk_count == nullptr || chunk_size == nullptr) {
    return make_error(ErrorCode::kFormat,
                      "imatrix %s: missing imatrix metadata (imatrix.datasets, imatrix.chunk_count "
                      "and imatrix.chunk_size are required)",
                      path.c_str());
  }
  if (datasets->is_array() && datasets->array_type() == GgufType::kString)
    im.datasets = datasets->strings();
  NIBBLE_ASSIGN_OR_RETURN(im.chunk_count, md.get_u32("imatrix.chunk_count"));

  struct Parts {
    const GgufTensorInfo* sums = nullptr;
    const GgufTensorInfo* counts = nullptr;
  };
  std::map<std::string, Parts> parts;
  for (const auto& t : file->tensors()) {
    std::string base = t.name;
    if (remove_suffix(base, ".in_sum2"))
      parts[base].sums = &t;
    else if (remove_suffix(base, ".counts"))
      parts[base].counts = &t;
    // ".in_sum" (mean activations) is not used for quantization.
  }
  if (parts.empty()) return make_error(ErrorCode::kFormat, "imatrix %s: no data", path.c_str());
  for (const auto& [name, p] : parts) {
    if (p.sums == nullptr || p.counts == nullptr) {
      return make_error(ErrorCode::kFormat, "imatrix %s: mismatched sums and counts for '%s'",
                        path.c_str(), name.c_str());
    }
    if (p.sums->type != GgmlType::F32 || p.counts->type != GgmlType::F32) {
      return make_error(ErrorCode::kFormat, "imatrix %s: sums and counts for '%s' must be F32",
                        path.c_str(), name.c_str());
    }
    const uint64_t nval = p.sums->n_elements, ncounts = p.counts->n_elements;
    if (ncounts == 0 || nval == 0) continue;  // llama-quantize skips these
    if (nval % ncounts != 0) {
      return make_error(ErrorCode::kFormat, "imatrix %s: '%s' has %llu sums for %llu counts",
                        path.c_str(), name.c_str(), static_cast<ull>(nval),
                        static_cast<ull>(ncounts));
    }
    const uint64_t ne0 = nval / ncounts;
    std::vector<float> sums(nval), counts(ncounts);
    std::memcpy(sums.data(), p.sums->data, nval * 4);
    std::memcpy(counts.data(), p.counts->data, ncounts * 4);
    std::vector<float> values(nval);
    for (uint64_t j = 0; j < ncounts; ++j) {
      const float count = static_cast<float>(std::lround(counts[j]));
      for (uint64_t i = 0; i < ne0; ++i) {
        values[j * ne0 + i] = count > 0.0f ? sums[j * ne0 + i] / count : 1.0f;
      }
    }
    NIBBLE_TRY(check_finite(path, name, values));
    im.values.emplace(name, std::move(values));
  }
  return im;
}

// Bounded little-endian reader over the legacy file's bytes.
struct Cursor {
  const std::string& bytes;
  size_t pos = 0;
  bool read(void* dst, size_t n) {
    if (n > bytes.size() - pos) return false;
    std::memcpy(dst, bytes.data() + pos, n);
    pos += n;
    return true;
  }
  size_t left() const { return bytes.size() - pos; }
};

Result<Imatrix> load_legacy(const std::string& path, const std::string& bytes) {
  Imatrix im;
  im.legacy = true;
  Cursor c{bytes};
  int32_t n_entries = 0;
  if (!c.read(&n_entries, 4) || n_entries < 1) {
    return make_error(ErrorCode::kFormat, "imatrix %s: no data (neither GGUF nor a legacy imatrix)",
                      path.c_str());
  }
  for (int32_t e = 0; e < n_entries; ++e) {
    int32_t len = 0;
    if (!c.read(&len, 4) || len < 0 || static_cast<size_t>(len) > c.left()) {
      return make_error(ErrorCode::kFormat, "imatrix %s: entry %d: bad name length", path.c_str(),
                        e);
    }
    std::string name(bytes.data() + c.pos, static_cast<size_t>(len));
    c.pos += static_cast<size_t>(len);
    int32_t ncall = 0, nval = 0;
    if (!c.read(&ncall, 4) || !c.read(&nval, 4) || nval < 1) {
      return make_error(ErrorCode::kFormat, "imatrix %s: entry %d ('%s'): bad value count",
                        path.c_str(), e, name.c_str());
    }
    if (static_cast<uint64_t>(nval) * 4 > c.left()) {
      return make_error(ErrorCode::kFormat, "imatrix %s: entry '%s' needs %llu bytes, %zu remain",
                        path.c_str(), name.c_str(), static_cast<ull>(nval) * 4, c.left());
    }
    std::vector<float> values(static_cast<size_t>(nval));
    c.read(values.data(), values.size() * 4);
    if (ncall > 0) {
      for (float& v : values) v = v / static_cast<float>(ncall);
    }
    NIBBLE_TRY(check_finite(path, name, values));
    im.values[name] = std::move(values);
  }
  // Optional trailer: chunk count and data set name.
  int32_t n_chunks = 0, len = 0;
  if (c.read(&n_chunks, 4)) {
    im.chunk_count = n_chunks > 0 ? static_cast<uint32_t>(n_chunks) : 0;
    if (c.read(&len, 4) && len > 0 && static_cast<size_t>(len) <= c.left()) {
      im.datasets.emplace_back(bytes.data() + c.pos, static_cast<size_t>(len));
    }
  }
  return im;
}

}  // namespace

Result<Imatrix> load_imatrix(const std::string& path) {
  char magic[4] = {};
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    return make_error(ErrorCode::kNotFound, "imatrix %s: cannot open: %s", path.c_str(),
                      std::strerror(errno));
  }
  const size_t got = std::fread(magic, 1, 4, f);
  std::fclose(f);
  if (got == 4 && std::memcmp(magic, "GGUF", 4) == 0) return load_gguf(path);
  NIBBLE_ASSIGN_OR_RETURN(std::string bytes, read_file_to_string(path, uint64_t{1} << 32));
  return load_legacy(path, bytes);
}

}  // namespace nibble
