// CPU feature checks that both compilers accept (clang 14's __builtin_cpu_supports does not know
// "f16c", so F16C is read from CPUID leaf 1, ECX bit 29). CPUID is read once: in a virtual
// machine each CPUID traps to the hypervisor (tens of microseconds), so callers on hot paths
// must not pay for it.
#pragma once

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace nibble {

inline bool cpu_has_f16c() {
#if defined(__x86_64__) || defined(__i386__)
  static const bool yes = [] {
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (__get_cpuid(1, &a, &b, &c, &d) == 0) return false;
    return (c & (1u << 29)) != 0;
  }();
  return yes;
#else
  return false;
#endif
}

}  // namespace nibble
