// The nibble binary's counting operator new/delete: every heap allocation made through new (all
// std::vector / std::string storage) updates nibble::heap_stats, so `--memory-report` can give
// the peak heap of a run by phase (src/plan/memory_report.h). Sizes are malloc_usable_size, the
// bytes the allocator really hands out. Only this executable replaces operator new; libraries and
// test binaries keep the default one.
#include <malloc.h>

#include <cstdlib>
#include <new>

#include "plan/memory_report.h"

namespace {

void* counted(void* p) {
  if (p != nullptr) nibble::heap_stats::on_alloc(malloc_usable_size(p));
  return p;
}

void* alloc(std::size_t n) {
  void* p = std::malloc(n == 0 ? 1 : n);
  if (p == nullptr) throw std::bad_alloc();
  return counted(p);
}

void* alloc_aligned(std::size_t n, std::align_val_t al) {
  void* p = nullptr;
  std::size_t a = static_cast<std::size_t>(al);
  if (a < sizeof(void*)) a = sizeof(void*);
  if (posix_memalign(&p, a, n == 0 ? 1 : n) != 0) throw std::bad_alloc();
  return counted(p);
}

void release(void* p) noexcept {
  if (p == nullptr) return;
  nibble::heap_stats::on_free(malloc_usable_size(p));
  std::free(p);
}

const bool kInstalled = [] {
  nibble::heap_stats::set_counting(true);
  return true;
}();

}  // namespace

void* operator new(std::size_t n) { return alloc(n); }
void* operator new[](std::size_t n) { return alloc(n); }
void* operator new(std::size_t n, std::align_val_t a) { return alloc_aligned(n, a); }
void* operator new[](std::size_t n, std::align_val_t a) { return alloc_aligned(n, a); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try { return alloc(n); } catch (...) { return nullptr; }
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  try { return alloc(n); } catch (...) { return nullptr; }
}
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  try { return alloc_aligned(n, a); } catch (...) { return nullptr; }
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  try { return alloc_aligned(n, a); } catch (...) { return nullptr; }
}
void operator delete(void* p) noexcept { release(p); }
void operator delete[](void* p) noexcept { release(p); }
void operator delete(void* p, std::size_t) noexcept { release(p); }
void operator delete[](void* p, std::size_t) noexcept { release(p); }
void operator delete(void* p, std::align_val_t) noexcept { release(p); }
void operator delete[](void* p, std::align_val_t) noexcept { release(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { release(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { release(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { release(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { release(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { release(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { release(p); }
