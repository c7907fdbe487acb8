// SPDX-License-Identifier: MIT
/*
 * clamd_client.cpp - the I/O thread of ClamdClient: a libuv loop that
 * connects to clamd, keeps a pool of IDSESSION connections, streams each
 * Scan's pieces as INSTREAM chunks and reads the verdicts. See
 * clamd_client.hpp for the protocol and the threading.
 */
#include "clamd_client.hpp"

#include <uv.h>

#include <netdb.h>
#include <sys/un.h>

#include <algorithm>
#include <arpa/inet.h>
#include <cstring>
#include <set>
#include <stdexcept>
#include <utility>

namespace clamav {

/* ---------------------------------------------------------------- Address */

std::optional<Address> Address::parse(std::string_view spec, std::string& error) {
  Address a;
  a.text = std::string(spec);
  if (spec.rfind("unix:", 0) == 0) {
    a.is_unix = true;
    a.path = std::string(spec.substr(5));
    if (a.path.empty() || a.path.size() >= sizeof(sockaddr_un{}.sun_path)) {
      error = "bad Unix socket path in --clamd " + a.text;
      return std::nullopt;
    }
    return a;
  }
  std::size_t colon = spec.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == spec.size()) {
    error = "--clamd wants unix:PATH or HOST:PORT, not " + a.text;
    return std::nullopt;
  }
  std::string host(spec.substr(0, colon));
  std::string port(spec.substr(colon + 1));
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0 || !res) {
    error = "cannot resolve " + a.text + ": " + gai_strerror(rc);
    return std::nullopt;
  }
  std::memcpy(&a.inet, res->ai_addr, res->ai_addrlen);
  freeaddrinfo(res);
  return a;
}

/* ------------------------------------------------------------- I/O state */

struct Conn {
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_pipe_t pipe;
    uv_tcp_t tcp;
  } h;
  uv_timer_t timer;
  uv_connect_t creq;
  ClamdClient* client = nullptr;
  std::shared_ptr<Scan> scan;                              // the scan it serves
  std::function<void(bool, const std::string&)> on_reply;  // or a VERSION query
  bool connected = false;
  bool session = false;  // IDSESSION sent: may be pooled
  bool closing = false;
  std::size_t writes = 0;  // in flight
  std::string rbuf;
  std::uint64_t idle_since = 0;
  int open_handles = 0;
};

struct Loop {
  uv_loop_t loop;
  uv_async_t async;
  bool async_open = false;

  std::mutex mu;  // guards the three below
  std::vector<std::shared_ptr<Scan>> dirty;
  std::vector<std::function<void()>> tasks;
  bool stopping = false;
  bool stopped = false;  // the loop is gone: nothing may be queued

  // I/O thread only.
  std::vector<Conn*> idle;
  std::set<Conn*> conns;
  std::vector<uv_timer_t*> timers;
  bool shut = false;
};

namespace {

struct WriteReq {
  uv_write_t req;
  char head[4];
  std::string data;
  std::size_t counted = 0;  // bytes of Scan::pending_ this write carries
  Conn* conn = nullptr;
};

std::string uv_text(int err) { return std::string(uv_err_name(err)) + ": " + uv_strerror(err); }

/* "1: stream: Eicar FOUND" -> Verdict. Session replies carry "<id>: ". */
Verdict parse_reply(std::string_view msg) {
  std::size_t i = 0;
  while (i < msg.size() && msg[i] >= '0' && msg[i] <= '9') ++i;
  if (i > 0 && msg.substr(i, 2) == ": ") msg.remove_prefix(i + 2);
  std::string_view body = msg;
  if (body.rfind("stream: ", 0) == 0) body.remove_prefix(8);
  const std::string_view found = " FOUND";
  if (body == "OK") return {Outcome::Clean, ""};
  if (body.size() > found.size() && body.substr(body.size() - found.size()) == found)
    return {Outcome::Infected, std::string(body.substr(0, body.size() - found.size()))};
  return {Outcome::Error, "clamd: " + std::string(msg)};
}

}  // namespace

/* ------------------------------------------------------------------ Scan */

void Scan::write(std::string piece) {
  if (piece.empty()) return;
  {
    std::lock_guard<std::mutex> g(mu_);
    if (done_ || cancelled_ || finish_) return;
    pending_ += piece.size();
    queue_.push_back(std::move(piece));
  }
  client_->kick(self_.lock());
}

