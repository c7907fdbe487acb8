// The icap_request_* C functions: argument and state checks around the
// protocol engine. Loop thread only, except icap_request_post().
#include <cstdio>
#include <cstring>

#include "protocol/session.hpp"

using icap::detail::BodyMode;
using icap::detail::HeaderList;
using icap::detail::HttpHead;
using icap::detail::RespState;
using icap::detail::Session;

namespace {

bool active(const icap_request *r) { return r && r->session && !r->ended; }

const HeaderList *block(const icap_request *r, icap_headers which) {
  switch (which) {
    case ICAP_HEADERS_ICAP:
      return &r->head.headers;
    case ICAP_HEADERS_HTTP_REQ:
      return &r->http_req.headers;
    case ICAP_HEADERS_HTTP_RES:
      return &r->http_res.headers;
  }
  return nullptr;
}

// A header name must be a token; a value or start line must not contain CR,
// LF or NUL (that would let a handler inject headers by accident).
bool valid_name(const char *s) { return s && icap::detail::is_token(s); }

// Ends a pending read with `status` (the read's callback is then called, as
// every successful read_chunk promises).
void cancel_read(icap_request *r, int status) {
  icap_body_cb cb = r->body_cb;
  void *user = r->body_user;
  r->body_cb = nullptr;
  r->body_user = nullptr;
  r->mode = BodyMode::kNone;
  if (cb) cb(r, status, nullptr, 0, user);
}

// Prepares a body read: sends 100 Continue when the preview is over and the
// handler wants the rest.
int prepare_read(icap_request *r) {
  if (!active(r)) return ICAP_ESTATE;
  if (!r->enc.has_chunked_body() || r->body_done || r->resp == RespState::kDone) return ICAP_ESTATE;
  if (r->mode != BodyMode::kNone) return ICAP_EBUSY;
  if (r->preview_ended && !r->continued) {
    if (r->answer_started()) return ICAP_ESTATE;
    r->session->send_continue(r);
  }
  return 0;
}

int no_adaptation(icap_request *r) {
  Session *s = r->session;
  if (r->allow_204 || r->in_preview_phase()) {
    if (r->body_cb) cancel_read(r, ICAP_ECANCELED);
    if (!active(r)) return 0;
    s->send_simple(r, 204, false);
    return 0;
  }
  if (r->consumed_after_preview) return ICAP_ECONSUMED;
  if (r->body_cb) cancel_read(r, ICAP_ECANCELED);
  if (!active(r)) return 0;
  s->start_echo(r);
  return 0;
}

}  // namespace

