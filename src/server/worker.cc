// SPDX-License-Identifier: MIT
#include "server/worker.hpp"

#include <unistd.h>

#include "api/guard.hpp"
#include "protocol/session.hpp"
#include "server/connection.hpp"

namespace icap::detail {

Worker::Worker(icap_server *srv, unsigned index) : srv_(srv), index_(index) {}

Worker::~Worker() {
  if (loop_ready_) uv_loop_close(&loop_);
}

int Worker::init(const std::vector<int> &fds) noexcept {
  size_t adopted = 0;  // fds[0, adopted) belong to libuv handles now
  int rc = guard([&] { return init_loop(fds, adopted); });
  for (size_t i = adopted; rc != 0 && i < fds.size(); i++) ::close(fds[i]);
  return rc;
}

int Worker::init_loop(const std::vector<int> &fds, size_t &adopted) {
  if (int rc = uv_loop_init(&loop_)) return rc == UV_ENOMEM ? ICAP_ENOMEM : ICAP_EIO;
  loop_ready_ = true;
  uv_timer_init(&loop_, &drain_timer_);
  drain_timer_.data = this;
  if (int rc = uv_async_init(&loop_, &async_, on_async))
    return rc == UV_ENOMEM ? ICAP_ENOMEM : ICAP_EIO;
  async_ready_ = true;
  async_.data = this;
  async_alive_ = true;
  // Reserved first, so that a handle once initialised is always in the
  // list that run() closes and frees.
  listeners_.reserve(fds.size());
  for (int fd : fds) {
    auto *t = new uv_tcp_t;
    uv_tcp_init(&loop_, t);
    t->data = this;
    listeners_.push_back(t);
    int rc = uv_tcp_open(t, fd);
    if (rc == 0) adopted++;
    if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t *>(t), 1024, on_connection);
    if (rc != 0) {
      srv_->log(ICAP_LOG_ERROR, std::string("listen failed: ") + uv_strerror(rc));
      return rc == UV_ENOMEM ? ICAP_ENOMEM : ICAP_EIO;
    }
  }
  return 0;
}

void Worker::run() noexcept {
  // A loop that could not even be set up has nothing to run or close.
  if (!loop_ready_) return;
  // A stop that came before this worker was published is seen here.
  if (srv_->stop_requested.load()) guard_void([this] { begin_drain(); });
  uv_run(&loop_, UV_RUN_DEFAULT);
  // Close whatever is left (for example after a failed init), then run the
  // loop once more so that every close callback fires.
  uv_walk(
      &loop_,
      [](uv_handle_t *h, void *) {
        if (!uv_is_closing(h)) uv_close(h, nullptr);
      },
      nullptr);
  uv_run(&loop_, UV_RUN_DEFAULT);
  for (uv_tcp_t *t : listeners_) delete t;
  listeners_.clear();
}

void Worker::on_connection(uv_stream_t *server, int status) {
  auto *w = static_cast<Worker *>(server->data);
  if (status < 0 || w->draining_) return;
  guard_void([w, server] { w->accept(server); }, [w, server](int) { w->reject(server); });
  w->flush_dirty();
}

void Worker::accept(uv_stream_t *server) {
  // Room in the list first: once accepted, the connection must be listed
  // (it is closed through the list at drain) without a further allocation.
  // (Doubling: reserve(size + 1) would reallocate on every accept.)
  if (conns_.size() == conns_.capacity()) conns_.reserve(2 * conns_.size() + 16);
  auto *c = new Connection(this);
  if (uv_accept(server, reinterpret_cast<uv_stream_t *>(&c->tcp)) != 0) {
    c->close(0);
    return;
  }
  c->slot = conns_.size();
  conns_.push_back(c);
  uint64_t n = srv_->connections.fetch_add(1) + 1;
  if (n > srv_->limits[ICAP_LIMIT_CONNECTIONS]) {
    // Over the hard limit: a short 503 and close. Clients that honour
    // Max-Connections (advertised below this limit) never get here.
    static const char k503[] =
        "ICAP/1.0 503 Service Overloaded\r\nConnection: close\r\n"
        "Encapsulated: null-body=0\r\n\r\n";
    uv_buf_t b = uv_buf_init(const_cast<char *>(k503), sizeof k503 - 1);
    uv_try_write(reinterpret_cast<uv_stream_t *>(&c->tcp), &b, 1);
    c->close(0);
    guard_void([this] { srv_->log(ICAP_LOG_WARN, "connection limit reached: 503"); });
    return;
  }
  if (!c->attach_tls(tls_config(server))) return;
  c->start();
}

