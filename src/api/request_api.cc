// SPDX-License-Identifier: MIT
// The icap_request_* C functions: argument checks around the engine's
// transaction (src/protocol/transaction.hpp), which owns every state and
// writes every byte. Each body runs under the one exception guard. Loop
// thread only, except icap_request_post().
#include "api/guard.hpp"
#include "fields/field_chars.hpp"
#include "protocol/transaction.hpp"

using icap::detail::guard;
using icap::detail::guard_void;
using icap::detail::HeaderList;
using icap::detail::HttpHead;
using icap::detail::RequestInfo;

namespace {

const HeaderList *block(const icap_request *r, icap_headers which) {
  const RequestInfo &q = r->request();
  switch (which) {
    case ICAP_HEADERS_ICAP:
      return &q.head.headers;
    case ICAP_HEADERS_HTTP_REQ:
      return &q.http_req.headers;
    case ICAP_HEADERS_HTTP_RES:
      return &q.http_res.headers;
  }
  return nullptr;
}

// A header name must be a token; a value or start line must not contain CR,
// LF or NUL (that would let a handler inject headers by accident).
bool valid_name(const char *s) { return s && icap::detail::is_token(s); }
bool valid_value(const char *s) { return icap::detail::valid_field_text(s); }
bool valid_line(const char *s) { return valid_value(s) && *s; }
bool valid_code(int code) { return code >= 200 && code <= 999; }

// A string field of the request, or "" for a NULL request.
template <class F>
const char *text(const icap_request *r, F &&field) {
  return r ? field(r->request()).c_str() : "";
}

}  // namespace

extern "C" {

// Without a request there is no method: ICAP_METHOD_COUNT_ is none of them.
icap_method icap_request_method(const icap_request *r) {
  return r ? r->request().head.method : ICAP_METHOD_COUNT_;
}
const char *icap_request_method_name(const icap_request *r) {
  return text(r, [](const RequestInfo &q) -> const std::string & { return q.head.method_name; });
}
const char *icap_request_uri(const icap_request *r) {
  return text(r, [](const RequestInfo &q) -> const std::string & { return q.head.uri; });
}
const char *icap_request_version(const icap_request *r) {
  return text(r, [](const RequestInfo &q) -> const std::string & { return q.head.version; });
}
const char *icap_request_service_name(const icap_request *r) {
  return text(r, [](const RequestInfo &q) -> const std::string & { return q.head.service; });
}
icap_service *icap_request_service(const icap_request *r) {
  return r ? r->request().service : nullptr;
}
const char *icap_request_client_ip(const icap_request *r) {
  return text(r, [](const RequestInfo &q) -> const std::string & { return q.client_ip; });
}
int icap_request_client_port(const icap_request *r) { return r ? r->request().client_port : 0; }
unsigned icap_request_worker(const icap_request *r) { return r ? r->worker() : 0; }

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
  return r->request().enc.offset[s];
}

const char *icap_request_http_method(const icap_request *r) {
  return text(r, [](const RequestInfo &q) -> const std::string & { return q.http_req.method; });
}
const char *icap_request_http_uri(const icap_request *r) {
  return text(r, [](const RequestInfo &q) -> const std::string & { return q.http_req.uri; });
}
const char *icap_request_http_req_version(const icap_request *r) {
  return r && r->request().http_req.present ? r->request().http_req.version.c_str() : "";
}
int icap_request_http_status(const icap_request *r) {
  return r ? r->request().http_res.status : -1;
}
const char *icap_request_http_reason(const icap_request *r) {
  return text(r, [](const RequestInfo &q) -> const std::string & { return q.http_res.reason; });
}
const char *icap_request_http_res_version(const icap_request *r) {
  return r && r->request().http_res.present ? r->request().http_res.version.c_str() : "";
}

const char *icap_request_raw_section(const icap_request *r, icap_section s, size_t *len) {
  const HttpHead *h = !r                          ? nullptr
                      : s == ICAP_SECTION_REQ_HDR ? &r->request().http_req
                      : s == ICAP_SECTION_RES_HDR ? &r->request().http_res
                                                  : nullptr;
  if (!h || !h->present) {
    if (len) *len = 0;
    return nullptr;
  }
  if (len) *len = h->raw.size();
  return h->raw.data();
}

int icap_request_has_body(const icap_request *r) { return r && r->has_body() ? 1 : 0; }
int64_t icap_request_preview(const icap_request *r) { return r ? r->request().preview : -1; }
int icap_request_ieof(const icap_request *r) { return r && r->ieof() ? 1 : 0; }
int icap_request_allows(const icap_request *r, int code) { return r && r->allows(code) ? 1 : 0; }
int icap_request_in_preview(const icap_request *r) { return r && r->in_preview() ? 1 : 0; }
int icap_request_response_code(const icap_request *r) { return r ? r->response_code() : 0; }