void Scan::finish() {
  {
    std::lock_guard<std::mutex> g(mu_);
    if (done_ || finish_) return;
    finish_ = true;
  }
  client_->kick(self_.lock());
}

void Scan::cancel() {
  std::function<void()> drop;
  {
    std::lock_guard<std::mutex> g(mu_);
    if (cancelled_) return;
    cancelled_ = true;
    drop = std::move(waker_);  // destroyed here, on the caller's thread
    waker_ = nullptr;
  }
  client_->kick(self_.lock());
}

std::size_t Scan::pending() const {
  std::lock_guard<std::mutex> g(mu_);
  return pending_;
}

bool Scan::done() const {
  std::lock_guard<std::mutex> g(mu_);
  return done_;
}

Verdict Scan::verdict() const {
  std::lock_guard<std::mutex> g(mu_);
  return verdict_;
}

bool Scan::ready_locked() const { return done_ || (waker_drain_ && pending_ <= low_water_); }

bool Scan::arm(std::function<void()> waker, bool drain, std::size_t low_water) {
  std::lock_guard<std::mutex> g(mu_);
  waker_drain_ = drain;
  low_water_ = low_water;
  if (ready_locked()) return false;
  waker_ = std::move(waker);
  return true;
}

void Scan::complete(Verdict v) {
  std::function<void()> wake;
  {
    std::lock_guard<std::mutex> g(mu_);
    if (done_) return;
    done_ = true;
    verdict_ = std::move(v);
    queue_.clear();
    pending_ = 0;
    wake = std::move(waker_);
    waker_ = nullptr;
  }
  if (wake) wake();
}

void Scan::maybe_wake() {
  std::function<void()> wake;
  {
    std::lock_guard<std::mutex> g(mu_);
    if (!waker_ || !ready_locked()) return;
    wake = std::move(waker_);
    waker_ = nullptr;
  }
  wake();
}

/* The I/O thread's functions; a friend of Scan and ClamdClient. */
struct Io {
  /* ------------------------------------------------- the I/O thread's work */

  static void on_handle_closed(uv_handle_t* h) {
    auto* c = static_cast<Conn*>(h->data);
    if (--c->open_handles == 0) delete c;
  }

  static void on_alloc(uv_handle_t*, std::size_t suggested, uv_buf_t* buf) {
    static thread_local char space[16384];
    (void)suggested;
    *buf = uv_buf_init(space, sizeof(space));
  }

  static void fail_conn(Conn* c, Outcome outcome, const std::string& why) {
    if (c->scan) {
      std::shared_ptr<Scan> s = std::move(c->scan);
      s->conn_ = nullptr;
      s->complete({outcome, why});
    }
    if (c->on_reply) {
      auto cb = std::move(c->on_reply);
      c->on_reply = nullptr;
      cb(false, why);
    }
    conn_close(c);
  }

  static void on_write(uv_write_t* req, int status) {
    std::unique_ptr<WriteReq> w(static_cast<WriteReq*>(req->data));
    Conn* c = w->conn;
    c->writes--;
    if (c->closing) return;
    if (status < 0) {
      fail_conn(c, Outcome::Error, "writing to clamd: " + uv_text(status));
      return;
    }
    if (c->scan && w->counted) {
      {
        std::lock_guard<std::mutex> g(c->scan->mu_);
        c->scan->pending_ -= std::min(c->scan->pending_, w->counted);
      }
      c->scan->maybe_wake();
    }
    conn_rearm(c);
  }

  /* Write `data` (with a 4-byte length in front when `framed`). */
  static bool conn_write(Conn* c, std::string data, bool framed, std::size_t counted) {
    auto w = std::make_unique<WriteReq>();
    w->conn = c;
    w->counted = counted;
    w->data = std::move(data);
    uv_buf_t bufs[2];
    unsigned n = 0;
    if (framed) {
      uint32_t len = htonl(static_cast<uint32_t>(w->data.size()));
      std::memcpy(w->head, &len, 4);
      bufs[n++] = uv_buf_init(w->head, 4);
    }
    if (!w->data.empty()) bufs[n++] = uv_buf_init(w->data.data(), w->data.size());
    w->req.data = w.get();
    int rc = uv_write(&w->req, &c->h.stream, bufs, n, on_write);
    if (rc < 0) {
      fail_conn(c, Outcome::Error, "writing to clamd: " + uv_text(rc));
      return false;
    }
    c->writes++;
    w.release();
    return true;
  }

