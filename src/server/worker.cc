#include "server/worker.hpp"

#include <algorithm>

#include "protocol/session.hpp"
#include "server/connection.hpp"
#include "server/worker_api.hpp"

namespace icap::detail {

Worker::Worker(icap_server *srv, unsigned index) : srv_(srv), index_(index) {}

Worker::~Worker() {
  if (loop_ready_) uv_loop_close(&loop_);
}

int Worker::init(const std::vector<int> &fds) {
  if (uv_loop_init(&loop_) != 0) return ICAP_EIO;
  loop_ready_ = true;
  uv_async_init(&loop_, &async_, on_async);
  async_.data = this;
  async_alive_ = true;
  uv_timer_init(&loop_, &drain_timer_);
  drain_timer_.data = this;
  for (int fd : fds) {
    auto *t = new uv_tcp_t;
    uv_tcp_init(&loop_, t);
    t->data = this;
    int rc = uv_tcp_open(t, fd);
    if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t *>(t), 1024, on_connection);
    listeners_.push_back(t);
    if (rc != 0) {
      srv_->log(ICAP_LOG_ERROR, std::string("listen failed: ") + uv_strerror(rc));
      return ICAP_EIO;
    }
  }
  return 0;
}

void Worker::run() {
  // A stop that came before this worker was published is seen here.
  if (srv_->stop_requested.load()) begin_drain();
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
  auto *c = new Connection(w);
  if (uv_accept(server, reinterpret_cast<uv_stream_t *>(&c->tcp)) != 0) {
    c->close(0);
    return;
  }
  uint64_t n = w->srv_->connections.fetch_add(1) + 1;
  c->slot = w->conns_.size();
  w->conns_.push_back(c);
  if (n > w->srv_->limits[ICAP_LIMIT_CONNECTIONS]) {
    // Over the hard limit: a short 503 and close. Clients that honour
    // Max-Connections (advertised below this limit) never get here.
    static const char k503[] =
        "ICAP/1.0 503 Service Overloaded\r\nConnection: close\r\n"
        "Encapsulated: null-body=0\r\n\r\n";
    uv_buf_t b = uv_buf_init(const_cast<char *>(k503), sizeof k503 - 1);
    uv_try_write(reinterpret_cast<uv_stream_t *>(&c->tcp), &b, 1);
    w->srv_->log(ICAP_LOG_WARN, "connection limit reached: 503");
    c->close(0);
    return;
  }
  if (!c->attach_tls(w->tls_config(server))) return;
  c->start();
  w->flush_dirty();
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
  dirty_.erase(std::remove(dirty_.begin(), dirty_.end(), c), dirty_.end());
  if (draining_) maybe_finish();
}

void Worker::mark_dirty(Connection *c) { dirty_.push_back(c); }

void Worker::flush_dirty() {
  // Flushing may close connections (which edits dirty_), so take the list.
  while (!dirty_.empty()) {
    std::vector<Connection *> list;
    list.swap(dirty_);
    for (size_t i = 0; i < list.size(); i++) {
      Connection *c = list[i];
      // A connection closed during this loop has dirty == false; its memory
      // lives until its close callbacks, which run in a later loop phase.
      if (c->dirty) c->flush();
    }
  }
}

void Worker::on_async(uv_async_t *a) {
  auto *w = static_cast<Worker *>(a->data);
  w->run_posts();
  if (w->srv_->stop_requested.load() && !w->draining_) w->begin_drain();
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
    p.cb(p.req, p.req->ended ? ICAP_ECANCELED : 0, p.user);
    request_unref(p.req);
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
  req->refs++;
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
        int st = status < 0 || o->req->ended ? ICAP_ECANCELED : 0;
        o->done(o->req, st, o->user);
        request_unref(o->req);
        delete o;
        self->flush_dirty();
        if (self->draining_) self->maybe_finish();
      });
  if (rc != 0) {
    req->refs--;
    delete o;
    return ICAP_ENOMEM;
  }
  offloads_++;
  return 0;
}

void Worker::begin_drain() {
  draining_ = true;
  for (uv_tcp_t *t : listeners_)
    if (!uv_is_closing(reinterpret_cast<uv_handle_t *>(t)))
      uv_close(reinterpret_cast<uv_handle_t *>(t), nullptr);
  std::vector<Connection *> list = conns_;
  for (Connection *c : list) c->drain();
  uv_timer_start(&drain_timer_, on_drain_timeout, srv_->limits[ICAP_LIMIT_DRAIN_TIMEOUT_MS], 0);
  flush_dirty();
  maybe_finish();
}

void Worker::on_drain_timeout(uv_timer_t *t) {
  auto *w = static_cast<Worker *>(t->data);
  std::vector<Connection *> list = w->conns_;
  if (!list.empty())
    w->srv_->log(ICAP_LOG_WARN,
                 "drain timeout: closing " + std::to_string(list.size()) + " connection(s)");
  for (Connection *c : list) c->close(ICAP_ECANCELED);
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
  uv_close(reinterpret_cast<uv_handle_t *>(&async_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t *>(&drain_timer_), nullptr);
}

int worker_post(void *loop_ctx, icap_request *req, icap_post_cb cb, void *user) {
  if (!loop_ctx) return ICAP_ENOTSUP;
  return static_cast<Worker *>(loop_ctx)->post(req, cb, user);
}

int worker_offload(void *loop_ctx, icap_request *req, icap_work_cb work, icap_post_cb done,
                   void *user) {
  if (!loop_ctx) return ICAP_ENOTSUP;
  return static_cast<Worker *>(loop_ctx)->offload(req, work, done, user);
}

}  // namespace icap::detail
