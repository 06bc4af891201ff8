// NIBBLE_CHECK: assertions for nibble's own invariants (never for outside input). Stays on in
// release builds and prints file:line before aborting.
#pragma once

#include <cstdio>
#include <cstdlib>

#define NIBBLE_CHECK(cond, msg)                                                      \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      std::fprintf(stderr, "nibble: internal error at %s:%d: %s (%s)\n", __FILE__,   \
                   __LINE__, msg, #cond);                                            \
      std::abort();                                                                  \
    }                                                                                \
  } while (0)
