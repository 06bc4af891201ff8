// Softmax in float32 (max-subtracted). Oracle: ref::softmax.
#pragma once

#include <cstdint>

namespace nibble {

void softmax(float* x, int64_t n);

}  // namespace nibble
