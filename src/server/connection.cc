// SPDX-License-Identifier: MIT
#include "server/connection.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>

#include "api/guard.hpp"

#include "server/tls.hpp"

namespace icap::detail {

namespace {
// How long a closing connection keeps reading (and dropping) what the client
// still sends, so that closing does not reset the connection before the
// client has read our last answer.
constexpr uint64_t kLingerMs = 2000;
// At most as many buffers per uv_write() as fit in the request itself.
// For more, libuv allocates, and libuv 1.44 returns UV_ENOMEM from there
// with the request still counted as active (uv_write2() in
// src/unix/stream.c never unregisters it), so the loop would never end and
// icap_server_run() would never return. Segments are large (OutQueue merges
// small appends), so four per write cost little.
constexpr size_t kMaxIov = sizeof(uv_write_t::bufsml) / sizeof(uv_buf_t);
// How long a connection that is idle during a drain stays open for a request
// that may already be on its way (drain_idle_deadline()).
constexpr uint64_t kDrainIdleGraceMs = 1000;
}  // namespace

Connection::Connection(Worker *w)
    : w_(w), session_(this, &w->server()->services, &w->server()->limits) {
  uv_tcp_init(w->loop(), &tcp);
  tcp.data = this;
  uv_timer_init(w->loop(), &timer_);
  timer_.data = this;
  open_handles_ = 2;
}

Connection::~Connection() = default;

template <class F>
void Connection::guarded(F &&f) noexcept {
  Worker *w = w_;  // `this` may be gone when f() returns
  guard_void(std::forward<F>(f), [this](int code) { fail(code); });
  w->flush_dirty();
}

void Connection::fail(int code) noexcept {
  if (closing_) return;
  // Close first: the log line below needs memory, which may still be short,
  // and the connection must end whether or not it can be logged.
  close(code);
  guard_void([&] {
    char msg[160];
    snprintf(msg, sizeof msg, "connection from %s:%d ended: %s", peer_ip_, peer_port_,
             icap_strerror(code));
    w_->server()->log(ICAP_LOG_ERROR, msg);
  });
}

void Connection::start() {
  struct sockaddr_storage ss;
  int len = sizeof ss;
  if (uv_tcp_getpeername(&tcp, reinterpret_cast<sockaddr *>(&ss), &len) == 0) {
    if (ss.ss_family == AF_INET6) {
      auto *a = reinterpret_cast<sockaddr_in6 *>(&ss);
      uv_ip6_name(a, peer_ip_, sizeof peer_ip_);
      peer_port_ = ntohs(a->sin6_port);
    } else {
      auto *a = reinterpret_cast<sockaddr_in *>(&ss);
      uv_ip4_name(a, peer_ip_, sizeof peer_ip_);
      peer_port_ = ntohs(a->sin_port);
    }
  }
  guarded([this] {
    session_.set_peer(peer_ip_, peer_port_);
    peer_ = std::string(peer_ip_) + ":" + std::to_string(peer_port_);
    uv_tcp_nodelay(&tcp, 1);
    update();
  });
}

void Connection::on_alloc(uv_handle_t *h, size_t, uv_buf_t *buf) {
  auto *c = static_cast<Connection *>(h->data);
  buf->base = c->w_->read_buffer();
  buf->len = Worker::kReadBufferSize;
}

void Connection::on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  auto *c = static_cast<Connection *>(s->data);
  c->guarded([c, n, buf] {
    if (c->lingering_) {
      if (n < 0) c->close(0);
      return;
    }
    if (n > 0) {
      c->progress_ = true;
      if (!c->tls_) {
        c->session_.feed(buf->base, static_cast<size_t>(n));
      } else if (!c->tls_receive(buf->base, static_cast<size_t>(n))) {
        return;
      }
    } else if (n == UV_EOF) {
      c->peer_eof_ = true;
      c->session_.eof();
    } else if (n < 0) {
      c->close(ICAP_ECONNRESET);
      return;
    }
    c->flush_unguarded();
  });
}

void Connection::session_output() {
  if (!closing_) w_->mark_dirty(this);
}

void Connection::flush() {
  // Called by the worker for every dirty connection: a failure here ends
  // this connection, never the loop (the worker's flush_dirty() runs after).
  guard_void([this] { flush_unguarded(); }, [this](int code) { fail(code); });
}