void icap_request_set_data(icap_request *r, void *data) {
  if (r) r->set_data(data);
}
void *icap_request_get_data(const icap_request *r) { return r ? r->data() : nullptr; }

int icap_request_on_done(icap_request *r, icap_done_cb cb, void *user) {
  if (!r) return ICAP_EINVAL;
  return guard([&] { return r->on_done(cb, user); });
}

int icap_request_read_chunk(icap_request *r, icap_body_cb cb, void *user) {
  if (!r || !cb) return ICAP_EINVAL;
  return guard([&] { return r->read_chunk(cb, user); });
}

int icap_request_set_body_cb(icap_request *r, icap_body_cb cb, void *user) {
  if (!r) return ICAP_EINVAL;
  return guard([&] { return r->set_body_cb(cb, user); });
}

int icap_request_pause(icap_request *r) {
  return r ? guard([&] { return r->pause(); }) : ICAP_ESTATE;
}

int icap_request_resume(icap_request *r) {
  return r ? guard([&] { return r->resume(); }) : ICAP_ESTATE;
}

int icap_request_continue(icap_request *r) {
  return r ? guard([&] { return r->cont(); }) : ICAP_ESTATE;
}

int icap_request_send_error(icap_request *r, int code) {
  if (!r || !valid_code(code)) return ICAP_EINVAL;
  return guard([&] { return r->send_error(code); });
}

int icap_request_no_adaptation(icap_request *r) {
  if (!r) return ICAP_EINVAL;
  return guard([&] { return r->no_adaptation(); });
}

int icap_request_set_status(icap_request *r, int code) {
  if (!r || !valid_code(code)) return ICAP_EINVAL;
  return guard([&] { return r->set_status(code); });
}

int icap_request_set_icap_header(icap_request *r, const char *name, const char *value) {
  if (!r || !valid_name(name) || !valid_value(value)) return ICAP_EINVAL;
  return guard([&] { return r->set_icap_header(name, value); });
}

int icap_request_set_http_status(icap_request *r, const char *line) {
  if (!r || !valid_line(line)) return ICAP_EINVAL;
  return guard([&] { return r->set_http_status(line); });
}

int icap_request_set_http_request(icap_request *r, const char *line) {
  if (!r || !valid_line(line)) return ICAP_EINVAL;
  return guard([&] { return r->set_http_request(line); });
}

int icap_request_add_http_header(icap_request *r, const char *name, const char *value) {
  if (!r || !valid_name(name) || !valid_value(value)) return ICAP_EINVAL;
  return guard([&] { return r->add_http_header(name, value); });
}

int icap_request_copy_http_head(icap_request *r, const char *const *skip) {
  if (!r) return ICAP_EINVAL;
  return guard([&] { return r->copy_http_head(skip); });
}

int icap_request_send_headers(icap_request *r, int has_body) {
  if (!r) return ICAP_EINVAL;
  return guard([&] { return r->send_headers(has_body != 0); });
}

int icap_request_send_chunk(icap_request *r, const char *data, size_t len) {
  if (!r || (!data && len)) return ICAP_EINVAL;
  return guard([&] { return r->send_chunk(data, len); });
}

int icap_request_send_chunk_zc(icap_request *r, const char *data, size_t len,
                               icap_release_cb release, void *user) {
  if (!r || !data || !len) return ICAP_EINVAL;
  return guard([&] { return r->send_chunk_zc(data, len, release, user); });
}

int icap_request_end(icap_request *r) {
  if (!r) return ICAP_EINVAL;
  return guard([&] { return r->end(); });
}

int icap_request_end_use_original(icap_request *r, uint64_t offset) {
  if (!r) return ICAP_EINVAL;
  return guard([&] { return r->end_use_original(offset); });
}

int icap_request_abort(icap_request *r, int err) {
  return r ? guard([&] { return r->abort(err); }) : ICAP_ESTATE;
}

size_t icap_request_write_queue_size(const icap_request *r) {
  return r ? r->write_queue_size() : 0;
}

void icap_request_ref(icap_request *r) {
  if (r) r->ref();
}

void icap_request_unref(icap_request *r) {
  if (r) guard_void([&] { r->unref(); });
}

int icap_request_post(icap_request *r, icap_post_cb cb, void *user) {
  if (!r || !cb) return ICAP_EINVAL;
  return guard([&] { return r->post(cb, user); });
}

int icap_request_offload(icap_request *r, icap_work_cb work, icap_post_cb done, void *user) {
  if (!r || !work || !done) return ICAP_EINVAL;
  return guard([&] { return r->offload(work, done, user); });
}

}  // extern "C"
