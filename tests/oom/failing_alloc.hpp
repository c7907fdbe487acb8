// SPDX-License-Identifier: MIT
// A test hook that makes one chosen allocation fail. The test executable
// that links failing_alloc.cc replaces the global operator new/new[] (all
// forms) and installs the same counter into libuv (uv_replace_allocator), so
// that both libicap's C++ code and libuv inside it see allocations fail.
//
// Only threads that are not exempt count: the test's own thread (the client)
// marks itself exempt, so every counted allocation is made by the server.
#ifndef ICAP_TESTS_OOM_FAILING_ALLOC_HPP
#define ICAP_TESTS_OOM_FAILING_ALLOC_HPP

#include <cstdint>

namespace oom {

// Must run before libuv allocates anything (at the start of main).
void install_uv_allocator();

// Counts from zero again; the n-th counted allocation from now fails
// (n >= 1), all others succeed. arm(0) counts without failing.
void arm(uint64_t n);
// Stops counting and failing. Returns how many allocations were counted
// since arm().
uint64_t disarm();
// True once the armed allocation was refused (since the last arm()).
bool injected();

// Exempts the calling thread (for the rest of its life) from counting.
void exempt_this_thread();

}  // namespace oom

#endif
