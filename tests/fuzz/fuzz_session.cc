// SPDX-License-Identifier: MIT
// Fuzz target (d): whole transactions through the sans-IO Session.
//
// Input: 16 control bytes, then the bytes a client sends on one connection.
//   c[0]  bits 0-1 limits profile (default, small, tiny buffer, medium);
//         bit 2 the server starts draining at iteration c[3]; bit 3 the
//         client does not read until the session stops taking input; bits
//         4-5 a timer fires at iteration c[3] (0: never); bit 6 the service
//         has an OPTIONS handler; bit 7 the client resets instead of closing
//         at the end (no eof()).
//   c[1], c[2]  split pattern (seed, and the largest piece 1/16/512/64K).
//   c[3]  the iteration at which the drain or the timer happens.
//   c[4..11]  the handler's decision for transaction i is c[4 + i % 8]
//         (low 4 bits: the action, high 4 bits: a variant); see Act.
//   c[12..15]  reserved.
// The rest is fed to a Session in pieces, only while it wants input (as the
// server does), and its output is written back (acknowledged with written())
// unless the client is not reading. Deferred decisions run between pieces.
// At the end the client closes (eof) or resets, deferred work runs, and a
// handler that never answered meets its timeout, as in the server.
//
// Invariants checked:
//  - no crash, no leak, no use after free (ASan/LSan/UBSan);
//  - the output is a sequence of well-formed ICAP responses (icap_wire.hpp),
//    nothing after a "Connection: close", no truncated response unless a
//    transaction ended badly or the connection is dropped, 400/408/501/505
//    always close, and
//    every response begun after the drain started says Connection: close;
//  - every dispatched transaction gets its done callback exactly once, with
//    a documented status; no body callback after END or after done; at most
//    Preview bytes arrive before the preview ends; zero-copy data is
//    released exactly once;
//  - no_adaptation() answers 204 exactly when the client allowed it (Allow:
//    204, or in a preview), else echoes with 200 (DESIGN.md);
//  - API calls return their documented codes;
//  - no stall: when the session takes no input, nothing is queued, the
//    client reads and no handler owes an answer, the session must not be
//    sitting on unprocessed input;
//  - bounded buffering: output queued for a client that does not read stays
//    within a bound derived from ICAP_LIMIT_BUFFER_BYTES (see kOutputBound).
#include <cstring>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_common.hpp"
#include "fuzz_engine.hpp"

using namespace icap::detail;
using icaptest::wait_name;

namespace {

enum Act : uint8_t {
  kNoAdapt = 0,        // icap_request_no_adaptation() at once
  kReadReply = 1,      // read the whole body with read_chunk, then a new reply
  kSendError = 2,      // send_error(code) at once
  kContinue = 3,       // read the preview, icap_request_continue(), push the rest
  kPushPause = 4,      // push mode, pausing after every piece, resuming later
  kAbort = 5,          // icap_request_abort() at once or at the first piece
  kStatus204 = 6,      // set_status(204) + send_headers()
  kStatus206 = 7,      // set_status(206) + a 206 body ending use-original-body
  kDefer = 8,          // decide (variant) on a later iteration
  kReturnError = 9,    // the handler returns ICAP_EIO
  kThrow = 10,         // the handler throws
  kReadOneError = 11,  // read one piece, then send_error(403)
  kReadNoAdapt = 12,   // read one piece, then no_adaptation (may be ECONSUMED)
  kZeroCopy = 13,      // block page with a zero-copy chunk
  kNever = 14,         // never answer (the handler timeout must)
  kOptionsLike = 15    // answer with send_headers(0) and no HTTP message
};

struct Run;

struct Txn {
  Run *run = nullptr;
  int idx = 0;
  uint8_t act = 0, variant = 0;
  icap_method method = ICAP_METHOD_OPTIONS;
  int64_t preview = -1;
  bool allow204 = false, allow206 = false, has_body = false;
  bool preview_over = false, body_end = false, ieof = false;
  uint64_t preview_bytes = 0, total = 0;
  std::string body;  // the first 4 KiB of what was read
  int done_calls = 0, done_status = 1;
  int pieces = 0;
  bool answered = false;
};

struct Tick {
  icap_request *req;
  std::function<void()> fn;
};

struct Run {
  const uint8_t *decisions = nullptr;
  std::vector<std::unique_ptr<Txn>> txns;
  std::vector<Tick> ticks;
  int zc_sent = 0, zc_released = 0;
  int preview_requests = 0;
  int options_calls = 0;
  bool options_handler = false;