void Connection::flush_unguarded() {
  w_->unmark_dirty(this);
  if (closing_) return;
  // A write request that is not handed to libuv gives its borrowed bytes
  // back and goes away, also when a later allocation throws.
  auto drop = [](WriteReq *wr) {
    for (auto &s : wr->segs) s.release_now();
    delete wr;
  };
  OutQueue &q = session_.out();
  while (!q.empty() && !session_.dead()) {
    std::unique_ptr<WriteReq, decltype(drop)> wr(new WriteReq(), drop);
    wr->conn = this;
    wr->bytes = 0;
    auto &segs = q.segments();
    while (!segs.empty() && wr->segs.size() < kMaxIov) {
      wr->segs.push_back(std::move(segs.front()));
      wr->bytes += wr->segs.back().size();
      segs.pop_front();
    }
    // tls_seal() and submit() own the request once called: they free it
    // (and close the connection) when they fail.
    if (tls_ && !tls_seal(wr.get())) {
      wr.release();
      return;
    }
    if (!submit(wr.release())) return;
  }
  q.taken();
  if (tls_ && tls_->pending() && !tls_send_pending()) return;
  update();
}

bool Connection::submit(WriteReq *wr) {
  uv_buf_t bufs[kMaxIov];
  size_t n = 0;
  for (auto &s : wr->segs) bufs[n++] = uv_buf_init(const_cast<char *>(s.data()), s.size());
  wr->req.data = wr;
  int rc = uv_write(&wr->req, reinterpret_cast<uv_stream_t *>(&tcp), bufs, static_cast<unsigned>(n),
                    on_write);
  if (rc < 0) {
    // libuv allocates for more than a few buffers; UV_ENOMEM (or any other
    // error) ends this connection like a reset would.
    for (auto &s : wr->segs) s.release_now();
    delete wr;
    close(rc == UV_ENOMEM ? ICAP_ENOMEM : ICAP_ECONNRESET);
    return false;
  }
  writes_in_flight_++;
  return true;
}

void Connection::on_write(uv_write_t *req, int status) {
  auto *wr = static_cast<WriteReq *>(req->data);
  Connection *c = wr->conn;
  for (auto &s : wr->segs) s.release_now();
  c->writes_in_flight_--;
  size_t bytes = wr->bytes;
  delete wr;
  if (c->closing_) {
    if (c->writes_in_flight_ == 0 && c->open_handles_ == 0) delete c;
    return;
  }
  c->guarded([c, status, bytes] {
    if (status < 0) {
      c->close(ICAP_ECONNRESET);
      return;
    }
    c->progress_ = true;
    c->session_.written(bytes);
    c->flush_unguarded();
  });
}

void Connection::update() {
  if (closing_ || lingering_) return;
  if (session_.dead()) {
    close(ICAP_ECONNRESET);
    return;
  }
  if (session_.closing() && session_.out().empty() && writes_in_flight_ == 0 &&
      session_.wait() != Session::Wait::kHandler) {
    linger();
    return;
  }
  bool want = session_.wants_input();
  if (want && !reading_) {
    // A connection that cannot read would only wait for its timeout.
    if (uv_read_start(reinterpret_cast<uv_stream_t *>(&tcp), on_alloc, on_read) != 0) {
      close(ICAP_EIO);
      return;
    }
    reading_ = true;
  } else if (!want && reading_) {
    uv_read_stop(reinterpret_cast<uv_stream_t *>(&tcp));
    reading_ = false;
  }

  // One timer, armed for whatever the session waits for.
  Session::Wait w = session_.wait();
  uint64_t now = uv_now(w_->loop());
  if (w != wait_ || (progress_ && w != Session::Wait::kHead)) {
    wait_ = w;
    wait_since_ = now;
  }
  progress_ = false;
  const Limits &l = w_->server()->limits;
  uint64_t timeout = 0;
  switch (w) {
    case Session::Wait::kNone:
      break;
    case Session::Wait::kIdle:
      timeout = l[ICAP_LIMIT_IDLE_TIMEOUT_MS];
      if (w_->draining()) {
        // Idle during a drain: see drain_idle_deadline().
        uint64_t deadline = drain_idle_deadline();
        uv_timer_start(&timer_, on_timer, deadline > now ? deadline - now : 0, 0);
        return;
      }
      break;
    case Session::Wait::kHead:
    case Session::Wait::kBody:
      timeout = l[ICAP_LIMIT_READ_TIMEOUT_MS];
      break;
    case Session::Wait::kHandler:
      timeout = l[ICAP_LIMIT_HANDLER_TIMEOUT_MS];
      break;
    case Session::Wait::kOutput:
      timeout = l[ICAP_LIMIT_WRITE_TIMEOUT_MS];
      break;
  }
  uint64_t since = wait_since_;
  if (tls_ && !tls_->established()) {
    // However the client trickles it, a handshake must end within the
    // read timeout of its start.
    timeout = l[ICAP_LIMIT_READ_TIMEOUT_MS];
    since = tls_since_;
  }
  if (!timeout) {
    uv_timer_stop(&timer_);
    return;
  }
  uint64_t deadline = since + timeout;
  uv_timer_start(&timer_, on_timer, deadline > now ? deadline - now : 0, 0);
}

