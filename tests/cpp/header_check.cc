// SPDX-License-Identifier: MIT
// Compiles the C++ headers on their own, with -Wall -Wextra -Wpedantic
// -Werror, as C++17 and as C++20 (where coro.hpp is active).
#include <icap/icap.hpp>
#include <icap/coro.hpp>

#if __cplusplus >= 202002L && defined(__cpp_impl_coroutine)
static_assert(ICAP_HAS_COROUTINES == 1, "coroutines expected in C++20");
#else
static_assert(ICAP_HAS_COROUTINES == 0, "no coroutines before C++20");
#endif

namespace {
[[maybe_unused]] void instantiate(icap::Server& s) {
  s.service("x").reqmod([](icap::Request& r) {
    r.offload([] { return 1; }, [](icap::Request&, int) {});
    r.read_chunk([](icap::Request&, const icap::ChunkView&) {});
  });
#if ICAP_HAS_COROUTINES
  s.service("y").respmod([](icap::Request req) -> icap::Task {
    icap::Chunk c = co_await req.read_chunk();
    int n = co_await req.offload([&] { return static_cast<int>(c.size()); });
    (void)n;
  });
#endif
}
}  // namespace
