// SPDX-License-Identifier: MIT
// Fuzz target (c): encapsulated HTTP header blocks (req-hdr and res-hdr),
// parsed by parse_http_head() with llhttp.
//
// Input: byte 0 bit 0 picks a request or a response head, bits 1-2 the field
// limit (1, 3, 200, 100000); the rest is the block, exactly as the
// Encapsulated offsets would cut it. Invariants on success:
//  - the block is kept byte for byte (it is echoed as is), it ends with
//    CRLF CRLF and has no other empty line (one head, nothing after it);
//  - at most `max_fields` fields; names are non-empty tokens; values have no
//    CR, LF or NUL (a value with a line break would let an echo or a
//    copy_http_head() smuggle a header), and no surrounding blanks;
//  - the version is "HTTP/d.d"; a request has a method and a URI, a response
//    a status in 100..999;
//  - no two Content-Length fields disagree;
//  - parsing is deterministic (a second parse gives the same result).
// On failure there must be a reason.
#include <string>
#include <string_view>

#include "fuzz_common.hpp"
#include "http/http_head.hpp"
#include "protocol/request_head.hpp"

using namespace icap::detail;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz::Control c(data, size);
  uint8_t cfg = c.byte();
  std::string_view block(reinterpret_cast<const char *>(data) + c.consumed(), size - c.consumed());
  bool request = (cfg & 1) == 0;
  static const uint64_t kFields[4] = {1, 3, 200, 100000};
  uint64_t max_fields = kFields[(cfg >> 1) & 3];

  HttpHead h;
  std::string why;
  bool ok = parse_http_head(block, request, max_fields, h, why);
  HttpHead h2;
  std::string why2;
  bool ok2 = parse_http_head(block, request, max_fields, h2, why2);
  FUZZ_CHECK(ok == ok2 && why == why2, "parse is not deterministic");
  if (!ok) {
    FUZZ_CHECK(!why.empty(), "rejected without a reason");
    return 0;
  }
  const std::string shown = fuzz::show(block, 400);
  FUZZ_CHECK(h.present && h.raw == block, "raw block not kept");
  // llhttp 8.1 takes any byte in place of the LF after the CR that ends the
  // status line or the header block ("\r\n\rX", "HTTP/1.1 200\r0\r\n").
  FUZZ_CHECK_KNOWN_BUG("http-head-cr",
                       block.size() >= 4 && block.substr(block.size() - 4) == "\r\n\r\n",
                       "accepted a block that does not end with CRLF CRLF: " + shown);
  // Exactly one head: the first empty line is the last. (Empty lines before
  // the start line are skipped, as RFC 9112 2.2 allows.)
  size_t lead = 0;
  while (block.size() - lead >= 2 && block[lead] == '\r' && block[lead + 1] == '\n') lead += 2;
  // llhttp skips any CR and LF before a request line, bare ones too.
  if (lead < block.size() && (block[lead] == '\r' || block[lead] == '\n')) {
    FUZZ_CHECK_KNOWN_BUG("http-head-cr", false, "bare CR or LF before the start line: " + shown);
    while (lead < block.size() && (block[lead] == '\r' || block[lead] == '\n')) lead++;
  }
  size_t first_empty = block.find("\r\n\r\n", lead);
  FUZZ_CHECK(first_empty == std::string_view::npos || first_empty == block.size() - 4,
             "bytes after the head accepted: " + shown);
  // A bare LF: llhttp 8.1 takes one as the end of the start line.
  size_t first_lf = block.find('\n', lead);
  if (first_lf != std::string_view::npos && (first_lf == 0 || block[first_lf - 1] != '\r'))
    FUZZ_CHECK_KNOWN_BUG("http-head-start-line", false, "bare LF ends the start line: " + shown);
  size_t bare_lf = std::string_view::npos;
  for (size_t i = first_lf == std::string_view::npos ? block.size() : first_lf + 1;
       i + 1 < block.size(); i++)
    if (block[i] == '\n' && block[i - 1] != '\r') bare_lf = i;
  FUZZ_CHECK(bare_lf == std::string_view::npos, "bare LF accepted in a head: " + shown);
  size_t bare_cr = std::string_view::npos;
  for (size_t i = lead; i + 2 < block.size(); i++)
    if (block[i] == '\r' && block[i + 1] != '\n') bare_cr = i;
  FUZZ_CHECK_KNOWN_BUG("http-head-cr", bare_cr == std::string_view::npos,
                       "bare CR accepted in a head: " + shown);

  FUZZ_CHECK(h.headers.size() <= max_fields, "more fields than the limit");
  std::string content_length;
  bool te = false;
  for (const Header &f : h.headers.items()) {
    if (iequals(f.name, "Transfer-Encoding")) te = true;
    // llhttp 8.1 takes a line ": x" as a field with an empty name.
    FUZZ_CHECK_KNOWN_BUG("http-head-empty-name", !f.name.empty(), "empty field name: " + shown);
    // (llhttp 8.1 keeps blanks before the colon in the name, "Host : a"
    // giving "Host ", so that lookups miss the field: fixed in 5a4005b.)
    for (unsigned char ch : f.name)
      FUZZ_CHECK(is_tchar(ch), "non-token field name " + fuzz::show(f.name));
    for (unsigned char ch : f.value)
      FUZZ_CHECK(ch != '\r' && ch != '\n' && ch != 0, "CR, LF or NUL in a value: " + shown);
    if (!f.value.empty())
      FUZZ_CHECK(f.value.front() != ' ' && f.value.front() != '\t' && f.value.back() != ' ' &&
                     f.value.back() != '\t',
                 "value not trimmed: " + fuzz::show(f.value));
    if (iequals(f.name, "Content-Length")) {
      if (content_length.empty()) content_length = f.value;
      FUZZ_CHECK(content_length == f.value, "conflicting Content-Length accepted: " + shown);
    }
  }
  // RFC 9112 6.1: Transfer-Encoding with Content-Length is a smuggling
  // signal; llhttp refuses it, unless its Content-Length flag is cleared as
  // http_head.cc does to let identical duplicates through.
  // (5a4005b rejects them, but by llhttp's F_TRANSFER_ENCODING flag, which
  // an empty Transfer-Encoding value does not set.)
  FUZZ_CHECK_KNOWN_BUG("http-head-te-cl", !(te && !content_length.empty()),
                       "Transfer-Encoding and Content-Length both accepted: " + shown);
  // llhttp 8.1 takes an HTTP/0.9 request line ("GET /"): no version.
  if (request && h.version == "HTTP/")
    FUZZ_CHECK_KNOWN_BUG("http-head-start-line", false, "request line without a version: " + shown);
  else
    FUZZ_CHECK(h.version.size() == 8 && h.version.compare(0, 5, "HTTP/") == 0 &&
                   isdigit(static_cast<unsigned char>(h.version[5])) && h.version[6] == '.' &&
                   isdigit(static_cast<unsigned char>(h.version[7])),
               "version " + fuzz::show(h.version));
  if (request) {
    // ("CONNECT \r\n\r\n": no target and no version, known bug
    // http-head-start-line, checked above.)
    if (h.version != "HTTP/")
      FUZZ_CHECK(!h.method.empty() && !h.uri.empty(), "request without method or URI: " + shown);
    for (unsigned char ch : h.uri) {
      // llhttp 8.1 (loose) takes HTAB and FF inside the request target.
      if (ch == '\t' || ch == '\f')
        FUZZ_CHECK_KNOWN_BUG("http-head-start-line", false,
                             "HTAB or FF in the request target: " + shown);
      else
        FUZZ_CHECK(ch > 0x20 && ch != 0x7f, "blank or control in URI: " + shown);
    }
  } else {
    // llhttp 8.1 takes "000" and "099" as status codes.
    FUZZ_CHECK(h.status >= 0 && h.status <= 999, "status " + std::to_string(h.status));
    FUZZ_CHECK_KNOWN_BUG("http-head-start-line", h.status >= 100,
                         "status " + std::to_string(h.status) + " accepted: " + shown);
    for (unsigned char ch : h.reason) {
      FUZZ_CHECK(ch != '\r' && ch != '\n', "CR or LF in the reason: " + shown);
      // llhttp 8.1 (strict mode too) takes NUL and other controls here
      // (rejected by http_head.cc since 5a4005b).
      FUZZ_CHECK(ch >= 0x20 || ch == '\t', "control character in the reason: " + shown);
    }
    // ... and a status code of one or two digits ("HTTP/1.1 3 x").
    FUZZ_CHECK_KNOWN_BUG("http-head-start-line",
                         block.size() > 13 && isdigit(static_cast<unsigned char>(block[9])) &&
                             isdigit(static_cast<unsigned char>(block[10])) &&
                             isdigit(static_cast<unsigned char>(block[11])) &&
                             (block[12] == ' ' || block[12] == '\r'),
                         "status code is not three digits: " + shown);
  }
  return 0;
}
