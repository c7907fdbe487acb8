// SPDX-License-Identifier: MIT
#include "failing_alloc.hpp"

#include <uv.h>

#include <atomic>
#include <cstdlib>
#include <new>

// AddressSanitizer and LeakSanitizer allow a program to replace operator
// new and delete: the replacements below allocate with malloc/free, which the
// sanitizer intercepts, so leak and use-after-free checks still apply. Every
// form of new and delete is replaced, so that no memory from malloc reaches
// the sanitizer's own operator delete (which would report a mismatch).

namespace oom {
namespace {

std::atomic<bool> g_armed{false};
std::atomic<uint64_t> g_target{0};
std::atomic<uint64_t> g_count{0};
std::atomic<bool> g_injected{false};
thread_local bool t_exempt = false;

// True when this allocation is the one to refuse.
bool should_fail() noexcept {
  if (t_exempt || !g_armed.load(std::memory_order_relaxed)) return false;
  uint64_t n = g_count.fetch_add(1, std::memory_order_relaxed) + 1;
  if (n != g_target.load(std::memory_order_relaxed)) return false;
  g_injected.store(true);
  return true;
}

void *counted_malloc(size_t n) noexcept { return should_fail() ? nullptr : std::malloc(n); }

// libuv's realloc is never refused: libuv 1.44 (Debian 12) grows its table
// of I/O watchers with realloc and calls abort() when that fails
// (maybe_resize() in src/unix/core.c; later versions return UV_ENOMEM), so
// a refused realloc there would test libuv, not libicap. Its other reallocs
// are rare (the write queue's buffer list uses malloc).
void *uv_realloc_never_fails(void *p, size_t n) noexcept { return std::realloc(p, n); }

void *counted_calloc(size_t count, size_t size) noexcept {
  return should_fail() ? nullptr : std::calloc(count, size);
}

void *new_impl(size_t n) {
  if (void *p = counted_malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}

void *new_aligned_impl(size_t n, std::align_val_t al) {
  size_t a = static_cast<size_t>(al);
  if (a < sizeof(void *)) a = sizeof(void *);
  void *p = nullptr;
  if (should_fail() || posix_memalign(&p, a, n ? n : 1) != 0) throw std::bad_alloc();
  return p;
}

}  // namespace

void install_uv_allocator() {
  uv_replace_allocator(counted_malloc, uv_realloc_never_fails, counted_calloc, std::free);
}

void arm(uint64_t n) {
  g_armed.store(false);
  g_count.store(0);
  g_injected.store(false);
  g_target.store(n);
  g_armed.store(true);
}

uint64_t disarm() {
  g_armed.store(false);
  return g_count.load();
}

bool injected() { return g_injected.load(); }

void exempt_this_thread() { t_exempt = true; }

}  // namespace oom

void *operator new(size_t n) { return oom::new_impl(n); }
void *operator new[](size_t n) { return oom::new_impl(n); }
void *operator new(size_t n, const std::nothrow_t &) noexcept {
  return oom::counted_malloc(n ? n : 1);
}
void *operator new[](size_t n, const std::nothrow_t &) noexcept {
  return oom::counted_malloc(n ? n : 1);
}
void *operator new(size_t n, std::align_val_t a) { return oom::new_aligned_impl(n, a); }
void *operator new[](size_t n, std::align_val_t a) { return oom::new_aligned_impl(n, a); }
void *operator new(size_t n, std::align_val_t a, const std::nothrow_t &) noexcept {
  try {
    return oom::new_aligned_impl(n, a);
  } catch (...) {
    return nullptr;
  }
}
void *operator new[](size_t n, std::align_val_t a, const std::nothrow_t &) noexcept {
  try {
    return oom::new_aligned_impl(n, a);
  } catch (...) {
    return nullptr;
  }
}

void operator delete(void *p) noexcept { std::free(p); }
void operator delete[](void *p) noexcept { std::free(p); }
void operator delete(void *p, size_t) noexcept { std::free(p); }
void operator delete[](void *p, size_t) noexcept { std::free(p); }
void operator delete(void *p, const std::nothrow_t &) noexcept { std::free(p); }
void operator delete[](void *p, const std::nothrow_t &) noexcept { std::free(p); }
void operator delete(void *p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void *p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void *p, size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void *p, size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void *p, std::align_val_t, const std::nothrow_t &) noexcept { std::free(p); }
void operator delete[](void *p, std::align_val_t, const std::nothrow_t &) noexcept { std::free(p); }
