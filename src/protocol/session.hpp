// The sans-IO ICAP engine for one connection: bytes in (feed), handler calls
// and events out, response bytes appended to an output queue. No sockets, no
// clocks: the server layer owns those and asks the session what it waits for.
#ifndef ICAP_PROTOCOL_SESSION_HPP
#define ICAP_PROTOCOL_SESSION_HPP

#include <cstdint>
#include <ctime>
#include <string>

#include "http/http_head.hpp"
#include "icap/icap.h"
#include "protocol/chunked.hpp"
#include "protocol/encapsulated.hpp"
#include "protocol/limits.hpp"
#include "protocol/output.hpp"
#include "protocol/request_head.hpp"
#include "protocol/service.hpp"
#include "protocol/transaction_loop.hpp"

namespace icap::detail {

class Session;

// What a session needs from whoever drives it.
class SessionHost {
 public:
  virtual ~SessionHost() = default;
  // New output was queued (or the session wants to close): flush soon.
  virtual void session_output() = 0;
  virtual void session_log(icap_log_level level, const std::string &msg) = 0;
  // Value of the Server: header.
  virtual const std::string &session_server_header() = 0;
  // The hard connection limit, for the default Max-Connections.
  virtual uint64_t session_connection_limit() = 0;
  // True while the server drains: responses then say Connection: close.
  virtual bool session_draining() = 0;
  // The wall clock, for the Date header: the engine reads no clock itself,
  // so tests give it a fixed time.
  virtual time_t session_time() = 0;
  // The loop this connection runs on, for post and offload; null when the
  // engine runs without a server (then both return ICAP_ENOTSUP).
  virtual TransactionLoop *session_loop() { return nullptr; }
};

// Who receives the request body right now.
enum class BodyMode { kNone, kReadOnce, kPush, kEcho, kDiscard };
enum class RespState { kNone, kHead, kDone };

}  // namespace icap::detail

// One ICAP transaction; the C API's icap_request.
struct icap_request {
  explicit icap_request(icap::detail::Session *s);

  icap::detail::Session *session;                 // null once the connection is gone
  icap::detail::TransactionLoop *loop = nullptr;  // for post/offload; may be null
  int refs = 1;
  bool ended = false;       // the done callback ran (or the connection died)
  bool dispatched = false;  // the handler was called
  int end_status = 0;       // why the library ended it early (for on_done)
  void *data = nullptr;
  icap_done_cb done_cb = nullptr;
  void *done_user = nullptr;
  std::string client_ip;
  int client_port = 0;

  // The request.
  icap::detail::RequestHead head;
  icap::detail::Encapsulated enc;
  icap::detail::HttpHead http_req, http_res;
  icap_service *service = nullptr;
  int64_t preview = -1;
  bool allow_204 = false, allow_206 = false;
  bool client_close = false;

  // Body reading.
  icap::detail::BodyMode mode = icap::detail::BodyMode::kNone;
  bool paused = false;
  icap_body_cb body_cb = nullptr;
  void *body_user = nullptr;
  bool body_done = false;      // nothing more of this body will arrive
  bool preview_ended = false;  // the preview's last chunk was read
  bool ieof = false;
  bool continued = false;               // 100 Continue sent
  bool consumed_after_preview = false;  // handler read bytes past the preview
  bool read_error = false;
  uint64_t preview_bytes = 0;
  std::string preview_copy;  // preview bytes the handler read (for an echo)

  // The response.
  icap::detail::RespState resp = icap::detail::RespState::kNone;
  int status = 200;
  bool status_set = false;
  icap::detail::HeaderList icap_headers;
  std::string http_line;  // start line of the encapsulated HTTP message
  bool http_line_is_status = false;
  icap::detail::HeaderList http_headers;
  bool close_after = false;

  bool in_preview_phase() const { return preview >= 0 && !continued; }
  bool answer_started() const { return resp != icap::detail::RespState::kNone; }
  bool complete() const { return resp == icap::detail::RespState::kDone && body_done; }
};

