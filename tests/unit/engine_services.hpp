// SPDX-License-Identifier: MIT
// The handler behaviours the engine tests use, one service per behaviour.
// Each handler records what happens in a trace that does not depend on how
// the input was split ("H(svc)" when called, "END<flags>:<bytes>" when a body
// read ends, "ERR<status>" on a failed read, "D<status>" when the
// transaction is done, "<api>=<rc>" for API calls that returned non-zero or
// whose code matters).
#ifndef ICAP_TESTS_UNIT_ENGINE_SERVICES_HPP
#define ICAP_TESTS_UNIT_ENGINE_SERVICES_HPP

#include <stdexcept>
#include <string>
#include <vector>

#include "harness.hpp"

namespace icaptest {

struct Ctx {
  std::string trace;
  int handler_calls = 0;
  int done_calls = 0;
  int body_calls = 0;
  std::vector<std::string> views;              // what each handler saw
  std::vector<icap_request *> paused;          // push requests to resume (referenced)
  std::vector<icap_request *> deferred;        // requests answered at the end (referenced)
  std::vector<icap_request *> deferred_abort;  // requests aborted at the end (referenced)

  void ev(const std::string &s) {
    if (!trace.empty()) trace += ' ';
    trace += s;
  }
  void rc(const char *what, int rc) {
    if (rc != 0) ev(std::string(what) + "=" + std::to_string(rc));
  }
};

struct ReqState {
  Ctx *ctx = nullptr;
  std::string body;     // everything read
  std::string pending;  // read during the preview, not yet echoed
  bool headers_sent = false;
};

// The handler's view of the request, compact, for the tables.
inline std::string view_of(icap_request *r) {
  std::string v = icap_request_method_name(r);
  v += " enc=";
  for (int s = 0; s < ICAP_SECTION_COUNT_; s++) {
    if (s) v += ',';
    v += std::to_string(icap_request_encapsulated(r, static_cast<icap_section>(s)));
  }
  v += " pv=" + std::to_string(icap_request_preview(r));
  v += " body=" + std::to_string(icap_request_has_body(r));
  v += " allow=" + std::to_string(icap_request_allows(r, 204)) +
       std::to_string(icap_request_allows(r, 206));
  if (*icap_request_http_method(r))
    v += std::string(" req=") + icap_request_http_method(r) + " " + icap_request_http_uri(r) + " " +
         icap_request_http_req_version(r);
  if (icap_request_http_status(r) >= 0)
    v += std::string(" res=") + icap_request_http_res_version(r) + " " +
         std::to_string(icap_request_http_status(r)) + " " + icap_request_http_reason(r);
  return v;
}

inline void on_done(icap_request *r, int status, void *user) {
  auto *st = static_cast<ReqState *>(user);
  st->ctx->done_calls++;
  st->ctx->ev("D" + std::to_string(status));
  delete st;
}

inline ReqState *begin(icap_request *r, void *user, const char *name) {
  Ctx *c = static_cast<Ctx *>(user);
  c->handler_calls++;
  c->ev(std::string("H(") + name + ")");
  c->views.push_back(view_of(r));
  auto *st = new ReqState;
  st->ctx = c;
  icap_request_on_done(r, on_done, st);
  return st;
}

// What every read callback does first: count the call, trace an error
// status (the transaction is ending), keep the data. Returns the state, or
// nullptr after an error.
inline ReqState *got_piece(int status, const char *d, size_t n, void *u) {
  auto *st = static_cast<ReqState *>(u);
  st->ctx->body_calls++;
  if (status < 0) {
    st->ctx->ev("ERR" + std::to_string(status));
    return nullptr;
  }
  st->body.append(d, n);
  return st;
}

// Starts reading the body with `cb`, or, when there is nothing to read
// (`read` false), answers with no_adaptation() at once.
inline int read_or_adapt(icap_request *r, ReqState *st, bool read, icap_body_cb cb) {
  if (read)
    st->ctx->rc("read", icap_request_read_chunk(r, cb, st));
  else
    st->ctx->ev("na=" + std::to_string(icap_request_no_adaptation(r)));
  return 0;
}

inline std::string end_event(int status, size_t n) {
  return "END" + std::to_string(status) + ":" + std::to_string(n);
}

// Answers with the original HTTP head and `body` (when the request had one).
inline void respond_copy(icap_request *r, ReqState *st, const std::string &body) {
  Ctx *c = st->ctx;
  c->rc("copy", icap_request_copy_http_head(r, nullptr));
  bool has = icap_request_has_body(r);
  c->rc("sh", icap_request_send_headers(r, has ? 1 : 0));
  if (!has) return;
  if (!body.empty()) c->rc("chunk", icap_request_send_chunk(r, body.data(), body.size()));
  c->rc("end", icap_request_end(r));
}

// ---- echo: icap_request_no_adaptation() at once -----------------------------
inline int h_echo(icap_request *r, void *u) {
  ReqState *st = begin(r, u, "echo");
  st->ctx->rc("na", icap_request_no_adaptation(r));
  return 0;
}

// The read_chunk() callback of the reading behaviours: collect each piece
// and ask for the next one; where the body (or the preview) ends, trace it
// and let `AtEnd` decide, which answers and returns false, or returns true
// to read on.
using AtEndFn = bool (*)(icap_request *r, ReqState *st, int status);
template <AtEndFn AtEnd>
void read_cb(icap_request *r, int status, const char *d, size_t n, void *u) {
  ReqState *st = got_piece(status, d, n, u);
  if (!st) return;
  if (status & ICAP_BODY_END) {
    st->ctx->ev(end_event(status, st->body.size()));
    if (!AtEnd(r, st, status)) return;
  }
  st->ctx->rc("read", icap_request_read_chunk(r, read_cb<AtEnd>, st));
}

// ---- upper: read the whole body with read_chunk, answer 200 uppercased ------
inline bool upper_end(icap_request *r, ReqState *st, int status) {
  if (status & ICAP_BODY_PREVIEW_END) return true;
  respond_copy(r, st, upper(st->body));
  return false;
}
inline int h_upper(icap_request *r, void *u) {
  ReqState *st = begin(r, u, "upper");
  st->ctx->rc("read", icap_request_read_chunk(r, read_cb<upper_end>, st));  // ESTATE without body
  if (!icap_request_has_body(r)) respond_copy(r, st, "");
  return 0;
}

// ---- cont: read the preview, cont() explicitly, read the rest, echo ---------
inline bool cont_end(icap_request *r, ReqState *st, int status) {
  Ctx *c = st->ctx;
  if (status & ICAP_BODY_PREVIEW_END) {
    c->ev("cont=" + std::to_string(icap_request_continue(r)));
    c->ev("cont2=" + std::to_string(icap_request_continue(r)));  // only once
    return true;
  }
  if (status & ICAP_BODY_IEOF) c->ev("cont=" + std::to_string(icap_request_continue(r)));
  respond_copy(r, st, st->body);
  return false;
}
inline int h_cont(icap_request *r, void *u) {
  ReqState *st = begin(r, u, "cont");
  if (!icap_request_has_body(r)) {
    respond_copy(r, st, "");
    return 0;
  }
  // Before the preview is over, 100 Continue is not possible.
  if (icap_request_preview(r) >= 0)
    st->ctx->ev("early=" + std::to_string(icap_request_continue(r)));
  st->ctx->rc("read", icap_request_read_chunk(r, read_cb<cont_end>, st));
  return 0;
}

// ---- contna: read the preview, cont(), then no_adaptation() (echo) ----------
inline bool contna_end(icap_request *r, ReqState *st, int status) {
  if (status & ICAP_BODY_PREVIEW_END) st->ctx->rc("cont", icap_request_continue(r));
  st->ctx->ev("na=" + std::to_string(icap_request_no_adaptation(r)));
  return false;
}
inline int h_contna(icap_request *r, void *u) {
  ReqState *st = begin(r, u, "contna");
  return read_or_adapt(r, st, icap_request_has_body(r) && icap_request_preview(r) >= 0,
                       read_cb<contna_end>);
}

// ---- p204: read the preview, then no_adaptation() (204 in the preview) -------
inline bool p204_end(icap_request *r, ReqState *st, int) {
  st->ctx->ev("inpv=" + std::to_string(icap_request_in_preview(r)));
  st->ctx->ev("na=" + std::to_string(icap_request_no_adaptation(r)));
  return false;
}
inline int h_p204(icap_request *r, void *u) {
  ReqState *st = begin(r, u, "p204");
  return read_or_adapt(r, st, icap_request_has_body(r), read_cb<p204_end>);
}

// ---- push: streaming echo with set_body_cb, pausing after every piece -------
inline void push_headers(icap_request *r, ReqState *st) {
  if (st->headers_sent) return;
  st->headers_sent = true;
  Ctx *c = st->ctx;
  c->rc("copy", icap_request_copy_http_head(r, nullptr));
  c->rc("sh", icap_request_send_headers(r, 1));
  if (!st->pending.empty())
    c->rc("chunk", icap_request_send_chunk(r, st->pending.data(), st->pending.size()));
  st->pending.clear();
}
inline void push_cb(icap_request *r, int status, const char *d, size_t n, void *u) {
  ReqState *st = got_piece(status, d, n, u);
  if (!st) return;
  Ctx *c = st->ctx;
  if (n) {
    if (st->headers_sent)
      c->rc("chunk", icap_request_send_chunk(r, d, n));
    else
      st->pending.append(d, n);
  }
  if (!(status & ICAP_BODY_END)) {
    c->rc("pause", icap_request_pause(r));
    icap_request_ref(r);
    c->paused.push_back(r);
    return;
  }
  c->ev(end_event(status, st->body.size()));
  if (status & ICAP_BODY_PREVIEW_END) {
    c->ev("cont=" + std::to_string(icap_request_continue(r)));
    push_headers(r, st);
    return;
  }
  push_headers(r, st);
  c->rc("end", icap_request_end(r));
}
inline int h_push(icap_request *r, void *u) {
  ReqState *st = begin(r, u, "push");
  if (!icap_request_has_body(r)) {
    respond_copy(r, st, "");
    return 0;
  }
  // Without a preview the response head can go out before the body.
  if (icap_request_preview(r) < 0) push_headers(r, st);
  st->ctx->rc("setcb", icap_request_set_body_cb(r, push_cb, st));
  return 0;
}

// ---- small behaviours -------------------------------------------------------
inline int h_deny(icap_request *r, void *u) {
  ReqState *st = begin(r, u, "deny");
  st->ctx->rc("err", icap_request_send_error(r, 403));
  return 0;
}
inline int h_s204(icap_request *r, void *u) {
  ReqState *st = begin(r, u, "s204");
  st->ctx->rc("status", icap_request_set_status(r, 204));
  st->ctx->rc("sh", icap_request_send_headers(r, 0));
  return 0;
}
inline int h_s206(icap_request *r, void *u) {
  ReqState *st = begin(r, u, "s206");
  Ctx *c = st->ctx;
  c->rc("status", icap_request_set_status(r, 206));
  c->rc("copy", icap_request_copy_http_head(r, nullptr));
  int rc = icap_request_send_headers(r, 1);
  if (rc != 0) {
    c->ev("sh=" + std::to_string(rc));
    c->ev("na=" + std::to_string(icap_request_no_adaptation(r)));
    return 0;
  }
  c->rc("chunk", icap_request_send_chunk(r, "X-", 2));
  c->rc("orig", icap_request_end_use_original(r, 0));
  return 0;
}
inline int h_fail(icap_request *r, void *u) {
  begin(r, u, "fail");
  return ICAP_EHANDLER;
}
inline int h_throw(icap_request *r, void *u) {
  begin(r, u, "throw");
  throw std::runtime_error("handler threw");
}
inline int h_failafter(icap_request *r, void *u) {
  ReqState *st = begin(r, u, "failafter");
  st->ctx->rc("na", icap_request_no_adaptation(r));
  return ICAP_EHANDLER;
}
inline int h_abortmid(icap_request *r, void *u) {
  ReqState *st = begin(r, u, "abortmid");
  Ctx *c = st->ctx;
  c->rc("copy", icap_request_copy_http_head(r, nullptr));
  c->rc("sh", icap_request_send_headers(r, 1));
  c->rc("chunk", icap_request_send_chunk(r, "partial", 7));
  c->rc("abort", icap_request_abort(r, ICAP_EIO));
  return 0;
}
inline int h_late(icap_request *r, void *u) {
  ReqState *st = begin(r, u, "late");
  icap_request_ref(r);
  st->ctx->deferred.push_back(r);
  return 0;
}
inline int h_lateabort(icap_request *r, void *u) {
  ReqState *st = begin(r, u, "lateabort");
  icap_request_ref(r);
  st->ctx->deferred_abort.push_back(r);
  return 0;
}
// REQMOD answered with an HTTP response (a block page), as RFC 3507 allows.
inline int h_block(icap_request *r, void *u) {
  ReqState *st = begin(r, u, "block");
  Ctx *c = st->ctx;
  c->rc("st", icap_request_set_http_status(r, "HTTP/1.1 403 Forbidden"));
  c->rc("h1", icap_request_add_http_header(r, "Content-Type", "text/plain"));
  c->rc("h2", icap_request_add_http_header(r, "Content-Length", "7"));
  c->ev("inj=" + std::to_string(icap_request_add_http_header(r, "X-Bad", "a\r\nInjected: 1")));
  c->rc("sh", icap_request_send_headers(r, 1));
  c->rc("chunk", icap_request_send_chunk(r, "blocked", 7));
  c->rc("end", icap_request_end(r));
  return 0;
}
// REQMOD answered with a rewritten HTTP request and no body.
inline int h_rewrite(icap_request *r, void *u) {
  ReqState *st = begin(r, u, "rewrite");
  Ctx *c = st->ctx;
  int rc = icap_request_set_http_request(r, "GET http://example.com/rewritten HTTP/1.1");
  if (rc) {
    c->ev("req=" + std::to_string(rc));  // RESPMOD: not allowed
    c->rc("na", icap_request_no_adaptation(r));
    return 0;
  }
  c->rc("h1", icap_request_add_http_header(r, "Host", "example.com"));
  c->rc("h2", icap_request_add_http_header(r, "X-Rewritten", "1"));
  c->rc("sh", icap_request_send_headers(r, 0));
  return 0;
}
// Starts a read, then answers with a complete bodiless response while the
// read is still pending. Every read_chunk() that returned 0 must call its
// callback exactly once (STYLE rule 12): here with ICAP_ECANCELED, as
// icap_request_send_error() documents for a pending read.
inline void readanswer_cb(icap_request *r, int status, const char *d, size_t n, void *u) {
  auto *st = static_cast<ReqState *>(u);
  st->ctx->body_calls++;
  st->ctx->ev(status < 0 ? "ERR" + std::to_string(status) : "DATA");
}
inline int h_readanswer(icap_request *r, void *u) {
  ReqState *st = begin(r, u, "readanswer");
  Ctx *c = st->ctx;
  c->rc("read", icap_request_read_chunk(r, readanswer_cb, st));
  c->rc("st", icap_request_set_http_status(r, "HTTP/1.1 403 Forbidden"));
  c->rc("sh", icap_request_send_headers(r, 0));
  return 0;
}
inline int h_silent(icap_request *r, void *u) {
  begin(r, u, "silent");
  return 0;
}
inline int h_reqonly(icap_request *r, void *u) {
  ReqState *st = begin(r, u, "reqonly");
  st->ctx->rc("na", icap_request_no_adaptation(r));
  return 0;
}
inline int h_opt(icap_request *r, void *u) {
  ReqState *st = begin(r, u, "opt");
  Ctx *c = st->ctx;
  c->rc("h1", icap_request_set_icap_header(r, "Preview", "0"));
  c->rc("h2", icap_request_set_icap_header(r, "X-Include", "X-Client-IP"));
  c->rc("h3", icap_request_set_icap_header(r, "ISTag", "\"opt-tag\""));
  c->ev("date=" + std::to_string(icap_request_set_icap_header(r, "Date", "x")));
  c->rc("sh", icap_request_send_headers(r, 0));
  return 0;
}

// Registers every behaviour as a service named after it.
inline void add_services(ServiceTable &t, Ctx *ctx) {
  struct Def {
    const char *name;
    icap_handler_cb opt, req, resp;
  };
  static const Def defs[] = {
      {"echo", nullptr, h_echo, h_echo},
      {"upper", nullptr, h_upper, h_upper},
      {"cont", nullptr, h_cont, h_cont},
      {"contna", nullptr, h_contna, h_contna},
      {"p204", nullptr, h_p204, h_p204},
      {"push", nullptr, h_push, h_push},
      {"deny", nullptr, h_deny, h_deny},
      {"s204", nullptr, h_s204, h_s204},
      {"s206", nullptr, h_s206, h_s206},
      {"fail", nullptr, h_fail, h_fail},
      {"throw", nullptr, h_throw, h_throw},
      {"failafter", nullptr, h_failafter, h_failafter},
      {"abortmid", nullptr, h_abortmid, h_abortmid},
      {"late", nullptr, h_late, h_late},
      {"lateabort", nullptr, h_lateabort, h_lateabort},
      {"silent", nullptr, h_silent, h_silent},
      {"readanswer", nullptr, h_readanswer, h_readanswer},
      {"block", nullptr, h_block, h_block},
      {"rewrite", nullptr, h_rewrite, h_rewrite},
      {"reqonly", nullptr, h_reqonly, nullptr},
      {"opt", h_opt, h_echo, h_echo},
  };
  for (const Def &d : defs) {
    auto svc = std::make_unique<icap_service>();
    svc->name = d.name;
    svc->istag = std::string("tag-") + d.name;
    icap_handler_cb hs[ICAP_METHOD_COUNT_] = {d.opt, d.req, d.resp};
    for (int m = 0; m < ICAP_METHOD_COUNT_; m++) {
      svc->handler[m] = hs[m];
      svc->handler_user[m] = ctx;
    }
    t.emplace(d.name, std::move(svc));
  }
}

}  // namespace icaptest

#endif
