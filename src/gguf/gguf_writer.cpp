// GGUF writer, byte-compatible with ggml's (spec §1.12).
#include "gguf/gguf_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <unordered_set>

#include "gguf/gguf_file.h"
#include "util/atomic_file.h"
#include "util/checked_math.h"

namespace nibble {

uint32_t gguf_canonical_n_dims(const std::vector<uint64_t>& shape) {
  // Trailing 1s are dropped; a 0 (an empty tensor) is significant and kept.
  uint32_t n = 1;
  for (uint32_t i = 0; i < shape.size(); ++i) {
    if (shape[i] != 1) n = i + 1;
  }
  return n;
}

namespace {

// Readers accept any power of two; nibble refuses to write absurd padding (1 MiB is already far
// beyond any real file's 32).
constexpr uint32_t kMaxAlignment = 1u << 20;

Status check_tensor(const std::string& name, GgmlType type, const std::vector<uint64_t>& shape,
                    uint64_t* n_bytes) {
  if (name.empty() || name.size() > kGgufMaxNameLength) {
    return make_error(ErrorCode::kInvalidArgument, "gguf writer: tensor name '%s' is %zu bytes, must be 1..%llu",
                      name.c_str(), name.size(), static_cast<unsigned long long>(kGgufMaxNameLength));
  }
  if (shape.empty() || shape.size() > kGgufMaxDims) {
    return make_error(ErrorCode::kInvalidArgument, "gguf writer: tensor '%s' has %zu dimensions (1..4 allowed)",
                      name.c_str(), shape.size());
  }
  const GgmlTypeTraits* tr = ggml_type_traits(static_cast<uint32_t>(type));
  if (tr == nullptr) {
    return make_error(ErrorCode::kInvalidArgument, "gguf writer: tensor '%s' has an invalid type", name.c_str());
  }
  if (shape[0] % tr->block_size != 0) {
    return make_error(ErrorCode::kInvalidArgument,
                      "gguf writer: tensor '%s': row length %llu is not a multiple of %s's block size %u",
                      name.c_str(), static_cast<unsigned long long>(shape[0]), tr->name, tr->block_size);
  }
  uint64_t n = 1;
  for (uint64_t d : shape) {
    auto m = checked_mul(n, d);
    if (!m) return make_error(ErrorCode::kInvalidArgument, "gguf writer: tensor '%s' is too large", name.c_str());
    n = *m;
  }
  auto b = checked_mul(n / tr->block_size, tr->type_size);
  if (!b) return make_error(ErrorCode::kInvalidArgument, "gguf writer: tensor '%s' is too large", name.c_str());
  *n_bytes = *b;
  return ok_status();
}

class ByteSink {
 public:
  explicit ByteSink(std::function<Status(const uint8_t*, size_t)> sink) : sink_(std::move(sink)) {}
  template <typename T>
  void put(T v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    buf_.insert(buf_.end(), p, p + sizeof(T));
  }
  void put_bytes(const uint8_t* p, size_t n) { buf_.insert(buf_.end(), p, p + n); }
  void put_string(const std::string& s) {
    put<uint64_t>(s.size());
    put_bytes(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  }
  void pad_to(uint64_t align) {
    while ((written_ + buf_.size()) % align != 0) buf_.push_back(0);
  }
  Status flush() {
    if (buf_.empty()) return ok_status();
    NIBBLE_TRY(sink_(buf_.data(), buf_.size()));
    written_ += buf_.size();
    buf_.clear();
    return ok_status();
  }
  Status write_direct(const uint8_t* p, size_t n) {
    NIBBLE_TRY(flush());
    NIBBLE_TRY(sink_(p, n));
    written_ += n;
    return ok_status();
  }

 private:
  std::function<Status(const uint8_t*, size_t)> sink_;
  std::vector<uint8_t> buf_;
  uint64_t written_ = 0;
};

void put_value(ByteSink& s, const GgufValue& v) {
  s.put<uint32_t>(static_cast<uint32_t>(v.type()));
  switch (v.type()) {
    case GgufType::kString:
      s.put_string(v.string());
      return;
    case GgufType::kArray:
      s.put<uint32_t>(static_cast<uint32_t>(v.array_type()));
      s.put<uint64_t>(v.array_size());
      if (v.array_type() == GgufType::kString) {
        for (const auto& str : v.strings()) s.put_string(str);
      } else {
        s.put_bytes(v.raw().data(), v.raw().size());
      }
      return;
    default:
      s.put_bytes(v.raw().data(), v.raw().size());
  }
}

}  // namespace

Status GgufWriter::add_tensor(const std::string& name, GgmlType type,
                              const std::vector<uint64_t>& shape, const uint8_t* data,
                              uint64_t n_bytes) {
  uint64_t expected = 0;
  NIBBLE_TRY(check_tensor(name, type, shape, &expected));
  if (expected != n_bytes) {
    return make_error(ErrorCode::kInvalidArgument, "gguf writer: tensor '%s' has %llu bytes, its shape needs %llu",
                      name.c_str(), static_cast<unsigned long long>(n_bytes),
                      static_cast<unsigned long long>(expected));
  }
  return add_tensor(name, type, shape, [data, n_bytes](std::vector<uint8_t>& out) {
    out.insert(out.end(), data, data + n_bytes);
    return ok_status();
  });
}

Status GgufWriter::add_tensor(const std::string& name, GgmlType type,
                              const std::vector<uint64_t>& shape, Producer producer) {
  uint64_t n_bytes = 0;
  NIBBLE_TRY(check_tensor(name, type, shape, &n_bytes));
  for (const auto& e : tensors_) {
    if (e.name == name) {
      return make_error(ErrorCode::kInvalidArgument, "gguf writer: duplicate tensor name '%s'", name.c_str());
    }
  }
  tensors_.push_back({name, type, shape, n_bytes, std::move(producer), {}});
  return ok_status();
}

Status GgufWriter::add_tensor_streamed(const std::string& name, GgmlType type,
                                       const std::vector<uint64_t>& shape,
                                       StreamProducer producer) {
  NIBBLE_TRY(add_tensor(name, type, shape, Producer()));
  tensors_.back().stream = std::move(producer);
  return ok_status();
}

Result<uint64_t> GgufWriter::alignment() const {
  const GgufValue* a = metadata_.find("general.alignment");
  if (a == nullptr) return kGgufDefaultAlignment;
  if (a->type() != GgufType::kUint32 || a->as<uint32_t>() == 0 ||
      (a->as<uint32_t>() & (a->as<uint32_t>() - 1)) != 0 || a->as<uint32_t>() > kMaxAlignment) {
    return make_error(ErrorCode::kInvalidArgument,
                      "gguf writer: general.alignment must be a uint32 power of two up to %u",
                      kMaxAlignment);
  }
  return static_cast<uint64_t>(a->as<uint32_t>());
}

Status GgufWriter::write_stream(std::function<Status(const uint8_t*, size_t)> sink) const {
  NIBBLE_ASSIGN_OR_RETURN(uint64_t align, alignment());
  ByteSink s(std::move(sink));
  s.put_bytes(reinterpret_cast<const uint8_t*>("GGUF"), 4);
  s.put<uint32_t>(3);
  s.put<uint64_t>(tensors_.size());
  s.put<uint64_t>(metadata_.size());
  for (const auto& [key, value] : metadata_.entries()) {
    s.put_string(key);
    put_value(s, value);
  }
  uint64_t offset = 0;
  for (const auto& t : tensors_) {
    s.put_string(t.name);
    const uint32_t n_dims = gguf_canonical_n_dims(t.shape);
    s.put<uint32_t>(n_dims);
    for (uint32_t d = 0; d < n_dims; ++d) s.put<uint64_t>(d < t.shape.size() ? t.shape[d] : 1);
    s.put<uint32_t>(static_cast<uint32_t>(t.type));
    s.put<uint64_t>(offset);
    offset += align_up(t.n_bytes, align);
  }
  s.pad_to(align);
  NIBBLE_TRY(s.flush());
  std::vector<uint8_t> buf;
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const auto& t = tensors_[i];
    if (t.stream) {
      uint64_t n = 0;
      NIBBLE_TRY(t.stream([&](const uint8_t* p, size_t k) -> Status {
        n += k;
        if (n > t.n_bytes) {
          return make_error(ErrorCode::kInternal, "gguf writer: tensor '%s' streamed more than %llu bytes",
                            t.name.c_str(), static_cast<unsigned long long>(t.n_bytes));
        }
        return s.write_direct(p, k);
      }));
      if (n != t.n_bytes) {
        return make_error(ErrorCode::kInternal, "gguf writer: tensor '%s' streamed %llu bytes, expected %llu",
                          t.name.c_str(), static_cast<unsigned long long>(n),
                          static_cast<unsigned long long>(t.n_bytes));
      }
      s.pad_to(align);
      NIBBLE_TRY(s.flush());
      if (progress_) progress_(i, tensors_.size(), t.name);
      continue;
    }
    buf.clear();
    NIBBLE_TRY(t.producer(buf));
    if (buf.size() != t.n_bytes) {
      return make_error(ErrorCode::kInternal, "gguf writer: tensor '%s' produced %zu bytes, expected %llu",
                        t.name.c_str(), buf.size(), static_cast<unsigned long long>(t.n_bytes));
    }
    NIBBLE_TRY(s.write_direct(buf.data(), buf.size()));
    s.pad_to(align);
    NIBBLE_TRY(s.flush());
    if (progress_) progress_(i, tensors_.size(), t.name);
  }
  return s.flush();
}

Status GgufWriter::write(const std::string& path) const {
  NIBBLE_ASSIGN_OR_RETURN(AtomicFile out, AtomicFile::create(path));
  NIBBLE_TRY(write_stream([&out](const uint8_t* p, size_t n) { return out.write(p, n); }));
  return out.commit();
}

Result<std::vector<uint8_t>> GgufWriter::write_to_memory() const {
  std::vector<uint8_t> bytes;
  NIBBLE_TRY(write_stream([&bytes](const uint8_t* p, size_t n) {
    bytes.insert(bytes.end(), p, p + n);
    return ok_status();
  }));
  return bytes;
}

}  // namespace nibble
