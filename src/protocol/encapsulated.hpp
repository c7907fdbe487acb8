// SPDX-License-Identifier: MIT
// The Encapsulated header (RFC 3507 section 4.4.1): which HTTP parts the
// message carries and where each starts.
#ifndef ICAP_PROTOCOL_ENCAPSULATED_HPP
#define ICAP_PROTOCOL_ENCAPSULATED_HPP

#include <cstdint>
#include <string>
#include <string_view>

#include "icap/icap.h"

namespace icap::detail {

struct Encapsulated {
  int64_t offset[ICAP_SECTION_COUNT_];
  icap_section order[ICAP_SECTION_COUNT_];
  int count = 0;

  Encapsulated() { reset(); }
  void reset() {
    for (auto &o : offset) o = -1;
    count = 0;
  }
  bool has(icap_section s) const { return offset[s] >= 0; }
  // The body entity (always last), or ICAP_SECTION_COUNT_ when empty.
  icap_section body() const { return count ? order[count - 1] : ICAP_SECTION_COUNT_; }
  // Total bytes of the header sections, i.e. where the body entity starts.
  int64_t header_bytes() const { return count ? offset[body()] : 0; }
  // 1 if a chunked body follows the header sections.
  bool has_chunked_body() const {
    icap_section b = body();
    return b == ICAP_SECTION_REQ_BODY || b == ICAP_SECTION_RES_BODY || b == ICAP_SECTION_OPT_BODY;
  }
  // The end of header section s (where the next section starts).
  int64_t section_end(icap_section s) const;
};

const char *section_name(icap_section s) noexcept;

// Parses the header value and checks it is valid for `method`: known names,
// offsets starting at 0 and strictly increasing, exactly one body entity and
// it last, req-hdr before res-hdr, and only the parts the method may carry.
// Returns false with `reason` set on any violation.
bool parse_encapsulated(std::string_view value, icap_method method, Encapsulated &out,
                        std::string &reason);

}  // namespace icap::detail

#endif
