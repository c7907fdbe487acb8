#include "server/connection.hpp"

#include <cstring>

#include "server/tls.hpp"

namespace icap::detail {

namespace {
// How long a closing connection keeps reading (and dropping) what the client
// still sends, so that closing does not reset the connection before the
// client has read our last answer.
constexpr uint64_t kLingerMs = 2000;
constexpr size_t kMaxIov = 128;
}  // namespace

Connection::Connection(Worker *w)
    : w_(w), session_(this, &w->server()->services, &w->server()->limits) {
  uv_tcp_init(w->loop(), &tcp);
  tcp.data = this;
  uv_timer_init(w->loop(), &timer_);
  timer_.data = this;
  open_handles_ = 2;
  session_.set_loop_ctx(w, w->index());
}

Connection::~Connection() = default;

void Connection::start() {
  struct sockaddr_storage ss;
  int len = sizeof ss;
  char ip[64] = "";
  int port = 0;
  if (uv_tcp_getpeername(&tcp, reinterpret_cast<sockaddr *>(&ss), &len) == 0) {
    if (ss.ss_family == AF_INET6) {
      auto *a = reinterpret_cast<sockaddr_in6 *>(&ss);
      uv_ip6_name(a, ip, sizeof ip);
      port = ntohs(a->sin6_port);
    } else {
      auto *a = reinterpret_cast<sockaddr_in *>(&ss);
      uv_ip4_name(a, ip, sizeof ip);
      port = ntohs(a->sin_port);
    }
  }
  session_.set_peer(ip, port);
  peer_ = std::string(ip) + ":" + std::to_string(port);
  uv_tcp_nodelay(&tcp, 1);
  update();
}

void Connection::on_alloc(uv_handle_t *h, size_t, uv_buf_t *buf) {
  auto *c = static_cast<Connection *>(h->data);
  buf->base = c->w_->read_buffer();
  buf->len = Worker::kReadBufferSize;
}

void Connection::on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  auto *c = static_cast<Connection *>(s->data);
  if (c->lingering_) {
    if (n < 0) c->close(0);
    return;
  }
  if (n > 0) {
    c->progress_ = true;
    if (!c->tls_) {
      c->session_.feed(buf->base, static_cast<size_t>(n));
    } else if (!c->tls_receive(buf->base, static_cast<size_t>(n))) {
      c->w_->flush_dirty();
      return;
    }
  } else if (n == UV_EOF) {
    c->peer_eof_ = true;
    c->session_.eof();
  } else if (n < 0) {
    c->close(ICAP_ECONNRESET);
    c->w_->flush_dirty();
    return;
  }
  c->flush();
  c->w_->flush_dirty();
}

void Connection::session_output() {
  if (!dirty && !closing_) {
    dirty = true;
    w_->mark_dirty(this);
  }
}

void Connection::flush() {
  dirty = false;
  if (closing_) return;
  OutQueue &q = session_.out();
  while (!q.empty() && !session_.dead()) {
    auto *wr = new WriteReq();
    wr->conn = this;
    wr->bytes = 0;
    auto &segs = q.segments();
    while (!segs.empty() && wr->segs.size() < kMaxIov) {
      wr->bytes += segs.front().size();
      wr->segs.push_back(std::move(segs.front()));
      segs.pop_front();
    }
    if (tls_ && !tls_seal(wr)) return;
    if (!submit(wr)) return;
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
    for (auto &s : wr->segs) s.release_now();
    delete wr;
    close(ICAP_ECONNRESET);
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
  if (status < 0) {
    c->close(ICAP_ECONNRESET);
    c->w_->flush_dirty();
    return;
  }
  c->progress_ = true;
  c->session_.written(bytes);
  c->flush();
  c->w_->flush_dirty();
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
  // During a drain, a connection whose last transaction just finished (it
  // began before the stop, so it said keep-alive) is done now.
  if (w_->draining() && session_.wait() == Session::Wait::kIdle) {
    linger();
    return;
  }
  bool want = session_.wants_input();
  if (want && !reading_) {
    if (uv_read_start(reinterpret_cast<uv_stream_t *>(&tcp), on_alloc, on_read) == 0)
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
  if (c->lingering_) {
    c->close(0);
    return;
  }
  if (c->tls_ && !c->tls_->established()) {
    c->tls_timed_out();
    return;
  }
  Session::Wait w = c->session_.wait();
  if (w == Session::Wait::kNone) return;
  c->session_.timed_out(w);
  c->flush();
  c->w_->flush_dirty();
}

void Connection::drain() {
  if (closing_ || lingering_) return;  // a lingering one ends by itself
  if (idle()) {
    close(ICAP_ECANCELED);
  } else {
    session_output();  // re-evaluate; responses now say Connection: close
  }
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
    uv_read_start(reinterpret_cast<uv_stream_t *>(&tcp), on_alloc, on_read);
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
  dirty = false;
  session_.shutdown(status);
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

}  // namespace icap::detail
