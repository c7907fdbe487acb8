// Limits the protocol engine enforces, copied from the server configuration.
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
