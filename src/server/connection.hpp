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
  bool idle() const { return session_.wait() == Session::Wait::kIdle; }
  // Server drain: close when idle, otherwise after the current transaction.
  void drain();

  uv_tcp_t tcp;
  bool dirty = false;
  size_t slot = SIZE_MAX;  // index in the worker's connection list

  // SessionHost
  void session_output() override;
  void session_log(icap_log_level level, const std::string &msg) override;
  const std::string &session_server_header() override;
  uint64_t session_connection_limit() override;
  bool session_draining() override;

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
  void linger();
  void release_handles();
  bool submit(WriteReq *wr);
  bool tls_receive(const char *p, size_t n);
  bool tls_seal(WriteReq *wr);
  bool tls_send_pending();
  void tls_fail();
  void tls_goodbye();
  void tls_timed_out();

  Worker *w_;
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