  void later(icap_request *req, std::function<void()> fn) {
    icap_request_ref(req);
    ticks.push_back(Tick{req, std::move(fn)});
  }
  // Runs the deferred work queued so far (not what it queues itself).
  bool run_ticks() {
    if (ticks.empty()) return false;
    std::vector<Tick> list;
    list.swap(ticks);
    for (Tick &t : list) {
      t.fn();
      icap_request_unref(t.req);
    }
    return true;
  }
};

const char *err(int rc) { return icap_err_name(rc); }

bool active_code(int rc) { return rc == 0 || rc == ICAP_ESTATE; }

void on_done(icap_request *req, int status, void *user) {
  auto *t = static_cast<Txn *>(user);
  t->done_calls++;
  t->done_status = status;
  FUZZ_CHECK(t->done_calls == 1, "done called twice");
  FUZZ_CHECK(status == 0 || status == ICAP_ECONNRESET || status == ICAP_ETIMEDOUT ||
                 status == ICAP_ECANCELED || status == ICAP_EPROTO || status == ICAP_EHANDLER,
             std::string("done status ") + err(status));
  // Answering after the end is refused.
  FUZZ_CHECK(icap_request_send_error(req, 403) == ICAP_ESTATE, "send_error after done");
  FUZZ_CHECK(icap_request_no_adaptation(req) == ICAP_ESTATE, "no_adaptation after done");
}

void zc_release(const char *, size_t, void *user) { static_cast<Run *>(user)->zc_released++; }

// no_adaptation() and the 204 rule.
int no_adapt_checked(icap_request *req, Txn *t) {
  bool allowed = icap_request_allows(req, 204) || icap_request_in_preview(req);
  int rc = icap_request_no_adaptation(req);
  if (rc == 0) {
    int code = icap_request_response_code(req);
    FUZZ_CHECK(code == (allowed ? 204 : 200), "no_adaptation answered " + std::to_string(code) +
                                                  " (204 allowed: " + std::to_string(allowed) +
                                                  ")");
    t->answered = true;
  } else {
    FUZZ_CHECK(rc == ICAP_ECONSUMED || rc == ICAP_ESTATE, std::string("no_adaptation: ") + err(rc));
    if (rc == ICAP_ECONSUMED) FUZZ_CHECK(!allowed, "ECONSUMED although 204 was allowed");
  }
  return rc;
}

// A fresh reply: the original head (Content-Length dropped), a header, and
// what was read as the body.
void reply(icap_request *req, Txn *t) {
  static const char *const skip[] = {"Content-Length", nullptr};
  int rc = icap_request_copy_http_head(req, skip);
  if (rc == ICAP_ENOENT) rc = icap_request_set_http_status(req, "HTTP/1.1 200 OK");
  if (rc == ICAP_ESTATE) return;  // the transaction ended meanwhile
  FUZZ_CHECK(rc == 0, std::string("copy_http_head: ") + err(rc));
  FUZZ_CHECK(icap_request_add_http_header(req, "X-Fuzz", "1") == 0, "add_http_header");
  FUZZ_CHECK(icap_request_add_http_header(req, "Bad Name", "1") == ICAP_EINVAL, "bad name taken");
  FUZZ_CHECK(icap_request_add_http_header(req, "X", "a\r\nb: c") == ICAP_EINVAL, "CRLF taken");
  rc = icap_request_send_headers(req, 1);
  FUZZ_CHECK(rc == 0, std::string("send_headers: ") + err(rc));
  if (!t->body.empty()) {
    rc = icap_request_send_chunk(req, t->body.data(), t->body.size());
    FUZZ_CHECK(rc == 0, std::string("send_chunk: ") + err(rc));
  }
  rc = icap_request_end(req);
  FUZZ_CHECK(rc == 0, std::string("end: ") + err(rc));
  FUZZ_CHECK(icap_request_end(req) == ICAP_ESTATE, "end twice");
  t->answered = true;
}

void act_now(icap_request *req, Txn *t, uint8_t act);

// Common bookkeeping of every body callback. Returns false when the
// callback carries an error (the transaction is ending).
bool body_event(icap_request *req, Txn *t, int status, const char *data, size_t len) {
  FUZZ_CHECK(t->done_calls == 0, "body callback after done");
  FUZZ_CHECK(!t->body_end, "body callback after END");
  if (status < 0) {
    FUZZ_CHECK(status == ICAP_EPROTO || status == ICAP_ECONNRESET || status == ICAP_ECANCELED ||
                   status == ICAP_ETIMEDOUT || status == ICAP_EHANDLER,
               std::string("body error ") + err(status));
    FUZZ_CHECK(!data && !len, "data with an error");
    t->body_end = true;
    return false;
  }
  FUZZ_CHECK((status & ~7) == 0, "unknown body flags");
  FUZZ_CHECK(len == 0 || data, "null data");
  t->pieces++;
  t->total += len;
  if (t->body.size() < 4096) t->body.append(data, std::min(len, 4096 - t->body.size()));
  if (t->preview >= 0 && !t->preview_over) {
    t->preview_bytes += len;
    FUZZ_CHECK(static_cast<int64_t>(t->preview_bytes) <= t->preview,
               "preview longer than announced");
  }
  if (status & (ICAP_BODY_PREVIEW_END | ICAP_BODY_IEOF)) {
    FUZZ_CHECK(t->preview >= 0, "preview flags without a preview");
    FUZZ_CHECK(!t->preview_over, "preview ended twice");
    FUZZ_CHECK(status & ICAP_BODY_END, "preview end without END");
    t->preview_over = true;
    if (status & ICAP_BODY_IEOF) {
      t->ieof = true;
      FUZZ_CHECK(!(status & ICAP_BODY_PREVIEW_END), "IEOF with PREVIEW_END");
      FUZZ_CHECK(icap_request_ieof(req) == 1, "ieof() disagrees");
    }
  }
  if ((status & ICAP_BODY_END) && !(status & ICAP_BODY_PREVIEW_END)) t->body_end = true;
  return true;
}

// A body callback's first step: check the event; once the body ended,
// reply. Returns the transaction when the callback has more to do.
Txn *body_step(icap_request *req, int status, const char *data, size_t len, void *user) {
  auto *t = static_cast<Txn *>(user);
  if (!body_event(req, t, status, data, len)) return nullptr;
  if (!t->body_end) return t;
  reply(req, t);
  return nullptr;
}

void on_read_all(icap_request *req, int status, const char *data, size_t len, void *user) {
  Txn *t = body_step(req, status, data, len, user);
  if (!t) return;
  int rc = icap_request_read_chunk(req, on_read_all, t);
  FUZZ_CHECK(rc == 0, std::string("read_chunk again: ") + err(rc));
}

void on_push(icap_request *req, int status, const char *data, size_t len, void *user) {
  Txn *t = body_step(req, status, data, len, user);
  if (!t) return;
  if (status & ICAP_BODY_PREVIEW_END) {
    if (t->act == kContinue) {
      int rc = icap_request_continue(req);
      FUZZ_CHECK(rc == 0, std::string("continue: ") + err(rc));
      FUZZ_CHECK(icap_request_continue(req) == ICAP_ESTATE, "continue twice");
      return;
    }
    // Resume later: resume() sends the 100 Continue itself.
    t->run->later(req, [req] { FUZZ_CHECK(active_code(icap_request_resume(req)), "resume"); });
    return;
  }
  if (t->act == kPushPause) {
    FUZZ_CHECK(icap_request_pause(req) == 0, "pause");
    t->run->later(req, [req] { FUZZ_CHECK(active_code(icap_request_resume(req)), "resume"); });
  }
}

void on_read_one(icap_request *req, int status, const char *data, size_t len, void *user) {
  auto *t = static_cast<Txn *>(user);
  if (!body_event(req, t, status, data, len)) return;
  if (t->act == kAbort) {
    FUZZ_CHECK(icap_request_abort(req, ICAP_EIO) == 0, "abort");
    FUZZ_CHECK(icap_request_abort(req, ICAP_EIO) == ICAP_ESTATE, "abort twice");
    return;
  }
  if (t->act == kReadOneError) {
    int rc = icap_request_send_error(req, 403);
    FUZZ_CHECK(rc == 0, std::string("send_error after a read: ") + err(rc));
    t->answered = true;
    return;
  }
  int rc = no_adapt_checked(req, t);
  if (rc == ICAP_ECONSUMED) {
    rc = icap_request_send_error(req, 500);
    FUZZ_CHECK(rc == 0, std::string("send_error after ECONSUMED: ") + err(rc));
  } else {
    FUZZ_CHECK(rc == 0, std::string("no_adaptation after a read: ") + err(rc));
  }
}

void start_read(icap_request *req, Txn *t, icap_body_cb cb) {
  int rc = icap_request_read_chunk(req, cb, t);
  if (!t->has_body) {
    FUZZ_CHECK(rc == ICAP_ESTATE, std::string("read_chunk without body: ") + err(rc));
    reply(req, t);
    return;
  }
  FUZZ_CHECK(rc == 0, std::string("read_chunk: ") + err(rc));
  // The first read may have been served (and the answer sent) already.
  int rc2 = icap_request_read_chunk(req, cb, t);
  FUZZ_CHECK(rc2 == ICAP_EBUSY || rc2 == ICAP_ESTATE,
             std::string("second pending read: ") + err(rc2));
}

void act_now(icap_request *req, Txn *t, uint8_t act) {
  t->act = act;
  if (t->done_calls) return;  // a deferred decision for a transaction that ended
  switch (act) {
    case kNoAdapt: {
      int rc = no_adapt_checked(req, t);
      FUZZ_CHECK(rc == 0, std::string("no_adaptation: ") + err(rc));
      break;
    }
    case kReadReply:
      start_read(req, t, on_read_all);
      break;
    case kSendError: {
      static const int kCodes[8] = {403, 500, 200, 451, 999, 404, 503, 201};
      int rc = icap_request_send_error(req, kCodes[t->variant & 7]);
      FUZZ_CHECK(rc == 0, std::string("send_error: ") + err(rc));
      FUZZ_CHECK(icap_request_send_error(req, 403) == ICAP_ESTATE, "send_error twice");
      FUZZ_CHECK(icap_request_send_error(req, 99) == ICAP_EINVAL, "send_error(99)");
      t->answered = true;
      break;
    }
    case kContinue:
      if (t->preview >= 0 && t->has_body) {
        FUZZ_CHECK(icap_request_continue(req) == ICAP_ESTATE, "continue before the preview ended");
        int rc = icap_request_set_body_cb(req, on_push, t);
        FUZZ_CHECK(rc == 0, std::string("set_body_cb: ") + err(rc));
      } else {
        start_read(req, t, on_read_all);
      }
      break;
    case kPushPause: {
      int rc = icap_request_set_body_cb(req, on_push, t);
      if (!t->has_body) {
        FUZZ_CHECK(rc == ICAP_ESTATE, "push without body");
        reply(req, t);
      } else {
        FUZZ_CHECK(rc == 0, std::string("set_body_cb: ") + err(rc));
        // EBUSY while pushing; ESTATE if the push already took the whole
        // body and the answer went out.
        int rc2 = icap_request_read_chunk(req, on_read_all, t);
        FUZZ_CHECK(rc2 == ICAP_EBUSY || rc2 == ICAP_ESTATE,
                   std::string("read while pushing: ") + err(rc2));
      }
      break;
    }
    case kAbort:
      if ((t->variant & 1) || !t->has_body) {
        FUZZ_CHECK(icap_request_abort(req, ICAP_EIO) == 0, "abort");
      } else {
        start_read(req, t, on_read_one);
      }
      break;
    case kStatus204: {
      FUZZ_CHECK(icap_request_set_status(req, 204) == 0, "set_status(204)");
      FUZZ_CHECK(icap_request_response_code(req) == 204, "response_code after set_status");
      bool allowed = icap_request_allows(req, 204) || icap_request_in_preview(req);
      int rc = icap_request_send_headers(req, 0);
      FUZZ_CHECK(rc == 0, std::string("send_headers(204): ") + err(rc));
      FUZZ_CHECK(icap_request_response_code(req) == (allowed ? 204 : 200), "204 rule");
      t->answered = true;
      break;
    }
    case kStatus206: {
      FUZZ_CHECK(icap_request_set_status(req, 206) == 0, "set_status(206)");
      int rc = icap_request_send_headers(req, 1);
      if (!t->allow206) {
        FUZZ_CHECK(rc == ICAP_EINVAL, std::string("206 without Allow: 206: ") + err(rc));
        FUZZ_CHECK(icap_request_send_error(req, 500) == 0, "send_error after refused 206");
      } else {
        FUZZ_CHECK(rc == 0, std::string("send_headers(206): ") + err(rc));
        FUZZ_CHECK(icap_request_send_chunk(req, "x", 1) == 0, "send_chunk(206)");
        FUZZ_CHECK(icap_request_end_use_original(req, t->variant) == 0, "end_use_original");
      }
      t->answered = true;
      break;
    }
    case kReadOneError:
    case kReadNoAdapt:
      if (!t->has_body) {
        if (act == kReadOneError) {
          FUZZ_CHECK(icap_request_send_error(req, 403) == 0, "send_error");
        } else {
          FUZZ_CHECK(no_adapt_checked(req, t) == 0, "no_adaptation without body");
        }
        break;
      }
      start_read(req, t, on_read_one);
      break;
    case kZeroCopy: {
      static const char kPage[] = "<h1>blocked</h1>";
      FUZZ_CHECK(icap_request_set_http_status(req, "HTTP/1.1 403 Forbidden") == 0,
                 "set_http_status");
      FUZZ_CHECK(icap_request_add_http_header(req, "Content-Length", "16") == 0, "add header");
      FUZZ_CHECK(
          icap_request_set_icap_header(req, "X-Infection-Found", "Type=0; Resolution=2") == 0,
          "set_icap_header");
      FUZZ_CHECK(icap_request_set_icap_header(req, "Encapsulated", "x") == ICAP_EINVAL,
                 "Encapsulated taken");
      FUZZ_CHECK(icap_request_send_headers(req, 1) == 0, "send_headers");
      int rc = icap_request_send_chunk_zc(req, kPage, sizeof kPage - 1, zc_release, t->run);
      FUZZ_CHECK(rc == 0, std::string("send_chunk_zc: ") + err(rc));
      t->run->zc_sent++;
      FUZZ_CHECK(icap_request_end(req) == 0, "end");
      t->answered = true;
      break;
    }
    case kNever:
      break;
    case kOptionsLike:
      FUZZ_CHECK(icap_request_set_icap_header(req, "X-Note", "none") == 0, "set_icap_header");
      FUZZ_CHECK(icap_request_send_headers(req, 0) == 0, "send_headers(0)");
      t->answered = true;
      break;
    default:
      FUZZ_CHECK(false, "act_now with " + std::to_string(act));
  }
}

int handler(icap_request *req, void *user) {
  auto *run = static_cast<Run *>(user);
  auto t = std::make_unique<Txn>();
  Txn *tp = t.get();
  tp->run = run;
  tp->idx = static_cast<int>(run->txns.size());
  run->txns.push_back(std::move(t));
  uint8_t d = run->decisions[tp->idx % 8];
  tp->act = d & 15;
  tp->variant = d >> 4;
  tp->method = icap_request_method(req);
  tp->preview = icap_request_preview(req);
  tp->allow204 = icap_request_allows(req, 204);
  tp->allow206 = icap_request_allows(req, 206);
  tp->has_body = icap_request_has_body(req);
  if (tp->preview >= 0) run->preview_requests++;
  FUZZ_CHECK(icap_request_on_done(req, on_done, tp) == 0, "on_done");

  // What the handler sees must be consistent.
  FUZZ_CHECK(tp->method == ICAP_METHOD_REQMOD || tp->method == ICAP_METHOD_RESPMOD ||
                 tp->method == ICAP_METHOD_OPTIONS,
             "method");
  FUZZ_CHECK(icap_request_response_code(req) == 0, "a response code before answering");
  FUZZ_CHECK(icap_request_ieof(req) == 0, "ieof before reading");
  FUZZ_CHECK(tp->has_body == (icap_request_encapsulated(req, ICAP_SECTION_REQ_BODY) >= 0 ||
                              icap_request_encapsulated(req, ICAP_SECTION_RES_BODY) >= 0 ||
                              icap_request_encapsulated(req, ICAP_SECTION_OPT_BODY) >= 0),
             "has_body disagrees with Encapsulated");
  FUZZ_CHECK(icap_request_in_preview(req) == (tp->preview >= 0), "in_preview at dispatch");
  if (tp->method == ICAP_METHOD_RESPMOD) {
    size_t len = 0;
    const char *raw = icap_request_raw_section(req, ICAP_SECTION_RES_HDR, &len);
    FUZZ_CHECK(raw && len >= 4, "RESPMOD without res-hdr");
    int st = icap_request_http_status(req);
    FUZZ_CHECK(st >= 0 && st <= 999, "HTTP status " + std::to_string(st));
    FUZZ_CHECK_KNOWN_BUG("http-head-start-line", st >= 100, "HTTP status " + std::to_string(st));
  } else if (tp->method == ICAP_METHOD_REQMOD) {
    FUZZ_CHECK(*icap_request_http_method(req) != '\0', "REQMOD without an HTTP method");
  }
  for (size_t i = 0; i < icap_request_header_count(req, ICAP_HEADERS_ICAP); i++) {
    const char *n = nullptr, *v = nullptr;
    FUZZ_CHECK(icap_request_header_at(req, ICAP_HEADERS_ICAP, i, &n, &v) == 0 && n && v,
               "header_at");
  }
  FUZZ_CHECK(icap_request_post(
                 req, [](icap_request *, int, void *) {}, nullptr) == ICAP_ENOTSUP,
             "post without a server loop");

  switch (tp->act) {
    case kDefer: {
      uint8_t later = tp->variant;
      if (later == kDefer || later == kReturnError || later == kThrow) later = kNoAdapt;
      run->later(req, [req, tp, later] { act_now(req, tp, later); });
      return 0;
    }
    case kReturnError:
      return ICAP_EIO;
    case kThrow:
      throw std::runtime_error("handler throws");
    default:
      act_now(req, tp, tp->act);
      return 0;
  }
}

int options_handler(icap_request *req, void *user) {
  auto *run = static_cast<Run *>(user);
  run->options_calls++;
  FUZZ_CHECK(icap_request_set_icap_header(req, "X-Include", "X-Client-IP") == 0, "options header");
  FUZZ_CHECK(icap_request_set_icap_header(req, "ISTag", "\"opt-tag\"") == 0, "ISTag in OPTIONS");
  if (run->decisions[0] & 0x80) {
    run->later(req, [req] {
      FUZZ_CHECK(active_code(icap_request_send_headers(req, 0)), "options later");
    });
    return 0;
  }
  FUZZ_CHECK(icap_request_send_headers(req, 0) == 0, "options send_headers");
  return 0;
}

Limits make_limits(unsigned profile) {
  Limits l;
  switch (profile) {
    case 1:  // small everything
      l.v[ICAP_LIMIT_HEADER_BYTES] = 512;
      l.v[ICAP_LIMIT_HEADER_COUNT] = 8;
      l.v[ICAP_LIMIT_HTTP_HEADER_BYTES] = 1024;
      l.v[ICAP_LIMIT_HTTP_HEADER_COUNT] = 8;
      l.v[ICAP_LIMIT_CHUNK_SIZE] = 256;
      l.v[ICAP_LIMIT_PREVIEW_BYTES] = 64;
      l.v[ICAP_LIMIT_BUFFER_BYTES] = 2048;
      break;
    case 2:  // a buffer smaller than a head may be (a legal configuration)
      l.v[ICAP_LIMIT_BUFFER_BYTES] = 64;
      l.v[ICAP_LIMIT_HEADER_BYTES] = 1024;
      l.v[ICAP_LIMIT_HTTP_HEADER_BYTES] = 1024;
      break;
    case 3:
      l.v[ICAP_LIMIT_BUFFER_BYTES] = 8192;
      l.v[ICAP_LIMIT_PREVIEW_BYTES] = 4096;
      break;
    default:
      break;
  }
  return l;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint8_t c[16] = {0};
  memcpy(c, data, size < 16 ? size : 16);
  std::string_view in(reinterpret_cast<const char *>(data) + (size < 16 ? size : 16),
                      size < 16 ? 0 : size - 16);

  const unsigned profile = c[0] & 3;
  const bool drain_at = c[0] & 4;
  bool hold = c[0] & 8;
  const unsigned timer_kind = (c[0] >> 4) & 3;
  const bool reset_at_end = c[0] & 0x80;
  const unsigned event_iter = c[3];

  Limits limits = make_limits(profile);
  Run run;
  run.decisions = c + 4;
  run.options_handler = c[0] & 0x40;
  ServiceTable services;
  {
    icap_service *svc = icaptest::add_service(
        services, "echo", "fuzz-1", {ICAP_METHOD_REQMOD, ICAP_METHOD_RESPMOD}, handler, &run);
    if (run.options_handler) {
      svc->handler[ICAP_METHOD_OPTIONS] = options_handler;
      svc->handler_user[ICAP_METHOD_OPTIONS] = &run;
    }
    icaptest::add_service(services, "reqonly", "fuzz-2", {ICAP_METHOD_REQMOD}, handler, &run);
  }

  static const size_t kMaxPiece[4] = {1, 16, 512, 65536};
  const size_t max_piece = kMaxPiece[c[2] & 3];
  uint32_t rng = c[1] * 2654435761u + c[2];
  auto piece = [&] {
    rng = rng * 1103515245u + 12345u;
    return 1 + (rng >> 8) % max_piece;
  };
  // Output a client that does not read may find queued: one buffer's worth,
  // what one read can add (one piece, the echo of at most a buffer of input,
  // one response head with its encapsulated headers), and our handlers'
  // small bodies.
  const uint64_t buf = limits[ICAP_LIMIT_BUFFER_BYTES];
  const uint64_t kOutputBound = 3 * buf + max_piece + limits[ICAP_LIMIT_HTTP_HEADER_BYTES] + 16384;

  size_t drain_offset = std::string::npos;  // wire offset when the drain began
  bool partial = false;
  std::vector<icapwire::Response> rs;
  bool dead_at_end = false;
  bool closed_by_server = false;
  {
    fuzz::Driver d(&services, &limits);
    Session &s = d.session();
    size_t pos = 0;
    bool timer_done = false;
    for (unsigned iter = 0; iter < 1000000; iter++) {
      bool progressed = d.feed_from(in, pos, piece()) > 0;
      d.drain(hold);
      // Known bug "output-unbounded": pipelined requests from a client that
      // never reads are answered into an unbounded output queue.
      if (hold)
        FUZZ_CHECK_KNOWN_BUG("output-unbounded", s.pending_output() <= kOutputBound,
                             "output queue " + std::to_string(s.pending_output()) + " over " +
                                 std::to_string(kOutputBound) + " for a client that does not read");
      progressed |= run.run_ticks();
      d.drain(hold);
      if (iter == event_iter && drain_at && !d.draining) {
        // As Worker::begin_drain() and Connection::drain(): an idle
        // connection is closed, a busy one answers with Connection: close.
        d.draining = true;
        drain_offset = d.wire.size() + s.out().bytes();
        if (s.wait() == Session::Wait::kIdle) {
          closed_by_server = true;
          break;
        }
      }
      if (iter == event_iter && timer_kind && !timer_done && !d.stopped()) {
        timer_done = true;
        Session::Wait w = s.wait();
        if (w != Session::Wait::kNone) s.timed_out(w);
        d.drain(hold);
      }
      if (d.stopped()) break;
      if (pos >= in.size() && run.ticks.empty()) break;
      if (!progressed) {
        if (hold) {
          hold = false;  // the client starts reading
          d.drain();
          continue;
        }
        // Nothing moves: the session takes no input although there is
        // more, no deferred work is due, everything was written.
        Session::Wait w = s.wait();
        bool never = false;
        for (auto &t : run.txns) never |= t->act == kNever && t->done_calls == 0;
        if (w == Session::Wait::kHandler && never) {
          s.timed_out(w);  // the handler timeout, as the server would
          d.drain();
          continue;
        }
        // Known bug "buffer-below-head": with ICAP_LIMIT_BUFFER_BYTES below
        // what a head may take, the session stops reading in the middle of
        // a head and waits for the read timeout.
        bool known = w == Session::Wait::kHead &&
                     buf < limits[ICAP_LIMIT_HEADER_BYTES] + limits[ICAP_LIMIT_HTTP_HEADER_BYTES];
        if (known && !fuzz::strict()) {
          d.force_feed(in, pos, piece());
          d.drain();
          continue;
        }
        FUZZ_CHECK(false, std::string("stall: the session takes no input (") +
                              std::to_string(in.size() - pos) + " bytes left), waits for " +
                              wait_name(w) + ", closing=" + std::to_string(s.closing()) +
                              ", limits profile " + std::to_string(profile));
      }
    }
    d.drain();
    if (!d.stopped() && !reset_at_end && !closed_by_server) {
      s.eof();
      d.drain();
    }
    for (int i = 0; i < 100 && run.run_ticks(); i++) d.drain();
    if (!reset_at_end && !closed_by_server && !s.dead() && s.wait() == Session::Wait::kHandler) {
      s.timed_out(Session::Wait::kHandler);
      d.drain();
    }
    dead_at_end = s.dead();
    rs = fuzz::check_wire(d, partial);
    // A response may be cut short only by a transaction that ended badly
    // (error, abort, timeout, reset: the close tells the client), or while
    // one is still under way. When every transaction ended well and the
    // connection was not dropped, the last response must be complete.
    bool all_ended_well = true;
    for (auto &t : run.txns) all_ended_well &= t->done_calls == 1 && t->done_status == 0;
    if (!dead_at_end && !reset_at_end && all_ended_well) {
      FUZZ_CHECK(!partial,
                 "a truncated response although every transaction ended well: " +
                     fuzz::show(d.wire.substr(d.wire.size() > 300 ? d.wire.size() - 300 : 0)));
    }
    // Answers that begin after the drain started close the connection.
    if (drain_offset != std::string::npos) {
      size_t off = 0;
      for (const auto &r : rs) {
        if (off >= drain_offset && r.code != 100)
          FUZZ_CHECK(r.conn_close(), "a response during the drain without Connection: close");
        off += r.wire_bytes;
      }
    }
  }  // ~Session ends whatever is left, like a closed connection
  // Deferred work that never ran gives its request reference back.
  for (Tick &t : run.ticks) icap_request_unref(t.req);
  run.ticks.clear();

  int continues = 0;
  for (const auto &r : rs) {
    if (r.code == 100) continues++;
    if (r.code == 400 || r.code == 408 || r.code == 501 || r.code == 505)
      FUZZ_CHECK(r.conn_close(), std::to_string(r.code) + " without Connection: close");
    if (r.code == 206)
      FUZZ_CHECK(r.last_chunk_ext.find("use-original-body=") != std::string::npos,
                 "206 without use-original-body");
  }
  FUZZ_CHECK(continues <= run.preview_requests, std::to_string(continues) + " 100 Continue for " +
                                                    std::to_string(run.preview_requests) +
                                                    " requests with a preview");
  for (auto &t : run.txns) {
    FUZZ_CHECK(t->done_calls == 1, "transaction " + std::to_string(t->idx) + " (act " +
                                       std::to_string(t->act) + ") got " +
                                       std::to_string(t->done_calls) + " done callbacks");
  }
  FUZZ_CHECK(run.zc_released == run.zc_sent, "zero-copy data released " +
                                                 std::to_string(run.zc_released) + " times for " +
                                                 std::to_string(run.zc_sent) + " sends");
  return 0;
}