  /* Move the scan's queued pieces onto the socket (once connected). */
  static void conn_flush(Conn* c) {
    std::shared_ptr<Scan> s = c->scan;
    if (!s || !c->connected || c->closing) return;
    std::deque<std::string> pieces;
    bool finish = false;
    {
      std::lock_guard<std::mutex> g(s->mu_);
      pieces.swap(s->queue_);
      finish = s->finish_;
    }
    for (auto& p : pieces) {
      std::size_t n = p.size();
      // clamd takes chunks of any length up to its StreamMaxLength.
      if (!conn_write(c, std::move(p), true, n)) return;
    }
    if (finish && !s->end_sent_) {
      s->end_sent_ = true;
      if (!conn_write(c, std::string(), true, 0)) return;  // length 0: end
    }
    conn_rearm(c);
  }

  static void on_timeout(uv_timer_t* t) {
    auto* c = static_cast<Conn*>(t->data);
    std::string ms = std::to_string(c->client->options().timeout_ms);
    fail_conn(c, Outcome::Timeout, "clamd made no progress for " + ms + " ms");
  }

  /* The timer runs while something waits on clamd: the connect, a write, or
   * the verdict after the end of the stream; not while the scan waits for
   * more of the body from the ICAP client. Each call restarts it. */
  static void conn_rearm(Conn* c) {
    if (c->closing) return;
    bool waiting =
        c->on_reply || (c->scan && (!c->connected || c->writes > 0 || c->scan->end_sent_));
    if (waiting)
      uv_timer_start(&c->timer, on_timeout, c->client->options().timeout_ms, 0);
    else
      uv_timer_stop(&c->timer);
  }

  static void pool_put(Conn* c) {
    Loop* L = loop_of(c);
    const auto& opt = c->client->options();
    if (!c->session || L->shut || L->idle.size() >= opt.pool_max) {
      conn_close(c);
      return;
    }
    c->rbuf.clear();
    c->idle_since = uv_now(&L->loop);
    uv_timer_stop(&c->timer);
    L->idle.push_back(c);
  }

  static void on_reply(Conn* c, std::string msg) {
    if (c->on_reply) {
      auto cb = std::move(c->on_reply);
      c->on_reply = nullptr;
      cb(true, msg);
      conn_close(c);
      return;
    }
    if (!c->scan) {  // an idle pooled connection has nothing to say
      conn_close(c);
      return;
    }
    std::shared_ptr<Scan> s = std::move(c->scan);
    s->conn_ = nullptr;
    Verdict v = parse_reply(msg);
    // A reply before the end of the stream is an error ("INSTREAM size limit
    // exceeded"); clamd closes that connection.
    bool reusable = s->end_sent_ && v.outcome != Outcome::Error;
    if (!s->end_sent_ && v.outcome != Outcome::Error) v = {Outcome::Error, "clamd: " + msg};
    s->complete(std::move(v));
    if (reusable)
      pool_put(c);
    else
      conn_close(c);
  }

  static void on_read(uv_stream_t* st, ssize_t nread, const uv_buf_t* buf) {
    auto* c = static_cast<Conn*>(st->data);
    if (nread < 0) {
      fail_conn(c, Outcome::Error,
                nread == UV_EOF ? std::string("clamd closed the connection")
                                : "reading from clamd: " + uv_text(static_cast<int>(nread)));
      return;
    }
    if (nread == 0) return;
    c->rbuf.append(buf->base, static_cast<std::size_t>(nread));
    if (c->rbuf.size() > 64 * 1024) {  // no clamd reply is that long
      fail_conn(c, Outcome::Error, "clamd sent an overlong reply");
      return;
    }
    std::size_t z;
    while (!c->closing && (z = c->rbuf.find('\0')) != std::string::npos) {
      std::string msg = c->rbuf.substr(0, z);
      c->rbuf.erase(0, z + 1);
      on_reply(c, std::move(msg));
      if (c->closing || (!c->scan && !c->on_reply)) break;  // closed or pooled
    }
    if (!c->closing) conn_rearm(c);
  }

