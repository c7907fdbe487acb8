// SPDX-License-Identifier: MIT
#include "protocol/request_head.hpp"

namespace icap::detail {

static HeadResult fail(int status, std::string reason) {
  return HeadResult{status, std::move(reason)};
}

// The service is the path of the request URI: "icap://host[:port]/name?q"
// or an origin-form "/name". The port is not checked (c-icap-client leaves it
// out even when it connects to a non-default port). Squid over TLS writes
// its service URI as configured, "icaps://host:port/name".
static bool service_from_uri(std::string_view uri, std::string &out) {
  std::string_view rest = uri;
  constexpr std::string_view scheme = "icap://", tls_scheme = "icaps://";
  size_t skip = 0;
  if (rest.size() >= scheme.size() && iequals(rest.substr(0, scheme.size()), scheme))
    skip = scheme.size();
  else if (rest.size() >= tls_scheme.size() &&
           iequals(rest.substr(0, tls_scheme.size()), tls_scheme))
    skip = tls_scheme.size();
  if (skip) {
    rest.remove_prefix(skip);
    size_t slash = rest.find('/');
    if (slash == 0) return false;  // no authority
    if (slash == std::string_view::npos) {
      out.clear();
      return true;
    }
    rest.remove_prefix(slash);
  } else if (rest.empty() || rest.front() != '/') {
    return false;
  }
  rest.remove_prefix(1);
  size_t end = rest.find_first_of("?#");
  out.assign(rest.substr(0, end));
  return true;
}

HeadResult parse_request_head(std::string_view block, const Limits &limits, RequestHead &out) {
  size_t eol = block.find("\r\n");
  if (eol == std::string_view::npos) return fail(400, "no CRLF after the request line");
  std::string_view line = block.substr(0, eol);
  block.remove_prefix(eol + 2);

  // METHOD SP URI SP VERSION, single spaces, as RFC 3507 inherits from HTTP.
  size_t sp1 = line.find(' ');
  size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp1 == std::string_view::npos || sp2 == std::string_view::npos ||
      line.find(' ', sp2 + 1) != std::string_view::npos)
    return fail(400, "malformed request line");
  std::string_view method = line.substr(0, sp1);
  std::string_view uri = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  if (method.empty() || uri.empty() || version.empty()) return fail(400, "malformed request line");
  if (!is_token(method)) return fail(400, "bad character in the method");
  if (!is_target_text(uri)) return fail(400, "bad character in the URI");

  out.method_name.assign(method);
  out.uri.assign(uri);
  out.version.assign(version);
  if (version.size() != 8 || version.substr(0, 5) != "ICAP/" || version[6] != '.' ||
      version[5] < '0' || version[5] > '9' || version[7] < '0' || version[7] > '9')
    return fail(400, "malformed ICAP version");
  if (version != "ICAP/1.0") return fail(505, "unsupported ICAP version");

  out.method_known = true;
  if (method == "OPTIONS")
    out.method = ICAP_METHOD_OPTIONS;
  else if (method == "REQMOD")
    out.method = ICAP_METHOD_REQMOD;
  else if (method == "RESPMOD")
    out.method = ICAP_METHOD_RESPMOD;
  else
    out.method_known = false;

  if (!service_from_uri(uri, out.service)) return fail(400, "malformed ICAP URI");

  // Header fields up to the empty line.
  uint64_t max_count = limits[ICAP_LIMIT_HEADER_COUNT];
  while (true) {
    eol = block.find("\r\n");
    if (eol == std::string_view::npos) return fail(400, "header line without CRLF");
    std::string_view field = block.substr(0, eol);
    block.remove_prefix(eol + 2);
    if (field.empty()) break;
    if (field.front() == ' ' || field.front() == '\t')
      return fail(400, "obsolete line folding in ICAP headers");
    size_t colon = field.find(':');
    if (colon == std::string_view::npos || colon == 0)
      return fail(400, "header line without a name");
    std::string_view name = field.substr(0, colon);
    if (!is_token(name)) return fail(400, "bad character in a header name");
    std::string_view value = trim_ows(field.substr(colon + 1));
    if (!is_field_value(value)) return fail(400, "control character in a header value");
    if (out.headers.size() >= max_count) return fail(400, "too many ICAP headers");
    out.headers.add(name, value);
  }
  if (!out.method_known) return fail(501, "method not implemented");
  return {};
}

}  // namespace icap::detail
