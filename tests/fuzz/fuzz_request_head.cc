// SPDX-License-Identifier: MIT
// Fuzz target (a): the ICAP request head and the Encapsulated header.
//
// The input is a raw request head. It is parsed as the session parses it (up
// to the first CRLF CRLF) under the default limits and under tight ones; when
// it has an Encapsulated header, that header is parsed for the request's
// method. Independently, the input's first line is parsed as an Encapsulated
// value for each of the three methods. Invariants:
//  - the head parser answers 0, 400, 501 or 505, and on 0 the parsed head is
//    what the RFC allows (known method, ICAP/1.0, token header names, no
//    control characters or surrounding blanks in values, header count within
//    the limit, a service without query);
//  - an accepted Encapsulated value has offsets starting at 0 and strictly
//    increasing, one body entity and it last, no repeated entity, req-hdr
//    first, only the parts the method may carry, and prints back to a value
//    that parses to the same thing; a rejected one has a reason.
#include <string>
#include <string_view>

#include "fuzz_common.hpp"
#include "protocol/encapsulated.hpp"
#include "protocol/limits.hpp"
#include "protocol/request_head.hpp"

using namespace icap::detail;

namespace {

bool is_body(icap_section s) { return s >= ICAP_SECTION_REQ_BODY; }

void check_head(std::string_view block, const Limits &limits) {
  RequestHead h;
  HeadResult hr = parse_request_head(block, limits, h);
  FUZZ_CHECK(hr.status == 0 || hr.status == 400 || hr.status == 501 || hr.status == 505,
             "unexpected head status " + std::to_string(hr.status));
  if (hr.status != 0) {
    FUZZ_CHECK(!hr.reason.empty(), "rejected head without a reason");
    return;
  }
  FUZZ_CHECK(h.method_known, "accepted an unknown method");
  FUZZ_CHECK(h.method_name == "OPTIONS" || h.method_name == "REQMOD" || h.method_name == "RESPMOD",
             "method " + fuzz::show(h.method_name));
  FUZZ_CHECK(h.version == "ICAP/1.0", "accepted version " + fuzz::show(h.version));
  FUZZ_CHECK(h.headers.size() <= limits[ICAP_LIMIT_HEADER_COUNT], "header count over the limit");
  FUZZ_CHECK(h.service.find_first_of("?#") == std::string::npos, "service keeps its query");
  for (unsigned char c : h.uri) FUZZ_CHECK(c > 0x20 && c != 0x7f, "control or blank in the URI");
  for (const Header &f : h.headers.items()) {
    FUZZ_CHECK(!f.name.empty(), "empty header name");
    for (unsigned char c : f.name)
      FUZZ_CHECK(is_tchar(c), "non-token header name " + fuzz::show(f.name));
    for (unsigned char c : f.value)
      FUZZ_CHECK(!((c < 0x20 && c != '\t') || c == 0x7f),
                 "control in value " + fuzz::show(f.value));
    if (!f.value.empty()) {
      FUZZ_CHECK(f.value.front() != ' ' && f.value.front() != '\t', "value not trimmed");
      FUZZ_CHECK(f.value.back() != ' ' && f.value.back() != '\t', "value not trimmed");
    }
  }
}

void check_encapsulated(std::string_view value, icap_method m) {
  Encapsulated e;
  std::string why;
  bool ok = parse_encapsulated(value, m, e, why);
  if (!ok) {
    FUZZ_CHECK(!why.empty(), "rejected Encapsulated without a reason");
    return;
  }
  FUZZ_CHECK(e.count >= 1 && e.count <= ICAP_SECTION_COUNT_, "count " + std::to_string(e.count));
  int present = 0;
  for (int s = 0; s < ICAP_SECTION_COUNT_; s++) present += e.has(static_cast<icap_section>(s));
  FUZZ_CHECK(present == e.count, "offset table and order disagree");
  FUZZ_CHECK(e.offset[e.order[0]] == 0, "first offset is not 0");
  for (int i = 0; i < e.count; i++) {
    icap_section s = e.order[i];
    FUZZ_CHECK(e.offset[s] >= 0, "listed section without offset");
    if (i > 0) FUZZ_CHECK(e.offset[s] > e.offset[e.order[i - 1]], "offsets do not increase");
    FUZZ_CHECK(is_body(s) == (i == e.count - 1), "body entity not last, or not only one");
    if (i > 0) FUZZ_CHECK(s != ICAP_SECTION_REQ_HDR, "req-hdr after another section");
    if (!is_body(s)) FUZZ_CHECK(e.section_end(s) > e.offset[s], "header section without bytes");
  }
  FUZZ_CHECK(e.header_bytes() == e.offset[e.body()], "header_bytes is not the body offset");
  switch (m) {
    case ICAP_METHOD_OPTIONS:
      FUZZ_CHECK(e.count == 1, "OPTIONS with header sections");
      break;
    case ICAP_METHOD_REQMOD:
      FUZZ_CHECK(e.has(ICAP_SECTION_REQ_HDR) && !e.has(ICAP_SECTION_RES_HDR) &&
                     !e.has(ICAP_SECTION_RES_BODY) && !e.has(ICAP_SECTION_OPT_BODY),
                 "REQMOD sections " + fuzz::show(value));
      break;
    case ICAP_METHOD_RESPMOD:
      FUZZ_CHECK(e.has(ICAP_SECTION_RES_HDR) && !e.has(ICAP_SECTION_REQ_BODY) &&
                     !e.has(ICAP_SECTION_OPT_BODY),
                 "RESPMOD sections " + fuzz::show(value));
      break;
    default:
      FUZZ_CHECK(false, "accepted for an unknown method");
  }
  // Round trip: print and parse again.
  std::string printed;
  for (int i = 0; i < e.count; i++) {
    if (i) printed += ", ";
    printed += section_name(e.order[i]);
    printed += '=';
    printed += std::to_string(e.offset[e.order[i]]);
  }
  Encapsulated e2;
  FUZZ_CHECK(parse_encapsulated(printed, m, e2, why), "printed form rejected: " + printed);
  FUZZ_CHECK(e2.count == e.count, "round trip count");
  for (int i = 0; i < e.count; i++)
    FUZZ_CHECK(e2.order[i] == e.order[i] && e2.offset[e.order[i]] == e.offset[e.order[i]],
               "round trip differs: " + printed);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string_view in(reinterpret_cast<const char *>(data), size);
  size_t end = in.find("\r\n\r\n");
  std::string_view block = end == std::string_view::npos ? in : in.substr(0, end + 4);

  static const Limits defaults;
  static const Limits tight = [] {
    Limits l;
    l.v[ICAP_LIMIT_HEADER_COUNT] = 3;
    return l;
  }();
  check_head(block, defaults);
  check_head(block, tight);

  RequestHead h;
  if (parse_request_head(block, defaults, h).status == 0)
    if (const std::string *enc = h.headers.get("Encapsulated")) check_encapsulated(*enc, h.method);

  std::string_view first = in.substr(0, in.find('\n'));
  for (int m = 0; m < ICAP_METHOD_COUNT_; m++)
    check_encapsulated(first, static_cast<icap_method>(m));
  // An out-of-range method must never be accepted.
  Encapsulated e;
  std::string why;
  FUZZ_CHECK(!parse_encapsulated(first, ICAP_METHOD_COUNT_, e, why), "accepted for method 3");
  return 0;
}
