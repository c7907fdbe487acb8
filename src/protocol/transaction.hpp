// SPDX-License-Identifier: MIT
// One ICAP transaction: the request as the client sent it, and the state of
// its preview, body and response. This class is the C API's icap_request.
// Its state is private, has one owner, and changes only through the methods
// below: src/api checks arguments and calls them, the session calls the
// ones that feed it the body and end it.
#ifndef ICAP_PROTOCOL_TRANSACTION_HPP
#define ICAP_PROTOCOL_TRANSACTION_HPP

#include <cstdint>
#include <string>
#include <string_view>

#include "fields/header_list.hpp"
#include "http/http_head.hpp"
#include "icap/icap.h"
#include "protocol/encapsulated.hpp"
#include "protocol/request_head.hpp"
#include "protocol/response_writer.hpp"
#include "protocol/service.hpp"
#include "protocol/transaction_loop.hpp"

namespace icap::detail {

class Session;

// Where the preview stands (RFC 3507 section 4.5).
enum class PreviewState {
  kNone,              // the client sent no Preview header
  kInPreview,         // the preview's chunks are arriving
  kAwaitingContinue,  // the preview ended without ieof: the rest needs 100 Continue
  kContinued,         // 100 Continue was sent: the rest of the body follows
  kIeof,              // the preview ended with ieof: it was the whole body
};

// Who takes the body bytes that arrive.
enum class BodyState {
  kNone,        // nobody yet: the bytes wait in the input
  kReadOnce,    // one icap_request_read_chunk() is pending
  kPush,        // icap_request_set_body_cb() takes every chunk
  kPushPaused,  // the same, paused by icap_request_pause()
  kEcho,        // the engine streams the body back unchanged
  kDiscard,     // the response is complete: the rest is read and dropped
  kDone,        // the body has ended, or there is none
};

// How far the response has been written.
enum class ResponseState { kNone, kHeadSent, kDone };

// What the client sent. The session fills it in while it parses the
// request; it is read-only from the moment the transaction is dispatched.
struct RequestInfo {
  RequestHead head;
  Encapsulated enc;
  HttpHead http_req, http_res;
  icap_service *service = nullptr;  // null until the service is found
  int64_t preview = -1;             // the announced preview size, -1 for none
  bool allow_204 = false, allow_206 = false;
  bool client_close = false;  // Connection: close
  std::string client_ip;
  int client_port = 0;
};

}  // namespace icap::detail

struct icap_request {
  using Session = icap::detail::Session;
  using BodyState = icap::detail::BodyState;
  using PreviewState = icap::detail::PreviewState;
  using ResponseState = icap::detail::ResponseState;

  icap_request(Session *s, icap::detail::TransactionLoop *loop);
  icap_request(const icap_request &) = delete;
  icap_request &operator=(const icap_request &) = delete;

  // ---- reading the request --------------------------------------------
  const icap::detail::RequestInfo &request() const { return req_; }
  // The session's access while it parses (before received()).
  icap::detail::RequestInfo &parsing() { return req_; }
  unsigned worker() const { return loop_ ? loop_->loop_index() : 0; }
  bool has_body() const { return req_.enc.has_chunked_body(); }
  bool allows(int code) const {
    return (code == 204 && req_.allow_204) || (code == 206 && req_.allow_206);
  }
  // From the Preview header until 100 Continue (also after an ieof).
  bool in_preview() const {
    return preview_ != PreviewState::kNone && preview_ != PreviewState::kContinued;
  }
  bool ieof() const { return preview_ == PreviewState::kIeof; }
  // The status chosen with set_status() or sent; 0 for none yet.
  int response_code() const { return status_; }
  bool answer_started() const { return resp_ != ResponseState::kNone; }
  bool response_done() const { return resp_ == ResponseState::kDone; }
  bool body_done() const { return body_ == BodyState::kDone; }
  bool complete() const { return response_done() && body_done(); }
  // The done callback ran, or the connection is gone.
  bool ended() const { return stage_ == Stage::kEnded; }
  size_t write_queue_size() const;