void Worker::reject(uv_stream_t *server) noexcept {
  // No memory for the connection: take it off the listening socket and
  // close it, so that the client sees a close and the next one is served.
  if (reject_busy_) {
    reject_pending_ = server;  // taken once the spare handle is free again
    return;
  }
  if (uv_tcp_init(&loop_, &reject_) != 0) return;
  reject_.data = this;
  reject_busy_ = true;
  uv_accept(server, reinterpret_cast<uv_stream_t *>(&reject_));
  uv_close(reinterpret_cast<uv_handle_t *>(&reject_), on_reject_closed);
  guard_void([this] { srv_->log(ICAP_LOG_ERROR, "out of memory: a new connection was closed"); });
}

void Worker::on_reject_closed(uv_handle_t *h) {
  auto *w = static_cast<Worker *>(h->data);
  w->reject_busy_ = false;
  uv_stream_t *next = w->reject_pending_;
  w->reject_pending_ = nullptr;
  if (next && !w->draining_) w->reject(next);
}

icap_tls_config *Worker::tls_config(uv_stream_t *listener) const {
  // listeners_ follows the order of the server's listeners.
  for (size_t i = 0; i < listeners_.size() && i < srv_->listeners.size(); i++)
    if (reinterpret_cast<uv_stream_t *>(listeners_[i]) == listener)
      return srv_->listeners[i].tls.get();
  return nullptr;
}

void Worker::connection_closed(Connection *c) {
  // O(1): each connection knows its slot; the last one moves into it.
  if (c->slot < conns_.size() && conns_[c->slot] == c) {
    conns_[c->slot] = conns_.back();
    conns_[c->slot]->slot = c->slot;
    conns_.pop_back();
    srv_->connections.fetch_sub(1);
  }
  unmark_dirty(c);
  if (draining_) maybe_finish();
}

void Worker::mark_dirty(Connection *c) noexcept {
  if (c->dirty) return;
  c->dirty = true;
  c->dirty_prev = nullptr;
  c->dirty_next = dirty_head_;
  if (dirty_head_) dirty_head_->dirty_prev = c;
  dirty_head_ = c;
}

void Worker::unmark_dirty(Connection *c) noexcept {
  if (!c->dirty) return;
  c->dirty = false;
  if (c->dirty_prev)
    c->dirty_prev->dirty_next = c->dirty_next;
  else
    dirty_head_ = c->dirty_next;
  if (c->dirty_next) c->dirty_next->dirty_prev = c->dirty_prev;
  c->dirty_prev = c->dirty_next = nullptr;
}

void Worker::flush_dirty() noexcept {
  // Each flush takes its connection off the list (and may mark it again, or
  // close others, which takes them off too). A closed connection's memory
  // lives until its close callbacks, which run in a later loop phase.
  // Connection::flush() ends its own connection on failure; it never throws.
  while (Connection *c = dirty_head_) c->flush();
}

void Worker::on_async(uv_async_t *a) {
  auto *w = static_cast<Worker *>(a->data);
  guard_void([w] {
    w->run_posts();
    if (w->srv_->stop_requested.load() && !w->draining_) w->begin_drain();
  });
  w->flush_dirty();
  if (w->draining_) w->maybe_finish();
}

