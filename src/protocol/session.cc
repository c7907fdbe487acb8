// SPDX-License-Identifier: MIT
#include "protocol/session.hpp"

namespace icap::detail {

namespace {
constexpr std::string_view kCRLF2 = "\r\n\r\n";

bool parse_decimal(std::string_view s, uint64_t &out) {
  if (s.empty() || s.size() > 18) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  out = v;
  return true;
}

}  // namespace

Session::Session(SessionHost *host, const ServiceTable *services, const Limits *limits)
    : host_(host),
      services_(services),
      limits_(limits),
      chunks_((*limits)[ICAP_LIMIT_CHUNK_SIZE]) {}

Session::~Session() { shutdown(ICAP_ECONNRESET); }

void Session::feed(const char *p, size_t n) {
  if (state_ == State::kStopped || dead_) return;
  if (in_pos_ < in_.size() || in_process_) {
    in_.append(p, n);
    process();
    return;
  }
  // Nothing is buffered: parse straight from the caller's buffer, and keep
  // only what is left unconsumed. Body bytes that go to a consumer are then
  // never copied into the session.
  consumed_before_ += in_pos_;
  in_.clear();
  in_pos_ = 0;
  ext_ = p;
  ext_len_ = n;
  process();
  if (in_pos_ < ext_len_ && !dead_) in_.assign(p + in_pos_, ext_len_ - in_pos_);
  consumed_before_ += in_pos_;
  in_pos_ = 0;
  ext_ = nullptr;
  ext_len_ = 0;
}

void Session::eof() {
  peer_eof_ = true;
  process();
  if (cur_ && !cur_->body_done()) {
    // The client is gone before its request was complete. Answers queued
    // before are still written, then the connection closes.
    closing_ = true;
    finish_transaction(ICAP_ECONNRESET);
    state_ = State::kStopped;
  } else if (!cur_) {
    closing_ = true;
    state_ = State::kStopped;
  }
  // Otherwise the current answer (and any complete pipelined request after
  // it) is still answered; step_head() stops once the input is used up.
  host_->session_output();
}

bool Session::wants_input() const {
  if (closing_ || dead_ || peer_eof_ || state_ == State::kStopped) return false;
  // A client that sends but does not read our answers is not read either.
  if (writer_.unwritten() > (*limits_)[ICAP_LIMIT_BUFFER_BYTES]) return false;
  uint64_t room = (*limits_)[ICAP_LIMIT_BUFFER_BYTES];
  // A request head may need more than the buffer limit: its own limits apply.
  if (state_ == State::kHead || state_ == State::kEncapsulated)
    room += (*limits_)[ICAP_LIMIT_HEADER_BYTES] + (*limits_)[ICAP_LIMIT_HTTP_HEADER_BYTES];
  return isize() - in_pos_ < room;
}

void Session::process() {
  if (in_process_) {
    again_ = true;
    return;
  }
  in_process_ = true;
  do {
    again_ = false;
    while (!dead_) {
      bool progressed = false;
      switch (state_) {
        case State::kHead:
          progressed = step_head();
          break;
        case State::kEncapsulated:
          progressed = step_encapsulated();
          break;
        case State::kBody:
          progressed = step_body();
          break;
        case State::kWaitResponse:
          if (cur_ && cur_->complete()) {
            finish_transaction(0);
            progressed = true;
          }
          break;
        case State::kStopped:
          break;
      }
      if (!progressed) break;
    }
  } while (again_ && !dead_);
  if (peer_eof_ && !dead_) {
    // The client closed its side: a request that still needs its bytes
    // (a partial head, or a body being read) can never complete.
    // Answers already queued are still written (the client may only have
    // half-closed), then the connection closes.
    Wait w = wait();
    if (w == Wait::kHead || w == Wait::kBody) {
      closing_ = true;
      finish_transaction(ICAP_ECONNRESET);
      state_ = State::kStopped;
    }
  }
  in_process_ = false;
  compact_input();
  host_->session_output();
}

void Session::compact_input() {
  if (ext_) return;  // feed() keeps the remainder itself
  if (in_pos_ == in_.size()) {
    consumed_before_ += in_pos_;
    in_.clear();
    in_pos_ = 0;
  } else if (in_pos_ > 65536 && in_pos_ > in_.size() / 2) {
    consumed_before_ += in_pos_;
    in_.erase(0, in_pos_);
    in_pos_ = 0;
  }
}

bool Session::step_head() {
  if (closing_ || (peer_eof_ && in_pos_ == isize())) {
    closing_ = true;
    state_ = State::kStopped;
    return false;
  }
  // Answers the client has not read yet hold back the next request, so a
  // pipelining client that never reads cannot make output grow unbounded.
  if (writer_.unwritten() > (*limits_)[ICAP_LIMIT_BUFFER_BYTES]) return false;
  // Empty lines between messages are skipped (RFC 9112 section 2.2).
  const char *in = ibase();
  while (isize() - in_pos_ >= 2 && in[in_pos_] == '\r' && in[in_pos_ + 1] == '\n') {
    in_pos_ += 2;
    head_scan_ = 0;
  }
  size_t avail = isize() - in_pos_;
  if (avail == 0) return false;
  uint64_t limit = (*limits_)[ICAP_LIMIT_HEADER_BYTES];
  uint64_t head_at = input_offset(in_pos_);
  std::string_view view(in + in_pos_, avail);
  size_t from = head_scan_ > 3 ? head_scan_ - 3 : 0;
  size_t end = view.find(kCRLF2, from);
  if (end == std::string_view::npos) {
    head_scan_ = avail;
    if (peer_eof_) {
      dead_ = true;  // the client closed in the middle of a request head
      return false;
    }
    if (avail > limit) {
      cur_ = new icap_request(this, host_->session_loop());
      protocol_error(400, "ICAP header block over its limit", head_at);
      return true;
    }
    return false;
  }
  size_t len = end + kCRLF2.size();
  head_scan_ = 0;
  cur_ = new icap_request(this, host_->session_loop());
  RequestInfo &r = cur_->parsing();
  r.client_ip = peer_ip_;
  r.client_port = peer_port_;
  if (len > limit) {
    protocol_error(400, "ICAP header block over its limit", head_at);
    return true;
  }
  HeadResult hr = parse_request_head(view.substr(0, len), *limits_, r.head);
  in_pos_ += len;
  if (hr.status) {
    protocol_error(hr.status, hr.reason, head_at);
    return true;
  }
  const HeaderList &h = r.head.headers;
  for_each_list_item(h, "Connection", [&](std::string_view t) {
    if (iequals(t, "close")) r.client_close = true;
  });

  size_t nenc = h.count_of("Encapsulated");
  if (nenc > 1) {
    protocol_error(400, "more than one Encapsulated header", head_at);
    return true;
  }
  if (nenc == 0) {
    // Squid sends OPTIONS without Encapsulated (the errata allow it for
    // messages without a body); every other request needs one.
    if (r.head.method != ICAP_METHOD_OPTIONS) {
      protocol_error(400, "missing Encapsulated header", head_at);
      return true;
    }
    r.enc.offset[ICAP_SECTION_NULL_BODY] = 0;
    r.enc.order[0] = ICAP_SECTION_NULL_BODY;
    r.enc.count = 1;
  } else {
    std::string why;
    if (!parse_encapsulated(*h.get("Encapsulated"), r.head.method, r.enc, why)) {
      protocol_error(400, why, head_at);
      return true;
    }
  }
  if (h.count_of("Preview") > 1) {
    protocol_error(400, "more than one Preview header", head_at);
    return true;
  }
  if (const std::string *pv = h.get("Preview"); pv && r.head.method != ICAP_METHOD_OPTIONS) {
    uint64_t v;
    if (!parse_decimal(*pv, v)) {
      protocol_error(400, "bad Preview value", head_at);
      return true;
    }
    if (v > (*limits_)[ICAP_LIMIT_PREVIEW_BYTES]) {
      protocol_error(400, "Preview larger than the configured limit", head_at);
      return true;
    }
    r.preview = static_cast<int64_t>(v);
  }
  for_each_list_item(h, "Allow", [&](std::string_view t) {
    if (t == "204") r.allow_204 = true;
    if (t == "206") r.allow_206 = true;
  });
  state_ = State::kEncapsulated;
  return true;
}

bool Session::step_encapsulated() {
  RequestInfo &r = cur_->parsing();
  int64_t hb = r.enc.header_bytes();
  if (static_cast<uint64_t>(hb) > (*limits_)[ICAP_LIMIT_HTTP_HEADER_BYTES]) {
    protocol_error(400, "encapsulated HTTP headers over their limit", input_offset(in_pos_));
    return true;
  }
  if (isize() - in_pos_ < static_cast<size_t>(hb)) return false;
  const char *base = ibase() + in_pos_;
  for (int i = 0; i < r.enc.count; i++) {
    icap_section s = r.enc.order[i];
    if (s != ICAP_SECTION_REQ_HDR && s != ICAP_SECTION_RES_HDR) continue;
    int64_t off = r.enc.offset[s], end = r.enc.section_end(s);
    HttpHead &hh = s == ICAP_SECTION_REQ_HDR ? r.http_req : r.http_res;
    std::string why;
    if (!parse_http_head(std::string_view(base + off, static_cast<size_t>(end - off)),
                         s == ICAP_SECTION_REQ_HDR, (*limits_)[ICAP_LIMIT_HTTP_HEADER_COUNT], hh,
                         why)) {
      protocol_error(400, why, input_offset(in_pos_ + static_cast<size_t>(off)));
      return true;
    }
  }
  in_pos_ += static_cast<size_t>(hb);
  cur_->received();
  if (cur_->has_body()) {
    chunks_.reset();
    state_ = State::kBody;
  } else {
    state_ = State::kWaitResponse;
  }
  dispatch();
  return true;
}

void Session::dispatch() {
  icap_request *r = cur_;
  RequestInfo &info = r->parsing();
  auto it = services_->find(info.head.service);
  if (it == services_->end()) {
    log(ICAP_LOG_INFO, "no service '" + info.head.service + "': 404");
    r->send_simple(404, false);
    return;
  }
  icap_service *svc = it->second.get();
  info.service = svc;
  icap_method m = info.head.method;
  icap_handler_cb cb = svc->handler[m];
  if (!cb) {
    if (m == ICAP_METHOD_OPTIONS) {
      r->send_options();
    } else {
      log(ICAP_LOG_INFO,
          "service '" + svc->name + "' has no " + info.head.method_name + " handler: 405");
      r->send_simple(405, false);
    }
    return;
  }
  r->dispatched();
  r->ref();  // the handler may end the transaction before it returns
  int rc;
  try {
    rc = cb(r, svc->handler_user[m]);
  } catch (...) {
    rc = ICAP_EHANDLER;
  }
  if (rc < 0 && !r->ended()) fail(r, 500, std::string("handler failed: ") + icap_strerror(rc));
  r->unref();
}

bool Session::step_body() {
  icap_request *r = cur_;
  if (r->body_done()) {
    state_ = State::kWaitResponse;
    return true;
  }
  if (r->awaiting_continue()) {
    // The body goes on only after 100 Continue; a final answer ends it.
    if (r->answer_started()) {
      r->body_abandoned();
      return true;
    }
    return false;
  }
  BodyState m = r->body_state();
  if (m == BodyState::kNone || m == BodyState::kPushPaused) return false;
  // A client that reads our answer slowly slows down how fast its body is
  // consumed, whoever consumes it (the echo, or a handler that streams),
  // so output never queues without bound.
  if (m != BodyState::kDiscard && writer_.unwritten() > (*limits_)[ICAP_LIMIT_BUFFER_BYTES])
    return false;
  size_t avail = isize() - in_pos_;
  if (avail == 0) return false;

  size_t used = 0, dlen = 0;
  const char *data = nullptr;
  ChunkDecoder::Event ev = chunks_.next(ibase() + in_pos_, avail, &used, &data, &dlen);
  in_pos_ += used;
  switch (ev) {
    case ChunkDecoder::kNeedMore:
      return false;
    case ChunkDecoder::kError:
      protocol_error(400, "bad chunked body: " + chunks_.error(), input_offset(in_pos_));
      return true;
    case ChunkDecoder::kData:
      if (!r->count_preview(dlen)) {
        protocol_error(400, "preview longer than announced", input_offset(in_pos_));
        return true;
      }
      r->on_body_data(data, dlen);
      return true;
    case ChunkDecoder::kEnd: {
      bool ieof = chunks_.ieof();
      chunks_.reset();
      r->on_body_end(ieof);
      return true;
    }
  }
  return false;
}

void Session::protocol_error(int status, const std::string &why, uint64_t offset) {
  icap_request *r = cur_;
  bool answer = r && !r->answer_started();
  if (!error_.status) error_ = ProtocolError{status, why, offset, answer};
  // The log says what was done: once a response has started, the status
  // cannot be sent any more, and the connection is only closed.
  std::string where = why + " at byte " + std::to_string(offset);
  if (answer)
    log(status >= 500 ? ICAP_LOG_WARN : ICAP_LOG_INFO,
        "ICAP " + std::to_string(status) + " to " + peer_ip_ + ": " + where);
  else
    log(ICAP_LOG_INFO,
        "closing the connection to " + peer_ip_ + ": " + where + ", after the response started");
  if (r) r->set_end_status(ICAP_EPROTO);
  // Answers already queued (an earlier pipelined one, a 204 to a preview)
  // are still written; then the connection closes.
  if (answer) r->send_simple(status, true);
  closing_ = true;
  finish_transaction(ICAP_EPROTO);
  state_ = State::kStopped;
}

void Session::fail(icap_request *r, int status, const std::string &why) {
  log(ICAP_LOG_ERROR, "transaction failed (" + std::to_string(status) + "): " + why);
  r->set_end_status(ICAP_EHANDLER);
  // What was already queued (a complete answer, or part of a body) is still
  // written; the close after it tells the client the answer is cut short.
  if (!r->answer_started()) r->send_simple(status, true);
  closing_ = true;
  if (r == cur_) finish_transaction(ICAP_EHANDLER);
  host_->session_output();
}

void Session::finish_transaction(int status) {
  icap_request *r = cur_;
  if (!r) return;
  cur_ = nullptr;
  // An answer the library sent on its own (timeout, failure) completes the
  // transaction at once; the done callback still learns why.
  if (status == 0 && r->end_status()) status = r->end_status();
  if (r->closes_connection()) closing_ = true;
  state_ = closing_ ? State::kStopped : State::kHead;
  r->finish(status);
  r->unref();
}

void Session::shutdown(int status) {
  if (cur_) {
    icap_request *r = cur_;
    // A response that was fully queued still counts as a finished one.
    finish_transaction(r->complete() ? 0 : status);
  }
  state_ = State::kStopped;
  dead_ = true;
  writer_.discard();
}

void Session::written(size_t n) {
  bool was_blocked = writer_.unwritten() > (*limits_)[ICAP_LIMIT_BUFFER_BYTES];
  writer_.written(n);
  if (was_blocked && writer_.unwritten() <= (*limits_)[ICAP_LIMIT_BUFFER_BYTES]) process();
}

Session::Wait Session::wait() const {
  if (dead_) return Wait::kNone;
  if (!cur_) {
    if (writer_.unwritten()) return Wait::kOutput;
    if (state_ == State::kStopped) return Wait::kNone;
    return in_pos_ < isize() ? Wait::kHead : Wait::kIdle;
  }
  if (state_ == State::kHead || state_ == State::kEncapsulated) return Wait::kHead;
  const icap_request *r = cur_;
  if (writer_.unwritten() > (*limits_)[ICAP_LIMIT_BUFFER_BYTES]) return Wait::kOutput;
  if (state_ == State::kBody && !r->body_done() && r->consuming_body()) return Wait::kBody;
  if (!r->response_done()) return Wait::kHandler;
  return writer_.unwritten() ? Wait::kOutput : Wait::kNone;
}

void Session::timed_out(Wait w) {
  icap_request *r = cur_;
  switch (w) {
    case Wait::kNone:
    case Wait::kIdle:
      dead_ = true;
      break;
    case Wait::kHead:
    case Wait::kBody:
    case Wait::kHandler: {
      int status = w == Wait::kHandler ? 500 : 408;
      log(w == Wait::kHandler ? ICAP_LOG_ERROR : ICAP_LOG_INFO,
          std::string(w == Wait::kHandler ? "handler timed out" : "client too slow") + " (" +
              peer_ip_ + "): " + std::to_string(status));
      if (!r && in_pos_ < isize()) {
        cur_ = r = new icap_request(this, host_->session_loop());
      }
      if (r) r->set_end_status(ICAP_ETIMEDOUT);
      if (r && !r->answer_started()) r->send_simple(status, true);
      closing_ = true;
      break;
    }
    case Wait::kOutput:
      log(ICAP_LOG_INFO, "client " + peer_ip_ + " stopped reading: closing");
      dead_ = true;
      break;
  }
  finish_transaction(ICAP_ETIMEDOUT);
  state_ = State::kStopped;
  host_->session_output();
}

}  // namespace icap::detail
