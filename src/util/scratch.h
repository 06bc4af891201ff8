// ScratchBuffer: a buffer that grows to the largest size asked of it and is then reused, so the
// forward pass allocates nothing once warm (decoding runs allocation-free). Declare one
// `thread_local` per use site; contents are not preserved (not even when it grows) or zeroed
// between uses.
#pragma once

#include <cstddef>
#include <vector>

namespace nibble {

template <typename T>
class ScratchBuffer {
 public:
  T* get(size_t n) {
    if (v_.size() < n) {
      // Exactly n (a vector's own growth would keep up to twice that), the old storage freed
      // first: the footprint is the largest request, which `nibble plan` predicts.
      v_.clear();
      v_.shrink_to_fit();
      v_.resize(n);
    }
    return v_.data();
  }
  size_t capacity_bytes() const { return v_.capacity() * sizeof(T); }

 private:
  std::vector<T> v_;
};

}  // namespace nibble
