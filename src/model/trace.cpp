// The trace callback slot.
#include "model/trace.h"

namespace nibble {

namespace detail {
TraceFn* g_trace = nullptr;
}

void set_trace(TraceFn fn) {
  static TraceFn slot;
  slot = std::move(fn);
  detail::g_trace = slot ? &slot : nullptr;
}

}  // namespace nibble
