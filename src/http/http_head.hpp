// SPDX-License-Identifier: MIT
// Encapsulated HTTP header blocks (req-hdr, res-hdr), parsed with llhttp.
#ifndef ICAP_HTTP_HTTP_HEAD_HPP
#define ICAP_HTTP_HTTP_HEAD_HPP

#include <cstdint>
#include <string>
#include <string_view>

#include "fields/header_list.hpp"

namespace icap::detail {

struct HttpHead {
  bool present = false;
  std::string raw;  // the block exactly as received, CRLF CRLF included
  // Request line (req-hdr).
  std::string method, uri;
  // Status line (res-hdr).
  int status = -1;
  std::string reason;
  std::string version;  // "HTTP/1.1"
  HeaderList headers;

  void clear() { *this = HttpHead(); }
};

// Parses one header block. `request` selects a request or a status line.
// The block must be exactly one message head ending with the empty line.
// Returns false with `reason` set when llhttp rejects it, the head is
// incomplete or bytes follow it, or it has more than `max_fields` fields.
bool parse_http_head(std::string_view block, bool request, uint64_t max_fields, HttpHead &out,
                     std::string &reason);

}  // namespace icap::detail

#endif
