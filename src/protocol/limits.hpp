// SPDX-License-Identifier: MIT
// Limits the protocol engine enforces. A session borrows the server's own
// table (it is not copied), which is set before the server runs and read-only
// afterwards.
#ifndef ICAP_PROTOCOL_LIMITS_HPP
#define ICAP_PROTOCOL_LIMITS_HPP

#include <cstdint>

#include "icap/icap.h"

namespace icap::detail {

struct Limits {
  uint64_t v[ICAP_LIMIT_COUNT_];

  Limits();
  uint64_t operator[](icap_limit l) const { return v[l]; }
};

}  // namespace icap::detail

#endif