namespace icap::detail {

class Session {
 public:
  Session(SessionHost *host, const ServiceTable *services, const Limits *limits);
  ~Session();
  Session(const Session &) = delete;
  Session &operator=(const Session &) = delete;

  // Set by the server for every transaction of this connection.
  void set_peer(std::string ip, int port) {
    peer_ip_ = std::move(ip);
    peer_port_ = port;
  }

  // Appends received bytes and processes them.
  void feed(const char *p, size_t n);
  // The client closed its sending side.
  void eof();
  // Runs the state machine as far as input, consumers and output allow.
  // Re-entrant calls (from inside a callback) are folded into the running one.
  void process();
  // n bytes that were taken from out() are now written.
  void written(size_t n);
  // The connection is going away: ends the transaction with `status` and
  // releases borrowed output. The session does nothing after this.
  void shutdown(int status);

  OutQueue &out() { return out_; }
  // False while enough input is buffered, or when closing.
  bool wants_input() const;
  // True when the connection must close once the output is written.
  bool closing() const { return closing_; }
  // True when the connection must close now, without writing more.
  bool dead() const { return dead_; }

  enum class Wait { kNone, kIdle, kHead, kBody, kHandler, kOutput };
  // What the session waits for, so the server can pick the right timer.
  Wait wait() const;
  // A timer ran out while waiting for `w`: answer 408/500 if possible and
  // close. Ends the transaction with ICAP_ETIMEDOUT.
  void timed_out(Wait w);

  // ---- used by the C API (transaction.cc) ----
  size_t pending_output() const { return unwritten_; }
  const Limits &limits() const { return *limits_; }
  SessionHost *host() const { return host_; }
  void log(icap_log_level level, const std::string &msg) { host_->session_log(level, msg); }
  // Writes the status line and the headers every response carries.
  void begin_response(icap_request *r, int status);
  // Queues `s` as output and asks the host to flush.
  void emit(std::string_view s);
  void emit_zc(const char *p, size_t n, icap_release_cb cb, void *user);
  // Answers a transaction that has not started its response with a
  // bodiless status (errors, 204, generated responses).
  void send_simple(icap_request *r, int status, bool close);
  void send_options(icap_request *r);
  void start_echo(icap_request *r);
  void send_continue(icap_request *r);
  void after_response_done(icap_request *r);
  // Fails the current transaction: 500 if possible, then close.
  void fail(icap_request *r, int status, const std::string &why);

 private:
  bool step_head();
  bool step_encapsulated();
  bool step_body();
  void dispatch();
  void finish_transaction(int status);
  void protocol_error(int status, const std::string &why);
  void deliver(icap_request *r, int status, const char *data, size_t len);
  void compact_input();

  SessionHost *host_;
  const ServiceTable *services_;
  const Limits *limits_;
  std::string peer_ip_;
  int peer_port_ = 0;

  enum class State { kHead, kEncapsulated, kBody, kWaitResponse, kStopped };
  State state_ = State::kHead;
  // Input: either in_ (buffered) or, during feed(), the caller's buffer.
  const char *ibase() const { return ext_ ? ext_ : in_.data(); }
  size_t isize() const { return ext_ ? ext_len_ : in_.size(); }
  std::string in_;
  const char *ext_ = nullptr;
  size_t ext_len_ = 0;
  size_t in_pos_ = 0;
  size_t head_scan_ = 0;  // where the search for CRLF CRLF resumes
  icap_request *cur_ = nullptr;
  ChunkDecoder chunks_;
  OutQueue out_;
  size_t unwritten_ = 0;  // queued + being written
  bool closing_ = false;
  bool dead_ = false;
  bool peer_eof_ = false;
  bool in_process_ = false;
  bool again_ = false;
};

// Releases a reference; frees the request at zero.
void request_unref(icap_request *r);

// "Mon, 02 Jan 2006 15:04:05 GMT" for `now`, cached per second and thread.
const std::string &http_date(time_t now);

}  // namespace icap::detail

#endif
