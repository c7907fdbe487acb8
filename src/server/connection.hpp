// SPDX-License-Identifier: MIT
// One client connection: a libuv TCP handle, its timer, and the protocol
// session it feeds.
#ifndef ICAP_SERVER_CONNECTION_HPP
#define ICAP_SERVER_CONNECTION_HPP

#include <uv.h>

#include <cstdint>
#include <deque>
#include <memory>

#include "protocol/session.hpp"
#include "server/worker.hpp"

namespace icap::detail {

class TlsTransport;

class Connection final : public SessionHost {
 public:
  explicit Connection(Worker *w);
  ~Connection() override;

  // Takes the accepted handle's peer, starts reading and the idle timer.
  void start();
  // Writes what the session queued; closes when the session says so.
  void flush();
  // Closes now (drain timeout, server stop). Ends any transaction.
  void close(int status);
  // An exception escaped the engine while it served this connection (out
  // of memory, most often): ends this connection only, logged at ERROR with
  // the client's address. Never throws.
  void fail(int code) noexcept;
  bool idle() const { return session_.wait() == Session::Wait::kIdle; }
  // Server drain: the next response says Connection: close and the
  // connection closes after it; an idle one closes after a grace period.
  void drain();

  uv_tcp_t tcp;
  // In the worker's list of connections with output to write. The list is
  // intrusive so that marking a connection never allocates (marking happens
  // deep inside the engine, where an exception would be hard to undo).
  bool dirty = false;
  Connection *dirty_prev = nullptr;
  Connection *dirty_next = nullptr;
  size_t slot = SIZE_MAX;  // index in the worker's connection list

  // SessionHost
  void session_output() override;
  void session_log(icap_log_level level, const std::string &msg) override;
  const std::string &session_server_header() override;
  uint64_t session_connection_limit() override;
  bool session_draining() override;
  time_t session_time() override;
  TransactionLoop *session_loop() override;

  // TLS (connection_tls.cc). attach_tls() makes this connection TLS on
  // cfg's current context (a null cfg leaves it plain); on failure it logs,
  // closes the connection and returns false.
  bool attach_tls(icap_tls_config *cfg);
  const TlsTransport *tls() const { return tls_.get(); }

 private:
  struct WriteReq {
    uv_write_t req;
    Connection *conn;
    std::deque<OutSeg> segs;
    size_t bytes;
  };
  static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
  static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);
  static void on_write(uv_write_t *req, int status);
  static void on_timer(uv_timer_t *t);
  static void on_closed(uv_handle_t *h);
  static void on_shutdown(uv_shutdown_t *req, int status);
  void update();  // reading on/off, timers, close
  void flush_unguarded();
  void linger();
  uint64_t drain_idle_deadline() const;
  // Runs `f`; if it throws, fail() ends this connection. In every case the
  // worker then writes what other connections queued meanwhile.
  template <class F>
  void guarded(F &&f) noexcept;
  bool submit(WriteReq *wr);
  bool tls_receive(const char *p, size_t n);
  bool tls_seal(WriteReq *wr);
  bool tls_send_pending();
  void tls_fail();
  void tls_goodbye();
  void tls_timed_out();

  Worker *w_;
  // The client's address, kept without allocating so that the error log of
  // an out-of-memory failure can still name it.
  char peer_ip_[64] = "";
  int peer_port_ = 0;
  Session session_;
  uv_timer_t timer_;
  uv_shutdown_t shutdown_req_;
  bool reading_ = false;
  bool peer_eof_ = false;
  bool closing_ = false;    // handles being closed
  bool lingering_ = false;  // FIN sent, discarding input until EOF or timeout
  int open_handles_ = 0;
  size_t writes_in_flight_ = 0;
  Session::Wait wait_ = Session::Wait::kNone;
  uint64_t wait_since_ = 0;
  bool progress_ = false;
  std::string peer_;                   // "ip:port", for log lines
  std::unique_ptr<TlsTransport> tls_;  // null on a plain connection
  uint64_t tls_since_ = 0;             // when the handshake began
};

}  // namespace icap::detail

#endif
