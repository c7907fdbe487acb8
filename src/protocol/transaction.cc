// SPDX-License-Identifier: MIT
// The transaction's state machine: body reception (preview, 100 Continue,
// read-once, push, discard) and the response the handler builds.
#include "protocol/transaction.hpp"

#include "protocol/session.hpp"

using icap::detail::BodyState;
using icap::detail::HeaderList;
using icap::detail::HttpHead;
using icap::detail::HttpKind;
using icap::detail::PreviewState;
using icap::detail::ResponseState;
using icap::detail::ResponseWriter;
using icap::detail::StatusFields;

icap_request::icap_request(Session *s, icap::detail::TransactionLoop *loop)
    : session_(s), loop_(loop) {}

size_t icap_request::write_queue_size() const {
  return session_ ? session_->writer().unwritten() : 0;
}

// ------------------------------------------------------------------ body ---

void icap_request::received() {
  body_ = has_body() ? BodyState::kNone : BodyState::kDone;
  preview_ = req_.preview >= 0 ? PreviewState::kInPreview : PreviewState::kNone;
}

bool icap_request::consuming_body() const {
  if (awaiting_continue()) return false;
  switch (body_) {
    case BodyState::kReadOnce:
    case BodyState::kPush:
    case BodyState::kEcho:
    case BodyState::kDiscard:
      return true;
    default:
      return false;
  }
}

bool icap_request::count_preview(size_t n) {
  if (preview_ != PreviewState::kInPreview) return true;
  preview_bytes_ += n;
  return preview_bytes_ <= static_cast<uint64_t>(req_.preview);
}

void icap_request::on_body_data(const char *data, size_t len) {
  switch (body_) {
    case BodyState::kDiscard:
      return;
    case BodyState::kEcho:
      session_->writer().chunk(std::string_view(data, len));
      return;
    default:
      break;
  }
  if (preview_ == PreviewState::kInPreview)
    preview_copy_.append(data, len);
  else
    delivered_past_preview_ = true;
  deliver(0, data, len);
}

void icap_request::on_body_end(bool ieof) {
  unsigned flags = ICAP_BODY_END;
  bool done = true;
  if (preview_ == PreviewState::kInPreview) {
    if (ieof) {
      preview_ = PreviewState::kIeof;
      flags |= ICAP_BODY_IEOF;
    } else {
      preview_ = PreviewState::kAwaitingContinue;
      // An answer that has started ends the body here: no 100 Continue.
      if (!answer_started()) {
        done = false;
        flags |= ICAP_BODY_PREVIEW_END;
      }
    }
  }
  BodyState was = body_;
  if (done) body_ = BodyState::kDone;
  if (was == BodyState::kEcho) {
    if (done)
      echo_end();
    else
      send_continue();
    return;
  }
  if (was == BodyState::kDiscard) return;
  deliver(static_cast<int>(flags), nullptr, 0);
}

void icap_request::deliver(int status, const char *data, size_t len) {
  icap_body_cb cb = body_cb_;
  void *user = body_user_;
  if (!cb) return;
  bool last = status < 0 || body_ == BodyState::kDone;
  if (body_ == BodyState::kReadOnce || last) {
    body_cb_ = nullptr;
    body_user_ = nullptr;
    if (body_ != BodyState::kDone) body_ = BodyState::kNone;
  }
  Session *s = session_;
  ref();  // the callback may end the transaction before it returns
  try {
    cb(this, status, data, len, user);
  } catch (...) {
    if (!ended() && s) s->fail(this, 500, "body callback threw");
  }
  unref();
}

// Ends a pending read with `status` (its callback is then called, as every
// successful read promises).
void icap_request::cancel_read(int status) {
  icap_body_cb cb = body_cb_;
  void *user = body_user_;
  body_cb_ = nullptr;
  body_user_ = nullptr;
  if (body_ != BodyState::kDone) body_ = BodyState::kNone;
  if (cb) cb(this, status, nullptr, 0, user);
}

// Checks that a read may start; sends 100 Continue when the preview is
// over and the handler wants the rest.
int icap_request::prepare_read() {
  if (!active()) return ICAP_ESTATE;
  if (!has_body() || body_done() || response_done()) return ICAP_ESTATE;
  if (body_ != BodyState::kNone) return ICAP_EBUSY;
  if (awaiting_continue()) {
    if (answer_started()) return ICAP_ESTATE;
    send_continue();
  }
  return 0;
}

void icap_request::send_continue() {
  session_->writer().continue_100();
  preview_ = PreviewState::kContinued;
  session_->output_ready();
}

