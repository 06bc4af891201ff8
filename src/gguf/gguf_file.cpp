// GGUF reader: validates the whole header (spec §1.11) before exposing anything.
#include "gguf/gguf_file.h"

#include <algorithm>
#include <cinttypes>
#include <cstring>

#include "util/checked_math.h"
#include "util/text.h"

namespace nibble {

namespace {

constexpr uint64_t kMaxStringLength = 1ull << 30;   // ggml caps strings at 1 GiB
constexpr uint64_t kMaxArrayCount = 1ull << 30;     // and arrays at 1 Gi elements

using ull = unsigned long long;

// Bounds-checked little-endian cursor over the header bytes.
class Cursor {
 public:
  Cursor(const uint8_t* data, uint64_t size, const std::string& name)
      : data_(data), size_(size), name_(name) {}

  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }

  template <typename T>
  Result<T> read(const char* what) {
    if (remaining() < sizeof(T)) {
      return make_error(ErrorCode::kFormat,
                        "%s: truncated: %s needs %zu bytes at offset %llu, file has %llu",
                        name_.c_str(), what, sizeof(T), static_cast<ull>(pos_),
                        static_cast<ull>(size_));
    }
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  Result<std::string> read_string(const std::string& what) {
    NIBBLE_ASSIGN_OR_RETURN(uint64_t len, read<uint64_t>(what.c_str()));
    if (len > kMaxStringLength || len > remaining()) {
      return make_error(ErrorCode::kFormat,
                        "%s: %s: string length %llu at offset %llu exceeds the %llu bytes left",
                        name_.c_str(), what.c_str(), static_cast<ull>(len),
                        static_cast<ull>(pos_ - 8), static_cast<ull>(remaining()));
    }
    std::string s(reinterpret_cast<const char*>(data_ + pos_), len);
    pos_ += len;
    return s;
  }

  Result<std::vector<uint8_t>> read_bytes(uint64_t n, const std::string& what) {
    if (n > remaining()) {
      return make_error(ErrorCode::kFormat, "%s: %s: needs %llu bytes at offset %llu, %llu left",
                        name_.c_str(), what.c_str(), static_cast<ull>(n),
                        static_cast<ull>(pos_), static_cast<ull>(remaining()));
    }
    std::vector<uint8_t> v(data_ + pos_, data_ + pos_ + n);
    pos_ += n;
    return v;
  }

 private:
  const uint8_t* data_;
  uint64_t size_;
  uint64_t pos_ = 0;
  const std::string& name_;
};

bool valid_value_type(uint32_t t) { return t < kGgufTypeCount; }

Result<GgufValue> read_value(Cursor& c, uint32_t type, const std::string& key,
                             const std::string& file) {
  const GgufType t = static_cast<GgufType>(type);
  if (t == GgufType::kString) {
    NIBBLE_ASSIGN_OR_RETURN(std::string s, c.read_string("key '" + printable(key) + "'"));
    return GgufValue::str(std::move(s));
  }
  if (t != GgufType::kArray) {
    const uint32_t n = gguf_type_size(t);
    NIBBLE_ASSIGN_OR_RETURN(std::vector<uint8_t> b, c.read_bytes(n, "key '" + printable(key) + "'"));
    return GgufValue::raw_scalar(t, b.data());
  }
  NIBBLE_ASSIGN_OR_RETURN(uint32_t elem, c.read<uint32_t>("array element type"));
  if (!valid_value_type(elem)) {
    return make_error(ErrorCode::kFormat, "%s: key '%s': unknown array element type %u",
                      file.c_str(), printable(key).c_str(), elem);
  }
  if (static_cast<GgufType>(elem) == GgufType::kArray) {
    return make_error(ErrorCode::kFormat, "%s: key '%s': nested arrays are not allowed",
                      file.c_str(), printable(key).c_str());
  }
  NIBBLE_ASSIGN_OR_RETURN(uint64_t count, c.read<uint64_t>("array count"));
  const GgufType et = static_cast<GgufType>(elem);
  const uint64_t min_elem = et == GgufType::kString ? 8 : gguf_type_size(et);
  auto min_bytes = checked_mul(count, min_elem);
  if (count > kMaxArrayCount || !min_bytes || *min_bytes > c.remaining()) {
    return make_error(ErrorCode::kFormat,
                      "%s: key '%s': array of %llu %s needs at least %llu bytes, %llu left",
                      file.c_str(), printable(key).c_str(), static_cast<ull>(count), gguf_type_name(et),
                      static_cast<ull>(min_bytes.value_or(UINT64_MAX)),
                      static_cast<ull>(c.remaining()));
  }
  if (et == GgufType::kString) {
    std::vector<std::string> items;
    items.reserve(std::min<uint64_t>(count, 1u << 16));
    for (uint64_t i = 0; i < count; ++i) {
      NIBBLE_ASSIGN_OR_RETURN(std::string s,
                              c.read_string("key '" + key + "'[" + std::to_string(i) + "]"));
      items.push_back(std::move(s));
    }
    return GgufValue::str_array(std::move(items));
  }
  NIBBLE_ASSIGN_OR_RETURN(std::vector<uint8_t> b, c.read_bytes(*min_bytes, "key '" + printable(key) + "'"));
  return GgufValue::raw_array(et, count, std::move(b));
}

}  // namespace

Result<std::unique_ptr<GgufFile>> GgufFile::open(const std::string& path) {
  NIBBLE_ASSIGN_OR_RETURN(std::unique_ptr<MappedFile> map, MappedFile::open(path));
  const uint8_t* data = map->data();
  const uint64_t size = map->size();
  NIBBLE_ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> f, parse(data, size, path));
  f->map_ = std::move(map);
  return f;
}