void Worker::run_posts() {
  std::vector<Post> list;
  {
    std::lock_guard<std::mutex> g(mu_);
    list.swap(posts_);
  }
  for (Post &p : list) {
    guard_void([&p] { p.cb(p.req, p.req->ended() ? ICAP_ECANCELED : 0, p.user); });
    p.req->unref();
  }
}

int Worker::post(icap_request *req, icap_post_cb cb, void *user) {
  {
    std::lock_guard<std::mutex> g(mu_);
    if (!accepting_posts_) return ICAP_ECANCELED;
    try {
      posts_.push_back(Post{req, cb, user});
    } catch (...) {
      return ICAP_ENOMEM;
    }
    uv_async_send(&async_);
  }
  return 0;
}

namespace {
struct Offload {
  uv_work_t work;
  Worker *w;
  icap_request *req;
  icap_work_cb fn;
  icap_post_cb done;
  void *user;
};
}  // namespace

int Worker::offload(icap_request *req, icap_work_cb work, icap_post_cb done, void *user) {
  auto *o = new (std::nothrow) Offload{{}, this, req, work, done, user};
  if (!o) return ICAP_ENOMEM;
  o->work.data = o;
  req->ref();
  int rc = uv_queue_work(
      &loop_, &o->work,
      [](uv_work_t *w) {
        auto *o = static_cast<Offload *>(w->data);
        o->fn(o->user);
      },
      [](uv_work_t *w, int status) {
        auto *o = static_cast<Offload *>(w->data);
        Worker *self = o->w;
        self->offloads_--;
        guard_void([o, status] {
          int st = status < 0 || o->req->ended() ? ICAP_ECANCELED : 0;
          o->done(o->req, st, o->user);
        });
        o->req->unref();
        delete o;
        self->flush_dirty();
        if (self->draining_) self->maybe_finish();
      });
  if (rc != 0) {
    req->unref();  // ours, taken above: never the last
    delete o;
    return ICAP_ENOMEM;
  }
  offloads_++;
  return 0;
}

void Worker::begin_drain() {
  draining_ = true;
  uv_update_time(&loop_);
  drain_started_ = uv_now(&loop_);
  for (uv_tcp_t *t : listeners_)
    if (!uv_is_closing(reinterpret_cast<uv_handle_t *>(t)))
      uv_close(reinterpret_cast<uv_handle_t *>(t), nullptr);
  // Backwards, without a copy (a stop must not need memory): a connection
  // that closes moves the last one, already visited, into its slot.
  for (size_t i = conns_.size(); i-- > 0;)
    if (i < conns_.size()) conns_[i]->drain();
  uv_timer_start(&drain_timer_, on_drain_timeout, srv_->limits[ICAP_LIMIT_DRAIN_TIMEOUT_MS], 0);
  flush_dirty();
  maybe_finish();
}

void Worker::on_drain_timeout(uv_timer_t *t) {
  auto *w = static_cast<Worker *>(t->data);
  size_t n = w->conns_.size();
  for (size_t i = n; i-- > 0;)
    if (i < w->conns_.size()) w->conns_[i]->close(ICAP_ECANCELED);
  if (n)
    guard_void([w, n] {
      w->srv_->log(ICAP_LOG_WARN, "drain timeout: closed " + std::to_string(n) + " connection(s)");
    });
  w->maybe_finish();
}

void Worker::maybe_finish() {
  if (finished_ || !conns_.empty() || offloads_ > 0) return;
  finished_ = true;
  {
    std::lock_guard<std::mutex> g(mu_);
    accepting_posts_ = false;
  }
  async_alive_ = false;
  run_posts();  // posts that raced with the stop still get their callback
  if (async_ready_) uv_close(reinterpret_cast<uv_handle_t *>(&async_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t *>(&drain_timer_), nullptr);
}

}  // namespace icap::detail