  static void on_connect(uv_connect_t* req, int status) {
    auto* c = static_cast<Conn*>(req->data);
    if (c->closing) return;
    if (status < 0) {
      fail_conn(c, Outcome::Error,
                "cannot connect to clamd at " + c->client->options().address.text + ": " +
                    uv_text(status));
      return;
    }
    c->connected = true;
    int rc = uv_read_start(&c->h.stream, on_alloc, on_read);
    if (rc < 0) {
      fail_conn(c, Outcome::Error, "reading from clamd: " + uv_text(rc));
      return;
    }
    if (c->on_reply) {
      conn_write(c, std::string("zVERSION\0", 9), false, 0);
      conn_rearm(c);
      return;
    }
    c->session = true;
    if (!conn_write(c, std::string("zIDSESSION\0zINSTREAM\0", 21), false, 0)) return;
    conn_flush(c);
  }

  /* A new connection to clamd; the connect completes in on_connect. On an
   * immediate failure returns nullptr with `error` set. */
  static Conn* conn_open(ClamdClient* client, Loop* L, std::string& error) {
    auto* c = new Conn();
    c->client = client;
    const Address& a = client->options().address;
    int rc = a.is_unix ? uv_pipe_init(&L->loop, &c->h.pipe, 0) : uv_tcp_init(&L->loop, &c->h.tcp);
    if (rc < 0) {
      delete c;
      error = "cannot create a socket for clamd: " + uv_text(rc);
      return nullptr;
    }
    c->h.handle.data = c;
    c->open_handles++;
    uv_timer_init(&L->loop, &c->timer);
    c->timer.data = c;
    c->open_handles++;
    c->creq.data = c;
    L->conns.insert(c);
    if (a.is_unix) {
      uv_pipe_connect(&c->creq, &c->h.pipe, a.path.c_str(), on_connect);
    } else {
      rc = uv_tcp_connect(&c->creq, &c->h.tcp, reinterpret_cast<const sockaddr*>(&a.inet),
                          on_connect);
      if (rc < 0) {
        error = "cannot connect to clamd at " + a.text + ": " + uv_text(rc);
        conn_close(c);
        return nullptr;
      }
    }
    return c;
  }

  static Loop* loop_of(Conn* c) {
    return static_cast<Loop*>(uv_handle_get_loop(&c->h.handle)->data);
  }

  static void conn_close(Conn* c) {
    if (c->closing) return;
    c->closing = true;
    Loop* L = loop_of(c);
    L->conns.erase(c);
    L->idle.erase(std::remove(L->idle.begin(), L->idle.end(), c), L->idle.end());
    if (c->scan) {
      c->scan->conn_ = nullptr;
      c->scan.reset();
    }
    uv_close(&c->h.handle, on_handle_closed);
    uv_close(reinterpret_cast<uv_handle_t*>(&c->timer), on_handle_closed);
  }

  /* I/O thread: bring one scan forward after news from the handler side. */
  static void service(ClamdClient* client, Loop* L, const std::shared_ptr<Scan>& s) {
    bool cancelled;
    {
      std::lock_guard<std::mutex> g(s->mu_);
      cancelled = s->cancelled_;
      if (s->done_) {
        s->queue_.clear();
        if (!cancelled) return;
      }
    }
    if (cancelled) {
      if (Conn* c = s->conn_) conn_close(c);  // mid-stream: never reusable
      s->complete({Outcome::Error, "cancelled"});
      return;
    }
    if (!s->started_) {
      s->started_ = true;
      Conn* c = nullptr;
      while (!L->idle.empty()) {
        Conn* p = L->idle.back();
        L->idle.pop_back();
        if (uv_now(&L->loop) - p->idle_since < client->options().pool_idle_ms) {
          c = p;
          break;
        }
        conn_close(p);  // clamd may be about to close it (IdleTimeout)
      }
      if (c) {
        c->scan = s;
        s->conn_ = c;
        if (!conn_write(c, std::string("zINSTREAM\0", 10), false, 0)) return;
      } else {
        std::string error;
        c = conn_open(client, L, error);
        if (!c) {
          s->complete({Outcome::Error, error});
          return;
        }
        c->scan = s;
        s->conn_ = c;
        conn_rearm(c);
        return;  // on_connect flushes
      }
    }
    if (s->conn_) conn_flush(s->conn_);
  }

  struct VersionTimer {
    ClamdClient* client;
    std::function<void(bool, const std::string&)> cb;
  };