void Connection::on_timer(uv_timer_t *t) {
  auto *c = static_cast<Connection *>(t->data);
  c->guarded([c] {
    if (c->lingering_) {
      c->close(0);
      return;
    }
    Session::Wait w = c->session_.wait();
    if (c->tls_ && !c->tls_->established()) {
      c->tls_timed_out();
      return;
    }
    if (w == Session::Wait::kNone) return;
    if (w == Session::Wait::kIdle && c->w_->draining()) {
      c->linger();
      return;
    }
    c->session_.timed_out(w);
    c->flush_unguarded();
  });
}

void Connection::drain() {
  if (closing_ || lingering_) return;  // a lingering one ends by itself
  // Re-evaluate: the next response says Connection: close, and an idle
  // connection gets its grace timer (update()).
  session_output();
}

uint64_t Connection::drain_idle_deadline() const {
  // Closing a kept-alive connection the moment it is idle would lose a
  // request that the client has already sent but that has not arrived yet
  // (it would find the connection closed, or reset). So an idle connection
  // stays open and reading for a grace period, counted from when it became
  // idle or from the start of the drain, whichever is later. A request that
  // arrives meanwhile is answered, with Connection: close; after the grace
  // the connection is closed with linger() (FIN first, then whatever still
  // arrives is read and dropped instead of causing a reset).
  uint64_t grace =
      std::min<uint64_t>(kDrainIdleGraceMs, w_->server()->limits[ICAP_LIMIT_DRAIN_TIMEOUT_MS] / 2);
  return std::max(wait_since_, w_->drain_started()) + grace;
}

void Connection::linger() {
  // Send FIN after the last answer, then drop what the client still sends
  // until it closes or the linger time passes. A client that already closed
  // its side has nothing more to send: close at once.
  if (peer_eof_) {
    close(0);
    return;
  }
  lingering_ = true;
  if (tls_) tls_goodbye();
  if (!reading_) {
    if (uv_read_start(reinterpret_cast<uv_stream_t *>(&tcp), on_alloc, on_read) != 0) {
      close(0);
      return;
    }
    reading_ = true;
  }
  shutdown_req_.data = this;
  if (uv_shutdown(&shutdown_req_, reinterpret_cast<uv_stream_t *>(&tcp), on_shutdown) != 0) {
    close(0);
    return;
  }
  writes_in_flight_++;  // the shutdown request keeps the object alive too
  uv_timer_start(&timer_, on_timer, kLingerMs, 0);
}

void Connection::on_shutdown(uv_shutdown_t *req, int) {
  auto *c = static_cast<Connection *>(req->data);
  c->writes_in_flight_--;
  if (c->closing_ && c->writes_in_flight_ == 0 && c->open_handles_ == 0) delete c;
}

void Connection::close(int status) {
  if (closing_) return;
  if (tls_ && (status == 0 || status == ICAP_ECANCELED)) tls_goodbye();
  closing_ = true;
  w_->unmark_dirty(this);
  // The session ends its transaction (the request's on_done runs and its
  // references are released). The handles below are closed whatever
  // happens there, or the connection would never be freed.
  guard_void([&] { session_.shutdown(status); });
  w_->connection_closed(this);
  uv_close(reinterpret_cast<uv_handle_t *>(&tcp), on_closed);
  uv_close(reinterpret_cast<uv_handle_t *>(&timer_), on_closed);
}

void Connection::on_closed(uv_handle_t *h) {
  auto *c = static_cast<Connection *>(h->data);
  if (--c->open_handles_ == 0 && c->writes_in_flight_ == 0) delete c;
}

void Connection::session_log(icap_log_level level, const std::string &msg) {
  w_->server()->log(level, msg);
}

const std::string &Connection::session_server_header() { return w_->server()->server_header; }

uint64_t Connection::session_connection_limit() {
  return w_->server()->limits[ICAP_LIMIT_CONNECTIONS];
}

bool Connection::session_draining() { return w_->draining(); }

time_t Connection::session_time() { return time(nullptr); }

TransactionLoop *Connection::session_loop() { return w_; }

}  // namespace icap::detail
