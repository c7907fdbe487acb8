// Lifetime of an icap_request (one ICAP transaction).
#include "protocol/session.hpp"

icap_request::icap_request(icap::detail::Session *s) : session(s) {}

namespace icap::detail {

void request_unref(icap_request *r) {
  if (--r->refs == 0) delete r;
}

}  // namespace icap::detail