Result<std::unique_ptr<GgufFile>> GgufFile::parse(const uint8_t* data, uint64_t size,
                                                  const std::string& name) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->name_ = name;
  f->size_ = size;
  Cursor c(data, size, f->name_);

  if (size < 4 || std::memcmp(data, "GGUF", 4) != 0) {
    if (size < 4) {
      return make_error(ErrorCode::kFormat, "%s: not a GGUF file: only %llu bytes", printable(name).c_str(),
                        static_cast<ull>(size));
    }
    return make_error(ErrorCode::kFormat,
                      "%s: not a GGUF file: magic is %02x %02x %02x %02x, expected 'GGUF'",
                      printable(name).c_str(), data[0], data[1], data[2], data[3]);
  }
  (void)c.read<uint32_t>("magic");
  NIBBLE_ASSIGN_OR_RETURN(uint32_t version, c.read<uint32_t>("version"));
  if ((version & 0xFFFF) == 0 && version != 0) {
    return make_error(ErrorCode::kUnsupported,
                      "%s: version field 0x%08x looks byte-swapped: big-endian GGUF is not supported",
                      printable(name).c_str(), version);
  }
  if (version < 2 || version > 3) {
    return make_error(ErrorCode::kUnsupported, "%s: GGUF version %u is not supported (2 or 3 are)",
                      printable(name).c_str(), version);
  }
  f->version_ = version;
  NIBBLE_ASSIGN_OR_RETURN(uint64_t n_tensors, c.read<uint64_t>("tensor count"));
  NIBBLE_ASSIGN_OR_RETURN(uint64_t n_kv, c.read<uint64_t>("metadata count"));
  // Each KV record takes at least 8 (key length) + 1 (key) + 4 (type) + 1 bytes, each tensor info
  // at least 8 + 1 + 4 + 4 + 8: reject counts that cannot fit before allocating anything.
  auto kv_min = checked_mul(n_kv, 14);
  auto ti_min = checked_mul(n_tensors, 25);
  if (static_cast<int64_t>(n_kv) < 0 || !kv_min || *kv_min > c.remaining()) {
    return make_error(ErrorCode::kFormat, "%s: metadata count %llu cannot fit in %llu bytes",
                      printable(name).c_str(), static_cast<ull>(n_kv), static_cast<ull>(size));
  }
  if (static_cast<int64_t>(n_tensors) < 0 || !ti_min || *ti_min > c.remaining()) {
    return make_error(ErrorCode::kFormat, "%s: tensor count %llu cannot fit in %llu bytes",
                      printable(name).c_str(), static_cast<ull>(n_tensors), static_cast<ull>(size));
  }

  for (uint64_t i = 0; i < n_kv; ++i) {
    NIBBLE_ASSIGN_OR_RETURN(std::string key, c.read_string("metadata key #" + std::to_string(i)));
    if (key.empty()) {
      return make_error(ErrorCode::kFormat, "%s: metadata key #%llu is empty", printable(name).c_str(),
                        static_cast<ull>(i));
    }
    if (f->metadata_.contains(key)) {
      return make_error(ErrorCode::kFormat, "%s: duplicate metadata key '%s'", printable(name).c_str(),
                        printable(key).c_str());
    }
    NIBBLE_ASSIGN_OR_RETURN(uint32_t type, c.read<uint32_t>("value type"));
    if (!valid_value_type(type)) {
      return make_error(ErrorCode::kFormat, "%s: key '%s': unknown value type %u", printable(name).c_str(),
                        printable(key).c_str(), type);
    }
    NIBBLE_ASSIGN_OR_RETURN(GgufValue value, read_value(c, type, key, name));
    f->metadata_.set(key, std::move(value));
  }

  if (const GgufValue* a = f->metadata_.find("general.alignment")) {
    if (a->type() != GgufType::kUint32) {
      return make_error(ErrorCode::kFormat, "%s: general.alignment has type %s, expected uint32",
                        printable(name).c_str(), gguf_type_name(a->type()));
    }
    const uint32_t align = a->as<uint32_t>();
    if (align == 0 || (align & (align - 1)) != 0) {
      return make_error(ErrorCode::kFormat, "%s: general.alignment %u is not a power of two",
                        printable(name).c_str(), align);
    }
    f->alignment_ = align;
  }

  f->tensors_.reserve(std::min<uint64_t>(n_tensors, 1u << 16));  // grows as records prove real
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo t;
    NIBBLE_ASSIGN_OR_RETURN(t.name, c.read_string("tensor name #" + std::to_string(i)));
    const std::string tn_text = printable(t.name);
    const char* tn = tn_text.c_str();
    if (t.name.size() > kGgufMaxNameLength) {
      return make_error(ErrorCode::kFormat, "%s: tensor #%llu name is %zu bytes, limit is %llu",
                        printable(name).c_str(), static_cast<ull>(i), t.name.size(),
                        static_cast<ull>(kGgufMaxNameLength));
    }
    if (f->tensor_index_.count(t.name) != 0) {
      return make_error(ErrorCode::kFormat, "%s: duplicate tensor name '%s'", printable(name).c_str(), tn);
    }
    NIBBLE_ASSIGN_OR_RETURN(uint32_t n_dims, c.read<uint32_t>("tensor n_dims"));
    if (n_dims > kGgufMaxDims) {
      return make_error(ErrorCode::kFormat, "%s: tensor '%s' has %u dimensions, at most %u allowed",
                        printable(name).c_str(), tn, n_dims, kGgufMaxDims);
    }
    uint64_t n_el = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      NIBBLE_ASSIGN_OR_RETURN(uint64_t ne, c.read<uint64_t>("tensor dimension"));
      if (static_cast<int64_t>(ne) < 0) {
        return make_error(ErrorCode::kFormat, "%s: tensor '%s' dimension %u is negative (%lld)",
                          printable(name).c_str(), tn, d, static_cast<long long>(ne));
      }
      auto m = checked_mul(n_el, ne);
      if (!m || static_cast<int64_t>(*m) < 0) {
        return make_error(ErrorCode::kFormat, "%s: tensor '%s': element count overflows",
                          printable(name).c_str(), tn);
      }
      n_el = *m;
      t.shape.push_back(ne);
    }
    NIBBLE_ASSIGN_OR_RETURN(uint32_t type, c.read<uint32_t>("tensor type"));
    const GgmlTypeTraits* tr = ggml_type_traits(type);
    if (tr == nullptr) {
      return make_error(ErrorCode::kUnsupported, "%s: tensor '%s' has unknown or removed type id %u",
                        printable(name).c_str(), tn, type);
    }
    t.type = static_cast<GgmlType>(type);
    if (t.ne(0) % tr->block_size != 0) {
      return make_error(ErrorCode::kFormat,
                        "%s: tensor '%s': row length %llu is not a multiple of %s's block size %u",
                        printable(name).c_str(), tn, static_cast<ull>(t.ne(0)), tr->name, tr->block_size);
    }
    auto bytes = checked_mul(n_el / tr->block_size, tr->type_size);
    if (!bytes) {
      return make_error(ErrorCode::kFormat, "%s: tensor '%s': byte size overflows", printable(name).c_str(), tn);
    }
    t.n_elements = n_el;
    t.n_bytes = *bytes;
    NIBBLE_ASSIGN_OR_RETURN(t.offset, c.read<uint64_t>("tensor offset"));
    f->tensor_index_[t.name] = f->tensors_.size();
    f->tensors_.push_back(std::move(t));
  }

  f->data_offset_ = align_up(c.pos(), f->alignment_);
  if (n_tensors > 0 && f->data_offset_ > size) {
    return make_error(ErrorCode::kFormat,
                      "%s: truncated: data section starts at byte %llu, file has %llu",
                      printable(name).c_str(), static_cast<ull>(f->data_offset_), static_cast<ull>(size));
  }
  // ggml requires the tensors packed in info order, each padded to the alignment.
  uint64_t expected = 0;
  for (auto& t : f->tensors_) {
    if (t.offset != expected) {
      return make_error(ErrorCode::kFormat,
                        "%s: tensor '%s' has data offset %llu, expected %llu (tensors must be "
                        "packed in order without gaps or overlap)",
                        printable(name).c_str(), printable(t.name).c_str(), static_cast<ull>(t.offset),
                        static_cast<ull>(expected));
    }
    auto start = checked_add(f->data_offset_, t.offset);
    auto end = start ? checked_add(*start, t.n_bytes) : std::nullopt;
    if (!end || *end > size) {
      return make_error(ErrorCode::kFormat, "%s: tensor '%s': data ends at byte %llu, file has %llu",
                        printable(name).c_str(), printable(t.name).c_str(),
                        static_cast<ull>(end.value_or(UINT64_MAX)), static_cast<ull>(size));
    }
    t.data = data + *start;
    auto next = checked_add(expected, align_up(t.n_bytes, f->alignment_));
    if (!next) {
      return make_error(ErrorCode::kFormat, "%s: tensor '%s': data offsets overflow", printable(name).c_str(),
                        printable(t.name).c_str());
    }
    expected = *next;
  }
  return f;
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace nibble