  static void shutdown_all(Loop* L) {
    L->shut = true;
    std::vector<Conn*> all(L->conns.begin(), L->conns.end());
    for (Conn* c : all) fail_conn(c, Outcome::Error, "shutting down");
    for (uv_timer_t* t : L->timers)
      uv_close(reinterpret_cast<uv_handle_t*>(t), [](uv_handle_t* h) {
        delete static_cast<VersionTimer*>(h->data);
        delete reinterpret_cast<uv_timer_t*>(h);
      });
    L->timers.clear();
    uv_close(reinterpret_cast<uv_handle_t*>(&L->async), nullptr);
  }
};

/* ----------------------------------------------------------- ClamdClient */

ClamdClient::ClamdClient(Options opt) : opt_(std::move(opt)), loop_(std::make_unique<Loop>()) {}

ClamdClient::~ClamdClient() { stop(); }

std::shared_ptr<Scan> ClamdClient::scan() {
  std::shared_ptr<Scan> s(new Scan(this));
  s->self_ = s;
  kick(s);  // connect now, while the body is still on its way
  return s;
}

void ClamdClient::kick(const std::shared_ptr<Scan>& s) {
  if (!s) return;
  {
    std::lock_guard<std::mutex> g(loop_->mu);
    if (!loop_->stopped && !loop_->stopping) {
      loop_->dirty.push_back(s);
      uv_async_send(&loop_->async);
      return;
    }
  }
  s->complete({Outcome::Error, "shutting down"});
}

void ClamdClient::start() {
  Loop* L = loop_.get();
  if (uv_loop_init(&L->loop) < 0) throw std::runtime_error("uv_loop_init failed");
  L->loop.data = L;
  L->async.data = this;
  uv_async_init(&L->loop, &L->async, [](uv_async_t* a) {
    auto* self = static_cast<ClamdClient*>(a->data);
    Loop* L = self->loop_.get();
    if (L->shut) return;
    std::vector<std::shared_ptr<Scan>> dirty;
    std::vector<std::function<void()>> tasks;
    bool stopping;
    {
      std::lock_guard<std::mutex> g(L->mu);
      dirty.swap(L->dirty);
      tasks.swap(L->tasks);
      stopping = L->stopping;
    }
    for (auto& t : tasks) t();
    if (stopping) {
      for (auto& s : dirty) s->complete({Outcome::Error, "shutting down"});
      Io::shutdown_all(L);
      return;
    }
    for (auto& s : dirty) Io::service(self, L, s);
  });
  L->async_open = true;
  thread_ = std::thread([L] { uv_run(&L->loop, UV_RUN_DEFAULT); });
}

void ClamdClient::stop() {
  if (!loop_ || !loop_->async_open) return;
  {
    std::lock_guard<std::mutex> g(loop_->mu);
    if (loop_->stopped) return;
    loop_->stopping = true;
    uv_async_send(&loop_->async);
  }
  if (thread_.joinable()) thread_.join();
  {
    std::lock_guard<std::mutex> g(loop_->mu);
    loop_->stopped = true;
  }
  uv_loop_close(&loop_->loop);
}

void ClamdClient::version(std::function<void(bool, const std::string&)> cb,
                          std::uint64_t period_ms) {
  auto task = [this, cb = std::move(cb), period_ms]() mutable {
    Loop* L = loop_.get();
    auto* t = new uv_timer_t;
    uv_timer_init(&L->loop, t);
    t->data = new Io::VersionTimer{this, std::move(cb)};
    L->timers.push_back(t);
    uv_timer_start(
        t,
        [](uv_timer_t* tm) {
          auto* vt = static_cast<Io::VersionTimer*>(tm->data);
          Loop* L = vt->client->loop_.get();
          std::string error;
          Conn* c = Io::conn_open(vt->client, L, error);
          if (c) {
            c->on_reply = vt->cb;
            Io::conn_rearm(c);
          } else {
            vt->cb(false, error);
          }
          if (uv_timer_get_repeat(tm) == 0) {  // one-shot: done with it
            L->timers.erase(std::remove(L->timers.begin(), L->timers.end(), tm), L->timers.end());
            delete vt;
            uv_close(reinterpret_cast<uv_handle_t*>(tm),
                     [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
          }
        },
        0, period_ms);
  };
  std::lock_guard<std::mutex> g(loop_->mu);
  if (loop_->stopped || loop_->stopping) return;
  loop_->tasks.push_back(std::move(task));
  uv_async_send(&loop_->async);
}

}  // namespace clamav
