// trace(): names every intermediate of a forward pass (STYLE §2.4, llama.cpp's cb()). Off by
// default (one branch); a debug tool or test installs a callback to dump or compare tensors.
#pragma once

#include <cstdint>
#include <functional>

namespace nibble {

// name, layer (-1 = none), data [n_rows, n_cols] row-major.
using TraceFn = std::function<void(const char* name, int layer, const float* data, int64_t n_rows,
                                   int64_t n_cols)>;

// Installs (or with nullptr removes) the process-wide trace callback. Not thread-safe.
void set_trace(TraceFn fn);

namespace detail {
extern TraceFn* g_trace;
}

inline void trace(const float* data, int64_t n_rows, int64_t n_cols, const char* name,
                  int layer = -1) {
  if (detail::g_trace != nullptr) (*detail::g_trace)(name, layer, data, n_rows, n_cols);
}

}  // namespace nibble
