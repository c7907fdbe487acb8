// SPDX-License-Identifier: MIT
// The one exception guard: every extern "C" body and every libuv callback
// that enters C++ runs its code through one of these, so no exception ever
// unwinds into C or through a libuv frame. std::bad_alloc becomes
// ICAP_ENOMEM, anything else ICAP_EIO (DESIGN.md, habit 31).
#ifndef ICAP_API_GUARD_HPP
#define ICAP_API_GUARD_HPP

#include <new>
#include <utility>

#include "icap/icap.h"

namespace icap::detail {

// The code an escaping exception maps to.
inline int exception_code() noexcept {
  try {
    throw;
  } catch (const std::bad_alloc &) {
    return ICAP_ENOMEM;
  } catch (...) {
    return ICAP_EIO;
  }
}

// For functions that return 0 or a negative ICAP_E* code.
template <class F>
int guard(F &&f) noexcept {
  try {
    return std::forward<F>(f)();
  } catch (...) {
    return exception_code();
  }
}

// For functions that return a value: `fallback` when anything was thrown.
template <class T, class F>
T guard_value(T fallback, F &&f) noexcept {
  try {
    return std::forward<F>(f)();
  } catch (...) {
    return fallback;
  }
}

// For void functions and callbacks: `on_error(code)` runs (itself guarded)
// when anything was thrown.
template <class F, class E>
void guard_void(F &&f, E &&on_error) noexcept {
  try {
    std::forward<F>(f)();
  } catch (...) {
    int code = exception_code();
    try {
      std::forward<E>(on_error)(code);
    } catch (...) {
    }
  }
}

template <class F>
void guard_void(F &&f) noexcept {
  guard_void(std::forward<F>(f), [](int) {});
}

// The body of an icap_*_new(T **out) function: `*out` gets a new T, and is
// left as it was when the allocation fails.
template <class T>
int new_object(T **out) noexcept {
  if (!out) return ICAP_EINVAL;
  return guard([&] {
    *out = new T();
    return 0;
  });
}

}  // namespace icap::detail

#endif