// Starts a read in `mode` (kReadOnce or kPush) and delivers what is there.
int icap_request::start_read(BodyState mode, icap_body_cb cb, void *user) {
  if (int rc = prepare_read()) return rc;
  body_ = mode;
  body_cb_ = cb;
  body_user_ = user;
  session_->process();
  return 0;
}

int icap_request::read_chunk(icap_body_cb cb, void *user) {
  return start_read(BodyState::kReadOnce, cb, user);
}

int icap_request::set_body_cb(icap_body_cb cb, void *user) {
  if (!cb) {
    if (body_ == BodyState::kPush || body_ == BodyState::kPushPaused) {
      body_ = BodyState::kNone;
      body_cb_ = nullptr;
      body_user_ = nullptr;
    }
    return 0;
  }
  return start_read(BodyState::kPush, cb, user);
}

int icap_request::pause() {
  if (!active()) return ICAP_ESTATE;
  if (body_ == BodyState::kPush) body_ = BodyState::kPushPaused;
  return 0;
}

int icap_request::resume() {
  if (!active()) return ICAP_ESTATE;
  if (body_ == BodyState::kPushPaused) body_ = BodyState::kPush;
  if (body_ == BodyState::kPush && awaiting_continue() && !answer_started()) send_continue();
  session_->process();
  return 0;
}

int icap_request::cont() {
  if (!active() || !awaiting_continue() || answer_started()) return ICAP_ESTATE;
  send_continue();
  session_->process();
  return 0;
}

int icap_request::on_done(icap_done_cb cb, void *user) {
  if (ended()) return ICAP_ESTATE;
  done_cb_ = cb;
  done_user_ = user;
  return 0;
}

void icap_request::finish(int status) {
  bool was_dispatched = stage_ == Stage::kDispatched;
  if (status < 0 && was_dispatched && reader_pending()) deliver(status, nullptr, 0);
  session_ = nullptr;
  if (stage_ == Stage::kEnded) return;
  stage_ = Stage::kEnded;
  if (was_dispatched && done_cb_) {
    try {
      done_cb_(this, status, done_user_);
    } catch (...) {
    }
  }
}

// -------------------------------------------------------------- response ---

void icap_request::write_head(int status, const HeaderList &fields, HttpKind kind,
                              std::string_view http_head, bool has_body) {
  Session *s = session_;
  if (s->host()->session_draining()) close_after_ = true;
  std::string istag;
  if (!icap_fields_.has("ISTag"))
    istag = req_.service ? req_.service->get_istag() : std::string("libicap-" ICAP_VERSION_STRING);
  StatusFields sf;
  sf.istag = istag;
  sf.now = s->host()->session_time();
  sf.server = s->host()->session_server_header();
  sf.close = close_after_ || req_.client_close || s->closing();
  status_ = status;
  s->writer().head(status, sf, fields, kind, http_head, has_body);
}

// The response is complete: what is left of the body is discarded, and a
// pending read ends now.
void icap_request::response_complete() {
  Session *s = session_;
  resp_ = ResponseState::kDone;
  if (close_after_) s->close_after_response();
  if (reader_pending()) deliver(end_status_ ? end_status_ : ICAP_ECANCELED, nullptr, 0);
  if (body_ != BodyState::kDone) body_ = BodyState::kDiscard;
  s->process();
}

void icap_request::send_simple(int status, bool close) {
  static const HeaderList kNoFields;
  if (close) {
    close_after_ = true;
    session_->close_after_response();
  }
  write_head(status, kNoFields, HttpKind::kRequest, {}, false);
  response_complete();
}

int icap_request::no_adaptation() {
  if (!active() || answer_started()) return ICAP_ESTATE;
  if (req_.allow_204 || in_preview()) {
    if (reader_pending()) cancel_read(ICAP_ECANCELED);
    if (active()) send_simple(204, false);
    return 0;
  }
  if (delivered_past_preview_) return ICAP_ECONSUMED;
  if (reader_pending()) cancel_read(ICAP_ECANCELED);
  if (active()) start_echo();
  return 0;
}

int icap_request::send_error(int code) {
  if (!active() || answer_started()) return ICAP_ESTATE;
  if (code == 204) return no_adaptation();
  if (reader_pending()) cancel_read(ICAP_ECANCELED);
  if (active()) send_simple(code, false);
  return 0;
}

int icap_request::set_status(int code) {
  if (!active() || answer_started()) return ICAP_ESTATE;
  status_ = code;
  return 0;
}

