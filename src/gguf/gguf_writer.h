// GgufWriter: writes GGUF v3 exactly as ggml's writer does (spec §1.12): header, KV records in
// order, tensor infos in data order with packed aligned offsets, zero padding, data. Output goes
// to a temporary file renamed into place on success, so a failed write leaves nothing behind.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "gguf/gguf_value.h"
#include "tensor/ggml_type.h"
#include "util/result.h"

namespace nibble {

class GgufWriter {
 public:
  // Produces a tensor's bytes on demand (called once, in order, while writing). Must append
  // exactly the tensor's byte size to `out`.
  using Producer = std::function<Status(std::vector<uint8_t>& out)>;
  // Streams a tensor's bytes in pieces, for tensors too large to hold in memory at once: calls
  // `sink` in order; the pieces must add up to exactly the tensor's byte size.
  using Sink = std::function<Status(const uint8_t* data, size_t n)>;
  using StreamProducer = std::function<Status(const Sink& sink)>;
  // Called after each tensor is written: (index, count, name).
  using ProgressFn = std::function<void(size_t, size_t, const std::string&)>;

  GgufMetadata& metadata() { return metadata_; }
  const GgufMetadata& metadata() const { return metadata_; }

  // Adds a tensor whose bytes are copied from `data` (n_bytes must match the shape and type).
  Status add_tensor(const std::string& name, GgmlType type, const std::vector<uint64_t>& shape,
                    const uint8_t* data, uint64_t n_bytes);
  // Adds a tensor whose bytes are produced while writing.
  Status add_tensor(const std::string& name, GgmlType type, const std::vector<uint64_t>& shape,
                    Producer producer);

  // Adds a tensor whose bytes are streamed while writing.
  Status add_tensor_streamed(const std::string& name, GgmlType type,
                             const std::vector<uint64_t>& shape, StreamProducer producer);

  void set_progress(ProgressFn fn) { progress_ = std::move(fn); }

  // Writes the file atomically (PATH.tmp-XXXX then rename).
  Status write(const std::string& path) const;
  // Serialises to memory (tests, small files).
  Result<std::vector<uint8_t>> write_to_memory() const;

  size_t n_tensors() const { return tensors_.size(); }

 private:
  struct Entry {
    std::string name;
    GgmlType type;
    std::vector<uint64_t> shape;
    uint64_t n_bytes;
    Producer producer;
    StreamProducer stream;  // used instead of producer when set
  };
  Result<uint64_t> alignment() const;
  Status write_stream(std::function<Status(const uint8_t*, size_t)> sink) const;

  GgufMetadata metadata_;
  std::vector<Entry> tensors_;
  ProgressFn progress_;
};

// Number of dimensions ggml's writer records: index of the last dim > 1, plus one, at least 1.
uint32_t gguf_canonical_n_dims(const std::vector<uint64_t>& shape);

}  // namespace nibble
