// GgufValue and GgufMetadata: typed GGUF metadata (spec gguf-and-quant-formats §1.4).
// Values keep their exact on-disk type so that read -> write is byte-identical; numeric payloads
// are stored as little-endian bytes, strings as std::string.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "util/result.h"

namespace nibble {

enum class GgufType : uint32_t {
  kUint8 = 0, kInt8 = 1, kUint16 = 2, kInt16 = 3, kUint32 = 4, kInt32 = 5, kFloat32 = 6,
  kBool = 7, kString = 8, kArray = 9, kUint64 = 10, kInt64 = 11, kFloat64 = 12,
};
inline constexpr uint32_t kGgufTypeCount = 13;

const char* gguf_type_name(GgufType t);
// Bytes of one encoded value of a fixed-size type (0 for string and array).
uint32_t gguf_type_size(GgufType t);

class GgufValue {
 public:
  GgufValue() = default;

  // Scalars.
  static GgufValue u8(uint8_t v) { return scalar(GgufType::kUint8, &v, 1); }
  static GgufValue i8(int8_t v) { return scalar(GgufType::kInt8, &v, 1); }
  static GgufValue u16(uint16_t v) { return scalar(GgufType::kUint16, &v, 2); }
  static GgufValue i16(int16_t v) { return scalar(GgufType::kInt16, &v, 2); }
  static GgufValue u32(uint32_t v) { return scalar(GgufType::kUint32, &v, 4); }
  static GgufValue i32(int32_t v) { return scalar(GgufType::kInt32, &v, 4); }
  static GgufValue f32(float v) { return scalar(GgufType::kFloat32, &v, 4); }
  static GgufValue u64(uint64_t v) { return scalar(GgufType::kUint64, &v, 8); }
  static GgufValue i64(int64_t v) { return scalar(GgufType::kInt64, &v, 8); }
  static GgufValue f64(double v) { return scalar(GgufType::kFloat64, &v, 8); }
  static GgufValue boolean(bool v) {
    uint8_t b = v ? 1 : 0;
    return scalar(GgufType::kBool, &b, 1);
  }
  static GgufValue str(std::string s) {
    GgufValue v;
    v.type_ = GgufType::kString;
    v.str_ = std::move(s);
    return v;
  }
  // Arrays.
  static GgufValue str_array(std::vector<std::string> items) {
    GgufValue v;
    v.type_ = GgufType::kArray;
    v.array_type_ = GgufType::kString;
    v.count_ = items.size();
    v.strs_ = std::move(items);
    return v;
  }
  template <typename T>
  static GgufValue array(GgufType elem, const std::vector<T>& items) {
    GgufValue v;
    v.type_ = GgufType::kArray;
    v.array_type_ = elem;
    v.count_ = items.size();
    v.raw_.resize(items.size() * sizeof(T));
    if (!items.empty()) std::memcpy(v.raw_.data(), items.data(), v.raw_.size());
    return v;
  }
  static GgufValue bool_array(const std::vector<bool>& items) {
    std::vector<uint8_t> b(items.begin(), items.end());
    return array(GgufType::kBool, b);
  }
  // A numeric/bool array from its raw little-endian element bytes (reader use).
  static GgufValue raw_array(GgufType elem, uint64_t count, std::vector<uint8_t> bytes) {
    GgufValue v;
    v.type_ = GgufType::kArray;
    v.array_type_ = elem;
    v.count_ = count;
    v.raw_ = std::move(bytes);
    return v;
  }
  static GgufValue raw_scalar(GgufType t, const uint8_t* bytes) {
    return scalar(t, bytes, gguf_type_size(t));
  }

  GgufType type() const { return type_; }
  bool is_array() const { return type_ == GgufType::kArray; }
  GgufType array_type() const { return array_type_; }
  uint64_t array_size() const { return count_; }

