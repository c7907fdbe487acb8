// SPDX-License-Identifier: MIT
// The ICAP request line and header fields (RFC 3507 section 4.3).
#ifndef ICAP_PROTOCOL_REQUEST_HEAD_HPP
#define ICAP_PROTOCOL_REQUEST_HEAD_HPP

#include <string>
#include <string_view>

#include "icap/icap.h"
#include "fields/header_list.hpp"
#include "protocol/limits.hpp"

namespace icap::detail {

struct RequestHead {
  std::string method_name;
  icap_method method = ICAP_METHOD_OPTIONS;
  bool method_known = false;
  std::string uri;
  std::string version;
  std::string service;  // path of the URI without '/', query or fragment
  HeaderList headers;
};

// Result of parsing: 0, or the ICAP status to answer with (400, 501, 505).
// `reason` says why, for the log.
struct HeadResult {
  int status = 0;
  std::string reason;
};

// Parses `block`, which runs from the request line to the empty line that
// ends the headers (CRLF CRLF included).
HeadResult parse_request_head(std::string_view block, const Limits &limits, RequestHead &out);

}  // namespace icap::detail

#endif
