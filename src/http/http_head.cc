// SPDX-License-Identifier: MIT
#include "http/http_head.hpp"

#include <llhttp.h>

namespace icap::detail {

namespace {

struct Ctx {
  HttpHead *out;
  uint64_t max_fields;
  std::string field, value;
  bool in_value = false;
  bool complete = false;
  bool too_many = false;
  std::string content_length;  // first Content-Length seen
  bool cl_mismatch = false;
  bool bad_name = false;
  bool te_and_cl = false;
  bool saw_te = false;
};

Ctx *ctx(llhttp_t *p) { return static_cast<Ctx *>(p->data); }

int append(std::string &s, const char *at, size_t len) {
  s.append(at, len);
  return 0;
}

int on_method(llhttp_t *p, const char *at, size_t len) {
  return append(ctx(p)->out->method, at, len);
}
int on_url(llhttp_t *p, const char *at, size_t len) { return append(ctx(p)->out->uri, at, len); }
int on_status(llhttp_t *p, const char *at, size_t len) {
  return append(ctx(p)->out->reason, at, len);
}
int on_version(llhttp_t *p, const char *at, size_t len) {
  return append(ctx(p)->out->version, at, len);
}

int flush_field(Ctx *c) {
  if (!c->in_value) return 0;
  if (c->field.empty()) {
    c->bad_name = true;
    return -1;
  }
  if (iequals(c->field, "transfer-encoding")) c->saw_te = true;
  // llhttp (built without strict mode) lets "Host : x" through; RFC 9112
  // 5.1 says a server must reject whitespace in or after a field name.
  if (!is_token(c->field)) {
    c->bad_name = true;
    return -1;
  }
  if (c->out->headers.size() >= c->max_fields) {
    c->too_many = true;
    return -1;
  }
  c->out->headers.add(c->field, trim_ows(c->value));
  c->field.clear();
  c->value.clear();
  c->in_value = false;
  return 0;
}

int on_header_field(llhttp_t *p, const char *at, size_t len) {
  Ctx *c = ctx(p);
  if (flush_field(c)) return -1;
  c->field.append(at, len);
  return 0;
}

int on_header_value(llhttp_t *p, const char *at, size_t len) {
  Ctx *c = ctx(p);
  c->in_value = true;
  c->value.append(at, len);
  return 0;
}

// c-icap-client sends "Content-Length" twice with the same value; llhttp
// rejects any repetition. Identical repetitions are harmless (RFC 9110 8.6
// lets a recipient collapse them), so the flag that makes llhttp refuse the
// second one is cleared; differing values are still an error.
int on_header_value_complete(llhttp_t *p) {
  Ctx *c = ctx(p);
  if (iequals(c->field, "content-length")) {
    std::string_view v = trim_ows(c->value);
    if (c->content_length.empty()) {
      c->content_length.assign(v);
    } else if (c->content_length != v) {
      c->cl_mismatch = true;
      return -1;
    }
    p->flags &= ~F_CONTENT_LENGTH;
  }
  return flush_field(c);
}

int on_headers_complete(llhttp_t *p) {
  Ctx *c = ctx(p);
  if (flush_field(c)) return -1;
  // Clearing F_CONTENT_LENGTH for repeated identical values also hides
  // llhttp's own Transfer-Encoding + Content-Length check: do it here.
  if (!c->content_length.empty() && (c->saw_te || (p->flags & F_TRANSFER_ENCODING))) {
    c->te_and_cl = true;
    return -1;
  }
  c->complete = true;
  // Only the head is ours to parse: the body comes in ICAP chunks.
  return HPE_PAUSED;
}

}  // namespace

// The line structure llhttp (built without strict mode) does not enforce:
// every line ends in CRLF (no bare CR or LF), the block ends with the first
// empty line, no line folding, nothing before the start line.
static const char *check_lines(std::string_view b) {
  if (b.size() < 4 || b.substr(b.size() - 4) != "\r\n\r\n")
    return "header block does not end with CRLF CRLF";
  size_t line_start = 0;
  for (size_t i = 0; i < b.size(); i++) {
    char ch = b[i];
    if (ch == '\n') return "bare LF in the encapsulated header block";
    if (ch != '\r') continue;
    if (i + 1 >= b.size() || b[i + 1] != '\n') return "bare CR in the encapsulated header block";
    if (i == line_start && i + 2 != b.size())
      return "empty line inside the encapsulated header block";
    i++;
    line_start = i + 1;
    if (line_start < b.size() && (b[line_start] == ' ' || b[line_start] == '\t'))
      return "obsolete line folding in the encapsulated header block";
  }
  return nullptr;
}

bool parse_http_head(std::string_view block, bool request, uint64_t max_fields, HttpHead &out,
                     std::string &reason) {
  out.clear();
  if (const char *why = check_lines(block)) {
    out.present = true;
    reason = why;
    return false;
  }
  out.present = true;
  out.raw.assign(block);

  llhttp_settings_t settings;
  llhttp_settings_init(&settings);
  settings.on_method = on_method;
  settings.on_url = on_url;
  settings.on_status = on_status;
  settings.on_version = on_version;
  settings.on_header_field = on_header_field;
  settings.on_header_value = on_header_value;
  settings.on_header_value_complete = on_header_value_complete;
  settings.on_headers_complete = on_headers_complete;

  llhttp_t parser;
  llhttp_init(&parser, request ? HTTP_REQUEST : HTTP_RESPONSE, &settings);
  Ctx c{&out, max_fields, {}, {}, false, false, false, {}, false, false, false, false};
  parser.data = &c;

  llhttp_errno_t err = llhttp_execute(&parser, block.data(), block.size());
  if (!c.complete || (err != HPE_PAUSED && err != HPE_PAUSED_UPGRADE && err != HPE_OK)) {
    if (c.too_many)
      reason = "too many encapsulated HTTP header fields";
    else if (c.bad_name)
      reason = "bad character in an encapsulated header name";
    else if (c.te_and_cl)
      reason = "both Transfer-Encoding and Content-Length";
    else if (c.cl_mismatch)
      reason = "conflicting Content-Length values";
    else if (err == HPE_OK)
      reason = "incomplete encapsulated HTTP header block";
    else
      reason = std::string("bad encapsulated HTTP header: ") + llhttp_get_error_reason(&parser);
    return false;
  }
  // The pause happens right after the empty line; anything left over means
  // the Encapsulated offsets and the block disagree.
  const char *pos = llhttp_get_error_pos(&parser);
  if (pos && pos != block.data() + block.size()) {
    reason = "bytes after the encapsulated HTTP header block";
    return false;
  }
  if (!is_field_value(out.reason)) {
    reason = "control character in the HTTP reason phrase";
    return false;
  }
  if (out.version.empty()) {
    reason = "no HTTP version in the start line";
    return false;
  }
  if (request) {
    if (out.method.empty() || out.uri.empty()) {
      reason = "incomplete HTTP request line";
      return false;
    }
    if (!is_target_text(out.uri)) {
      reason = "bad character in the HTTP request target";
      return false;
    }
  } else if (parser.status_code < 100 || parser.status_code > 999) {
    reason = "bad HTTP status code";
    return false;
  }
  out.version = "HTTP/" + out.version;
  if (!request) out.status = parser.status_code;
  return true;
}

}  // namespace icap::detail