  // Scalar access; these never fail: use the typed lookups on GgufMetadata for checked reads.
  template <typename T>
  T scalar_as() const {
    T out{};
    std::memcpy(&out, raw_.data(), std::min(sizeof(T), raw_.size()));
    return out;
  }
  const std::string& string() const { return str_; }
  const std::vector<std::string>& strings() const { return strs_; }
  // Raw bytes of a numeric scalar or of all elements of a numeric/bool array.
  const std::vector<uint8_t>& raw() const { return raw_; }
  // Element i of a numeric array, converted to T from the stored element type.
  template <typename T>
  T element(uint64_t i) const {
    const uint8_t* p = raw_.data() + i * gguf_type_size(array_type_);
    return convert_from<T>(array_type_, p);
  }
  // Converts a numeric scalar to T (from whatever integer/float type it holds).
  template <typename T>
  T as() const {
    return convert_from<T>(type_, raw_.data());
  }

  // Short human-readable rendering (arrays abbreviated), for `inspect`.
  std::string to_display_string(size_t max_items = 8) const;

  bool operator==(const GgufValue& o) const {
    return type_ == o.type_ && array_type_ == o.array_type_ && count_ == o.count_ &&
           raw_ == o.raw_ && str_ == o.str_ && strs_ == o.strs_;
  }

 private:
  static GgufValue scalar(GgufType t, const void* p, size_t n) {
    GgufValue v;
    v.type_ = t;
    v.raw_.assign(static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + n);
    return v;
  }
  template <typename T>
  static T convert_from(GgufType t, const uint8_t* p) {
    switch (t) {
      case GgufType::kUint8: return static_cast<T>(load<uint8_t>(p));
      case GgufType::kInt8: return static_cast<T>(load<int8_t>(p));
      case GgufType::kUint16: return static_cast<T>(load<uint16_t>(p));
      case GgufType::kInt16: return static_cast<T>(load<int16_t>(p));
      case GgufType::kUint32: return static_cast<T>(load<uint32_t>(p));
      case GgufType::kInt32: return static_cast<T>(load<int32_t>(p));
      case GgufType::kFloat32: return static_cast<T>(load<float>(p));
      case GgufType::kBool: return static_cast<T>(load<uint8_t>(p) != 0);
      case GgufType::kUint64: return static_cast<T>(load<uint64_t>(p));
      case GgufType::kInt64: return static_cast<T>(load<int64_t>(p));
      case GgufType::kFloat64: return static_cast<T>(load<double>(p));
      default: return T{};
    }
  }
  template <typename U>
  static U load(const uint8_t* p) {
    U u;
    std::memcpy(&u, p, sizeof(U));
    return u;
  }

  GgufType type_ = GgufType::kUint8;
  GgufType array_type_ = GgufType::kUint8;
  uint64_t count_ = 0;
  std::vector<uint8_t> raw_;
  std::string str_;
  std::vector<std::string> strs_;
};

// Ordered key -> value map (file order is kept; set() of an existing key replaces it in place).
class GgufMetadata {
 public:
  void set(const std::string& key, GgufValue value);
  // Removes a key; returns whether it was present.
  bool erase(const std::string& key);
  const GgufValue* find(const std::string& key) const;
  bool contains(const std::string& key) const { return find(key) != nullptr; }
  size_t size() const { return entries_.size(); }
  const std::vector<std::pair<std::string, GgufValue>>& entries() const { return entries_; }

  // Checked typed reads: a missing key or a value of another type is an error naming the key,
  // the expected and the actual type (llama.cpp is strict about scalar types too).
  Result<uint32_t> get_u32(const std::string& key) const;
  Result<float> get_f32(const std::string& key) const;
  Result<bool> get_bool(const std::string& key) const;
  Result<std::string> get_string(const std::string& key) const;
  Result<const GgufValue*> get_array(const std::string& key, GgufType elem) const;
  // u32 or an array of u32/i32 of length n (per-layer values, e.g. head_count_kv).
  Result<std::vector<uint32_t>> get_u32_per_layer(const std::string& key, uint32_t n) const;

 private:
  std::vector<std::pair<std::string, GgufValue>> entries_;
  std::unordered_map<std::string, size_t> index_;
};

}  // namespace nibble