  // ---- the handler's calls (each returns 0 or a negative ICAP code) ----
  void set_data(void *data) { data_ = data; }
  void *data() const { return data_; }
  int on_done(icap_done_cb cb, void *user);
  int read_chunk(icap_body_cb cb, void *user);
  int set_body_cb(icap_body_cb cb, void *user);
  int pause();
  int resume();
  int cont();
  int send_error(int code);
  int no_adaptation();
  int set_status(int code);
  int set_icap_header(const char *name, const char *value);
  int set_http_status(const char *line);
  int set_http_request(const char *line);
  int add_http_header(const char *name, const char *value);
  int copy_http_head(const char *const *skip);
  int send_headers(bool has_body);
  int send_chunk(const char *data, size_t len);
  int send_chunk_zc(const char *data, size_t len, icap_release_cb release, void *user);
  int end();
  int end_use_original(uint64_t offset);
  int abort(int err);
  int post(icap_post_cb cb, void *user);
  int offload(icap_work_cb work, icap_post_cb done, void *user);
  void ref() { refs_++; }
  // Releases a reference; frees the transaction at zero.
  void unref() {
    if (--refs_ == 0) delete this;
  }

  // ---- the session's calls --------------------------------------------
  // The request is parsed: sets the initial preview and body states.
  void received();
  // The handler is about to be called.
  void dispatched() { stage_ = Stage::kDispatched; }
  // True while the body must wait for 100 Continue.
  bool awaiting_continue() const { return preview_ == PreviewState::kAwaitingContinue; }
  BodyState body_state() const { return body_; }
  // True while someone takes body bytes as they come (for the read timer).
  bool consuming_body() const;
  // Counts preview bytes; false when the preview is longer than announced.
  bool count_preview(size_t n);
  // Body data, and the last chunk (with or without ieof).
  void on_body_data(const char *data, size_t len);
  void on_body_end(bool ieof);
  // The rest of the body will never be read (the answer ended the preview).
  void body_abandoned() { body_ = BodyState::kDone; }
  // Why the library ended the transaction early; the first reason wins.
  void set_end_status(int status) {
    if (!end_status_) end_status_ = status;
  }
  int end_status() const { return end_status_; }
  // True when the connection closes after this response.
  bool closes_connection() const { return close_after_ || req_.client_close; }
  // Answers with a bodiless status (errors, 204); `close` closes afterwards.
  void send_simple(int status, bool close);
  // The generated OPTIONS answer (options_response.cc).
  void send_options();
  // The transaction is over: a pending read ends with `status` (< 0), the
  // done callback runs. The session calls nothing on it afterwards.
  void finish(int status);

  // The connection's session while the transaction lives, else null (the
  // server layer reads its host, e.g. the TLS transport of the connection).
  Session *session() const { return session_; }

 private:
  enum class Stage { kReceiving, kDispatched, kEnded };
  enum class HttpStart { kNone, kStatusLine, kRequestLine };

  ~icap_request() = default;
  bool active() const { return session_ && stage_ != Stage::kEnded; }
  bool reader_pending() const { return body_cb_ != nullptr; }
  int prepare_read();
  int start_read(BodyState mode, icap_body_cb cb, void *user);
  void send_continue();
  void cancel_read(int status);
  void deliver(int status, const char *data, size_t len);
  void write_head(int status, const icap::detail::HeaderList &fields, icap::detail::HttpKind kind,
                  std::string_view http_head, bool has_body);
  void response_complete();
  // The streaming echo (echo.cc).
  void start_echo();
  void echo_end();

  Session *session_;  // null once the transaction ended
  icap::detail::TransactionLoop *loop_;
  int refs_ = 1;
  Stage stage_ = Stage::kReceiving;
  int end_status_ = 0;
  void *data_ = nullptr;
  icap_done_cb done_cb_ = nullptr;
  void *done_user_ = nullptr;

  icap::detail::RequestInfo req_;

  // The body.
  PreviewState preview_ = PreviewState::kNone;
  BodyState body_ = BodyState::kNone;
  // The pending read (kReadOnce, kPush, kPushPaused). It may outlive the
  // body's end only when an answer cut the preview short; it then ends when
  // the response does.
  icap_body_cb body_cb_ = nullptr;
  void *body_user_ = nullptr;
  uint64_t preview_bytes_ = 0;
  std::string preview_copy_;             // preview bytes the handler read (for an echo)
  bool delivered_past_preview_ = false;  // an echo is then impossible

  // The response.
  ResponseState resp_ = ResponseState::kNone;
  int status_ = 0;
  icap::detail::HeaderList icap_fields_;
  HttpStart http_start_ = HttpStart::kNone;
  std::string http_line_;
  icap::detail::HeaderList http_fields_;
  bool close_after_ = false;
};

namespace icap::detail {
using Transaction = ::icap_request;
}

#endif
