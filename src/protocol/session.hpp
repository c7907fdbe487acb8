// SPDX-License-Identifier: MIT
// The sans-IO ICAP engine for one connection: the connection loop. Bytes in
// (feed), the parser steps (request head, encapsulated HTTP heads, chunked
// body), handler calls out, response bytes appended to an output queue by
// the transactions (transaction.cc, response_writer.cc). No sockets and no
// clock: the host (the server, or a test) owns those, gives the time, and
// asks the session what it waits for to arm its timers.
#ifndef ICAP_PROTOCOL_SESSION_HPP
#define ICAP_PROTOCOL_SESSION_HPP

#include <cstdint>
#include <ctime>
#include <string>

#include "icap/icap.h"
#include "protocol/chunked.hpp"
#include "protocol/limits.hpp"
#include "protocol/output.hpp"
#include "protocol/response_writer.hpp"
#include "protocol/service.hpp"
#include "protocol/transaction.hpp"
#include "protocol/transaction_loop.hpp"

namespace icap::detail {

class Session;

// A protocol error, kept once found (sticky, as llhttp's are): what the
// client did wrong and where, for the log and for tests.
struct ProtocolError {
  int status = 0;         // the ICAP status it calls for (400, 501, 505); 0 for none
  std::string reason;     // "bad chunked body: bad chunk size"
  uint64_t offset = 0;    // the byte of the connection's input where it was found
  bool answered = false;  // the status was sent (false: a response had started)
};

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

}  // namespace icap::detail

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

  OutQueue &out() { return writer_.queue(); }
  // False while enough input is buffered, or when closing.
  bool wants_input() const;
  // True when the connection must close once the output is written.
  bool closing() const { return closing_; }
  // True when the connection must close now, without writing more.
  bool dead() const { return dead_; }
  // The first protocol error on this connection (status 0 while none).
  const ProtocolError &error() const { return error_; }

  enum class Wait { kNone, kIdle, kHead, kBody, kHandler, kOutput };
  // What the session waits for, so the server can pick the right timer.
  Wait wait() const;
  // A timer ran out while waiting for `w`: answer 408/500 if possible and
  // close. Ends the transaction with ICAP_ETIMEDOUT.
  void timed_out(Wait w);

  // ---- used by the transactions of this connection ----
  // Bytes queued or being written.
  size_t pending_output() const { return writer_.unwritten(); }
  const Limits &limits() const { return *limits_; }
  ResponseWriter &writer() { return writer_; }
  const ResponseWriter &writer() const { return writer_; }
  SessionHost *host() const { return host_; }
  void log(icap_log_level level, const std::string &msg) { host_->session_log(level, msg); }
  // New output is queued: the host flushes it soon.
  void output_ready() { host_->session_output(); }
  // The connection closes once the current response is written.
  void close_after_response() { closing_ = true; }
  // Fails transaction `r`: 500 if no answer started, then close.
  void fail(icap_request *r, int status, const std::string &why);

 private:
  bool step_head();
  bool step_encapsulated();
  bool step_body();
  void dispatch();
  void finish_transaction(int status);
  void protocol_error(int status, const std::string &why, uint64_t offset);
  // Where byte `pos` of the current input is in the connection's input.
  uint64_t input_offset(size_t pos) const { return consumed_before_ + pos; }
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
  uint64_t consumed_before_ = 0;  // bytes dropped from the front of the input
  size_t head_scan_ = 0;          // where the search for CRLF CRLF resumes
  icap_request *cur_ = nullptr;
  ChunkDecoder chunks_;
  ResponseWriter writer_;
  bool closing_ = false;
  bool dead_ = false;
  bool peer_eof_ = false;
  bool in_process_ = false;
  bool again_ = false;
  ProtocolError error_;
};

}  // namespace icap::detail

#endif