extern "C" {

icap_method icap_request_method(const icap_request *r) { return r->head.method; }
const char *icap_request_method_name(const icap_request *r) { return r->head.method_name.c_str(); }
const char *icap_request_uri(const icap_request *r) { return r->head.uri.c_str(); }
const char *icap_request_version(const icap_request *r) { return r->head.version.c_str(); }
const char *icap_request_service_name(const icap_request *r) { return r->head.service.c_str(); }
icap_service *icap_request_service(const icap_request *r) { return r->service; }
const char *icap_request_client_ip(const icap_request *r) { return r->client_ip.c_str(); }
int icap_request_client_port(const icap_request *r) { return r->client_port; }
unsigned icap_request_worker(const icap_request *r) {
  return r && r->loop ? r->loop->loop_index() : 0;
}

const char *icap_request_header(const icap_request *r, icap_headers which, const char *name,
                                size_t n) {
  const HeaderList *h = r && name ? block(r, which) : nullptr;
  const std::string *v = h ? h->get(name, n) : nullptr;
  return v ? v->c_str() : nullptr;
}

size_t icap_request_header_count(const icap_request *r, icap_headers which) {
  const HeaderList *h = r ? block(r, which) : nullptr;
  return h ? h->size() : 0;
}

int icap_request_header_at(const icap_request *r, icap_headers which, size_t i, const char **name,
                           const char **value) {
  const HeaderList *h = r ? block(r, which) : nullptr;
  if (!h || i >= h->size()) return ICAP_ENOENT;
  if (name) *name = h->at(i).name.c_str();
  if (value) *value = h->at(i).value.c_str();
  return 0;
}

int64_t icap_request_encapsulated(const icap_request *r, icap_section s) {
  if (!r || s < 0 || s >= ICAP_SECTION_COUNT_) return -1;
  return r->enc.offset[s];
}

const char *icap_request_http_method(const icap_request *r) { return r->http_req.method.c_str(); }
const char *icap_request_http_uri(const icap_request *r) { return r->http_req.uri.c_str(); }
const char *icap_request_http_req_version(const icap_request *r) {
  return r->http_req.present ? r->http_req.version.c_str() : "";
}
int icap_request_http_status(const icap_request *r) { return r->http_res.status; }
const char *icap_request_http_reason(const icap_request *r) { return r->http_res.reason.c_str(); }
const char *icap_request_http_res_version(const icap_request *r) {
  return r->http_res.present ? r->http_res.version.c_str() : "";
}

const char *icap_request_raw_section(const icap_request *r, icap_section s, size_t *len) {
  const HttpHead *h = s == ICAP_SECTION_REQ_HDR   ? &r->http_req
                      : s == ICAP_SECTION_RES_HDR ? &r->http_res
                                                  : nullptr;
  if (!h || !h->present) {
    if (len) *len = 0;
    return nullptr;
  }
  if (len) *len = h->raw.size();
  return h->raw.data();
}

int icap_request_has_body(const icap_request *r) { return r->enc.has_chunked_body() ? 1 : 0; }
int64_t icap_request_preview(const icap_request *r) { return r->preview; }
int icap_request_ieof(const icap_request *r) { return r->ieof ? 1 : 0; }
int icap_request_allows(const icap_request *r, int code) {
  return (code == 204 && r->allow_204) || (code == 206 && r->allow_206);
}
int icap_request_in_preview(const icap_request *r) { return r->in_preview_phase() ? 1 : 0; }
int icap_request_response_code(const icap_request *r) {
  return r->answer_started() || r->status_set ? r->status : 0;
}

void icap_request_set_data(icap_request *r, void *data) { r->data = data; }
void *icap_request_get_data(const icap_request *r) { return r->data; }

int icap_request_on_done(icap_request *r, icap_done_cb cb, void *user) {
  if (!r) return ICAP_EINVAL;
  if (r->ended) return ICAP_ESTATE;
  r->done_cb = cb;
  r->done_user = user;
  return 0;
}

int icap_request_read_chunk(icap_request *r, icap_body_cb cb, void *user) {
  if (!r || !cb) return ICAP_EINVAL;
  if (int rc = prepare_read(r)) return rc;
  r->mode = BodyMode::kReadOnce;
  r->body_cb = cb;
  r->body_user = user;
  r->session->process();
  return 0;
}

int icap_request_set_body_cb(icap_request *r, icap_body_cb cb, void *user) {
  if (!r) return ICAP_EINVAL;
  if (!cb) {
    if (r->mode == BodyMode::kPush) {
      r->mode = BodyMode::kNone;
      r->body_cb = nullptr;
    }
    return 0;
  }
  if (int rc = prepare_read(r)) return rc;
  r->mode = BodyMode::kPush;
  r->paused = false;
  r->body_cb = cb;
  r->body_user = user;
  r->session->process();
  return 0;
}

int icap_request_pause(icap_request *r) {
  if (!active(r)) return ICAP_ESTATE;
  r->paused = true;
  return 0;
}

int icap_request_resume(icap_request *r) {
  if (!active(r)) return ICAP_ESTATE;
  r->paused = false;
  if (r->mode == BodyMode::kPush && r->preview_ended && !r->continued && !r->body_done &&
      !r->answer_started())
    r->session->send_continue(r);
  r->session->process();
  return 0;
}

int icap_request_continue(icap_request *r) {
  if (!active(r)) return ICAP_ESTATE;
  if (r->preview < 0 || !r->preview_ended || r->ieof || r->continued || r->answer_started())
    return ICAP_ESTATE;
  r->session->send_continue(r);
  r->session->process();
  return 0;
}

int icap_request_send_error(icap_request *r, int code) {
  if (!r || code < 200 || code > 999) return ICAP_EINVAL;
  if (!active(r) || r->answer_started()) return ICAP_ESTATE;
  if (code == 204) return no_adaptation(r);
  if (r->body_cb) cancel_read(r, ICAP_ECANCELED);
  if (!active(r)) return 0;
  r->session->send_simple(r, code, false);
  return 0;
}

int icap_request_no_adaptation(icap_request *r) {
  if (!r) return ICAP_EINVAL;
  if (!active(r) || r->answer_started()) return ICAP_ESTATE;
  return no_adaptation(r);
}

int icap_request_set_status(icap_request *r, int code) {
  if (!r || code < 200 || code > 999) return ICAP_EINVAL;
  if (!active(r) || r->answer_started()) return ICAP_ESTATE;
  r->status = code;
  r->status_set = true;
  return 0;
}

int icap_request_set_icap_header(icap_request *r, const char *name, const char *value) {
  if (!r || !valid_name(name) || !icap::detail::valid_field_text(value)) return ICAP_EINVAL;
  if (!active(r) || r->answer_started()) return ICAP_ESTATE;
  using icap::detail::iequals;
  if (iequals(name, "Date") || iequals(name, "Server") || iequals(name, "Connection") ||
      iequals(name, "Encapsulated") ||
      (iequals(name, "ISTag") && r->head.method != ICAP_METHOD_OPTIONS))
    return ICAP_EINVAL;
  r->icap_headers.add(name, value);
  return 0;
}

int icap_request_set_http_status(icap_request *r, const char *line) {
  if (!r || !icap::detail::valid_field_text(line) || !*line) return ICAP_EINVAL;
  if (!active(r) || r->answer_started()) return ICAP_ESTATE;
  r->http_line = line;
  r->http_line_is_status = true;
  return 0;
}

int icap_request_set_http_request(icap_request *r, const char *line) {
  if (!r || !icap::detail::valid_field_text(line) || !*line) return ICAP_EINVAL;
  if (r->head.method != ICAP_METHOD_REQMOD) return ICAP_EINVAL;
  if (!active(r) || r->answer_started()) return ICAP_ESTATE;
  r->http_line = line;
  r->http_line_is_status = false;
  return 0;
}

int icap_request_add_http_header(icap_request *r, const char *name, const char *value) {
  if (!r || !valid_name(name) || !icap::detail::valid_field_text(value)) return ICAP_EINVAL;
  if (!active(r) || r->answer_started()) return ICAP_ESTATE;
  r->http_headers.add(name, value);
  return 0;
}

int icap_request_copy_http_head(icap_request *r, const char *const *skip) {
  if (!r) return ICAP_EINVAL;
  if (!active(r) || r->answer_started()) return ICAP_ESTATE;
  bool resp = r->head.method == ICAP_METHOD_RESPMOD;
  const HttpHead &h = resp ? r->http_res : r->http_req;
  if (!h.present) return ICAP_ENOENT;
  if (resp) {
    r->http_line = h.version + " " + std::to_string(h.status) + " " + h.reason;
    r->http_line_is_status = true;
  } else {
    r->http_line = h.method + " " + h.uri + " " + h.version;
    r->http_line_is_status = false;
  }
  for (const auto &f : h.headers.items()) {
    bool skipped = false;
    for (const char *const *s = skip; s && *s && !skipped; s++)
      skipped = icap::detail::iequals(f.name, *s);
    if (!skipped) r->http_headers.add(f.name, f.value);
  }
  return 0;
}

int icap_request_send_headers(icap_request *r, int has_body) {
  if (!r) return ICAP_EINVAL;
  if (!active(r) || r->answer_started()) return ICAP_ESTATE;
  Session *s = r->session;
  if (r->head.method == ICAP_METHOD_OPTIONS) {
    s->send_options(r);
    return 0;
  }
  int st = r->status;
  if (st == 204) return no_adaptation(r);
  if (st == 206 && !r->allow_206) return ICAP_EINVAL;
  bool http = !r->http_line.empty();
  std::string head;
  const char *kind =
      r->http_line_is_status || (!http && r->head.method == ICAP_METHOD_RESPMOD) ? "res" : "req";
  if (http) {
    head = r->http_line + "\r\n";
    for (const auto &f : r->http_headers.items()) head += f.name + ": " + f.value + "\r\n";
    head += "\r\n";
  }
  std::string enc = "Encapsulated: ";
  if (http) {
    enc += kind;
    enc += "-hdr=0, ";
  }
  if (has_body) {
    enc += kind;
    enc += "-body=";
  } else {
    enc += "null-body=";
  }
  enc += std::to_string(head.size());
  enc += "\r\n";
  s->begin_response(r, st);
  std::string h;
  for (const auto &f : r->icap_headers.items()) h += f.name + ": " + f.value + "\r\n";
  h += enc;
  h += "\r\n";
  h += head;
  s->emit(h);
  r->resp = has_body ? RespState::kHead : RespState::kDone;
  if (r->resp == RespState::kDone)
    s->after_response_done(r);
  else
    s->process();
  return 0;
}

int icap_request_send_chunk(icap_request *r, const char *data, size_t len) {
  if (!r || (!data && len)) return ICAP_EINVAL;
  if (!active(r) || r->resp != RespState::kHead) return ICAP_ESTATE;
  if (len == 0) return icap_request_end(r);
  std::string c;
  c.reserve(len + 16);
  icap::detail::append_chunk_head(c, len);
  c.append(data, len);
  c += "\r\n";
  r->session->emit(c);
  r->session->host()->session_output();
  return 0;
}

int icap_request_send_chunk_zc(icap_request *r, const char *data, size_t len,
                               icap_release_cb release, void *user) {
  if (!r || !data || !len) return ICAP_EINVAL;
  if (!active(r) || r->resp != RespState::kHead) return ICAP_ESTATE;
  std::string c;
  icap::detail::append_chunk_head(c, len);
  r->session->emit(c);
  r->session->emit_zc(data, len, release, user);
  r->session->emit("\r\n");
  r->session->host()->session_output();
  return 0;
}

int icap_request_end(icap_request *r) {
  if (!r) return ICAP_EINVAL;
  if (!active(r) || r->resp != RespState::kHead) return ICAP_ESTATE;
  r->session->emit("0\r\n\r\n");
  r->resp = RespState::kDone;
  r->session->after_response_done(r);
  return 0;
}

int icap_request_end_use_original(icap_request *r, uint64_t offset) {
  if (!r) return ICAP_EINVAL;
  if (!active(r) || r->resp != RespState::kHead) return ICAP_ESTATE;
  if (r->status != 206 || !r->allow_206) return ICAP_EINVAL;
  r->session->emit("0; use-original-body=" + std::to_string(offset) + "\r\n\r\n");
  r->resp = RespState::kDone;
  r->session->after_response_done(r);
  return 0;
}

int icap_request_abort(icap_request *r, int err) {
  if (!active(r)) return ICAP_ESTATE;
  r->session->fail(r, 500, std::string("aborted: ") + icap_strerror(err));
  return 0;
}

size_t icap_request_write_queue_size(const icap_request *r) {
  return r && r->session ? r->session->pending_output() : 0;
}

void icap_request_ref(icap_request *r) {
  if (r) r->refs++;
}

void icap_request_unref(icap_request *r) {
  if (r) icap::detail::request_unref(r);
}

int icap_request_post(icap_request *r, icap_post_cb cb, void *user) {
  if (!r || !cb) return ICAP_EINVAL;
  return r->loop ? r->loop->post(r, cb, user) : ICAP_ENOTSUP;
}

int icap_request_offload(icap_request *r, icap_work_cb work, icap_post_cb done, void *user) {
  if (!r || !work || !done) return ICAP_EINVAL;
  return r->loop ? r->loop->offload(r, work, done, user) : ICAP_ENOTSUP;
}

}  // extern "C"