int icap_request::set_icap_header(const char *name, const char *value) {
  if (!active() || answer_started()) return ICAP_ESTATE;
  using icap::detail::iequals;
  // The writer owns these; ISTag only an OPTIONS answer may set.
  if (iequals(name, "Date") || iequals(name, "Server") || iequals(name, "Connection") ||
      iequals(name, "Encapsulated") ||
      (iequals(name, "ISTag") && req_.head.method != ICAP_METHOD_OPTIONS))
    return ICAP_EINVAL;
  icap_fields_.add(name, value);
  return 0;
}

int icap_request::set_http_status(const char *line) {
  if (!active() || answer_started()) return ICAP_ESTATE;
  http_line_ = line;
  http_start_ = HttpStart::kStatusLine;
  return 0;
}

int icap_request::set_http_request(const char *line) {
  if (req_.head.method != ICAP_METHOD_REQMOD) return ICAP_EINVAL;
  if (!active() || answer_started()) return ICAP_ESTATE;
  http_line_ = line;
  http_start_ = HttpStart::kRequestLine;
  return 0;
}

int icap_request::add_http_header(const char *name, const char *value) {
  if (!active() || answer_started()) return ICAP_ESTATE;
  http_fields_.add(name, value);
  return 0;
}

int icap_request::copy_http_head(const char *const *skip) {
  if (!active() || answer_started()) return ICAP_ESTATE;
  bool resp = req_.head.method == ICAP_METHOD_RESPMOD;
  const HttpHead &h = resp ? req_.http_res : req_.http_req;
  if (!h.present) return ICAP_ENOENT;
  if (resp) {
    http_line_ = h.version + " " + std::to_string(h.status) + " " + h.reason;
    http_start_ = HttpStart::kStatusLine;
  } else {
    http_line_ = h.method + " " + h.uri + " " + h.version;
    http_start_ = HttpStart::kRequestLine;
  }
  for (const auto &f : h.headers.items()) {
    bool skipped = false;
    for (const char *const *s = skip; s && *s && !skipped; s++)
      skipped = icap::detail::iequals(f.name, *s);
    if (!skipped) http_fields_.add(f.name, f.value);
  }
  return 0;
}

int icap_request::send_headers(bool has_body) {
  if (!active() || answer_started()) return ICAP_ESTATE;
  if (req_.head.method == ICAP_METHOD_OPTIONS) {
    send_options();
    return 0;
  }
  int st = status_ ? status_ : 200;
  if (st == 204) return no_adaptation();
  if (st == 206 && !req_.allow_206) return ICAP_EINVAL;
  bool response = http_start_ == HttpStart::kStatusLine ||
                  (http_start_ == HttpStart::kNone && req_.head.method == ICAP_METHOD_RESPMOD);
  std::string http;
  if (http_start_ != HttpStart::kNone)
    http = ResponseWriter::http_head_bytes(http_line_, http_fields_);
  write_head(st, icap_fields_, response ? HttpKind::kResponse : HttpKind::kRequest, http, has_body);
  if (has_body) {
    resp_ = ResponseState::kHeadSent;
    session_->process();
  } else {
    response_complete();
  }
  return 0;
}

int icap_request::send_chunk(const char *data, size_t len) {
  if (!active() || resp_ != ResponseState::kHeadSent) return ICAP_ESTATE;
  if (len == 0) return end();
  session_->writer().chunk(std::string_view(data, len));
  session_->output_ready();
  return 0;
}

int icap_request::send_chunk_zc(const char *data, size_t len, icap_release_cb release, void *user) {
  if (!active() || resp_ != ResponseState::kHeadSent) return ICAP_ESTATE;
  session_->writer().chunk_zc(data, len, release, user);
  session_->output_ready();
  return 0;
}

int icap_request::end() {
  if (!active() || resp_ != ResponseState::kHeadSent) return ICAP_ESTATE;
  session_->writer().last_chunk();
  response_complete();
  return 0;
}

int icap_request::end_use_original(uint64_t offset) {
  if (!active() || resp_ != ResponseState::kHeadSent) return ICAP_ESTATE;
  if (status_ != 206 || !req_.allow_206) return ICAP_EINVAL;
  session_->writer().last_chunk_use_original(offset);
  response_complete();
  return 0;
}

int icap_request::abort(int err) {
  if (!active()) return ICAP_ESTATE;
  session_->fail(this, 500, std::string("aborted: ") + icap_strerror(err));
  return 0;
}

int icap_request::post(icap_post_cb cb, void *user) {
  return loop_ ? loop_->post(this, cb, user) : ICAP_ENOTSUP;
}

int icap_request::offload(icap_work_cb work, icap_post_cb done, void *user) {
  return loop_ ? loop_->offload(this, work, done, user) : ICAP_ENOTSUP;
}
