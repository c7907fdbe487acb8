// SPDX-License-Identifier: MIT
// Shared helpers of the fuzz targets: an invariant check that crashes (so
// that libFuzzer keeps the input), and a reader for the control bytes at the
// start of an input.
#ifndef ICAP_TESTS_FUZZ_FUZZ_COMMON_HPP
#define ICAP_TESTS_FUZZ_FUZZ_COMMON_HPP

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "builders.hpp"

// The libFuzzer entry point every target defines.
extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

namespace fuzz {

// An invariant does not hold: print why and abort. libFuzzer (and the
// standalone driver, through SIGABRT) then reports the input as a crash.
[[noreturn]] inline void fail(const char *file, int line, const char *cond,
                              const std::string &msg) {
  fprintf(stderr, "\nFUZZ INVARIANT FAILED at %s:%d: %s\n  %s\n", file, line, cond, msg.c_str());
  fflush(stderr);
  abort();
}

// Known library bugs (listed in tests/robustness/README.md, "Bugs found")
// would make every fuzzing run stop at the first input that shows them, so
// their invariants are checked only in strict mode: ICAP_FUZZ_STRICT=1 in
// the environment. ctest has fuzz.strict.<target> for that, disabled until
// the bugs are fixed; run-fuzzers.sh passes the variable through.
inline bool strict() {
  static const bool on = [] {
    const char *v = getenv("ICAP_FUZZ_STRICT");
    return v && *v && *v != '0';
  }();
  return on;
}

// Printable excerpt of binary data, for messages.
using icaptest::show;

// Takes control bytes from the front of the input; past the end it yields
// zeros, so that short inputs still mean something.
class Control {
 public:
  Control(const uint8_t *p, size_t n) : p_(p), n_(n) {}
  uint8_t byte() { return pos_ < n_ ? p_[pos_++] : (pos_++, 0); }
  uint16_t u16() { return static_cast<uint16_t>(byte() | (byte() << 8)); }
  size_t consumed() const { return pos_ < n_ ? pos_ : n_; }

 private:
  const uint8_t *p_;
  size_t n_;
  size_t pos_ = 0;
};

}  // namespace fuzz

#define FUZZ_CHECK(cond, msg)                                    \
  do {                                                           \
    if (!(cond)) ::fuzz::fail(__FILE__, __LINE__, #cond, (msg)); \
  } while (0)

// An invariant that a known bug (`bug`, a short name from the README)
// breaks: checked only in strict mode.
#define FUZZ_CHECK_KNOWN_BUG(bug, cond, msg)                                                \
  do {                                                                                      \
    if (::fuzz::strict() && !(cond))                                                        \
      ::fuzz::fail(__FILE__, __LINE__, #cond, std::string("[known bug " bug "] ") + (msg)); \
  } while (0)

#endif
