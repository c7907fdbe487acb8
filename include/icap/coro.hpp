// SPDX-License-Identifier: MIT
/*
 * libicap C++20 coroutine support (header-only, on top of icap/icap.hpp).
 *
 * A handler may be a coroutine returning icap::Task and taking icap::Request
 * BY VALUE. It runs on its connection's loop thread like any handler, and
 * every co_await suspends it without blocking the loop:
 *
 *   srv.service("upper").respmod([](icap::Request req) -> icap::Task {
 *     if (!req.has_body()) { req.no_adaptation_required(); co_return; }
 *     std::string body;
 *     while (true) {
 *       icap::Chunk c = co_await req.read_chunk();     // next piece, or end
 *       if (c.end()) break;
 *       body += c.data();
 *     }
 *     auto verdict = co_await req.offload([&] { return scan(body); });
 *     ...                                              // back on the loop
 *   });
 *
 * Rules:
 *  - `co_await req.read_chunk()` gives an icap::Chunk that owns its bytes.
 *    Data and end are never mixed: a chunk with end() or preview_end() set
 *    is always empty, so `if (c.end()) break;` before using the data is safe.
 *    After preview_end() the next read_chunk() sends 100 Continue. Reading a
 *    request without a body (or past its end) throws icap::Error(ICAP_ESTATE).
 *  - `co_await req.offload(work)` runs work() on the thread pool and returns
 *    its result (or rethrows its exception) on the loop thread.
 *  - When the client goes away (or a timeout or server stop ends the
 *    transaction), an awaiting coroutine is resumed with icap::Error carrying
 *    ICAP_ECONNRESET, ICAP_ETIMEDOUT or ICAP_ECANCELED. It is never resumed
 *    on a freed request: an icap::Task holds icap_request_ref() on the
 *    Request parameter from its start until it finishes, and every awaiter
 *    holds one more while suspended. After such an error the Request stays
 *    readable; answering it throws icap::Error or is dropped by libicap
 *    (the client is gone either way).
 *  - An exception that leaves the coroutine is logged through the server's
 *    log callback and fails the transaction (icap_request_abort: 500 if no
 *    response started, then close). Routine endings (the errors above) are
 *    only logged, at debug level: the transaction is over already.
 *  - icap::Task starts at once (the handler call runs the coroutine up to its
 *    first suspension) and may be discarded: it then finishes on its own.
 *    A Task may also be co_awaited by another Task (sub-routines): the
 *    awaiting coroutine resumes when it finishes and receives its exception.
 *  - Capture nothing that dies with the handler call: lambda captures are
 *    fine (the Service keeps the lambda), references to locals of the caller
 *    are not. Do not take the Request by reference.
 *
 * This header needs C++20 coroutines. Without them it defines only
 * ICAP_HAS_COROUTINES as 0 (with them, as 1).
 */
#ifndef ICAP_CORO_HPP
#define ICAP_CORO_HPP

#include "icap/icap.hpp"

#if defined(__cpp_impl_coroutine) && defined(__has_include)
#if __has_include(<coroutine>)
#define ICAP_HAS_COROUTINES 1
#endif
#endif
#ifndef ICAP_HAS_COROUTINES
#define ICAP_HAS_COROUTINES 0
#endif

#if ICAP_HAS_COROUTINES

#include <coroutine>
#include <exception>
#include <string>
#include <string_view>
#include <utility>

namespace icap {

/* One body read in a coroutine; owns its bytes. */
class Chunk : public detail::ChunkStatus {
 public:
  Chunk() noexcept = default;
  Chunk(int status, std::string data) noexcept : ChunkStatus(status), data_(std::move(data)) {}

  std::string_view data() const noexcept { return data_; }
  std::size_t size() const noexcept { return data_.size(); }
  bool empty() const noexcept { return data_.empty(); }
  /* The bytes, to keep or modify without another copy. */
  std::string& bytes() & noexcept { return data_; }
  std::string take() && noexcept { return std::move(data_); }

 private:
  std::string data_;
};

/* The return type of coroutine handlers (see the top of this file). */
class Task {
 public:
  struct promise_type;
  using handle_type = std::coroutine_handle<promise_type>;

  struct FinalAwaiter {
    bool await_ready() const noexcept { return false; }
    std::coroutine_handle<> await_suspend(handle_type h) noexcept {
      promise_type& p = h.promise();
      p.done = true;
      if (p.continuation) return p.continuation;  // an awaiting Task
      if (p.detached) {                           // nobody will look: finish
        if (p.error) p.report();
        h.destroy();
      }
      return std::noop_coroutine();
    }
    void await_resume() const noexcept {}
  };

  struct promise_type {
    /* The coroutine's arguments: the first icap::Request among them is the
     * transaction this Task answers (referenced for the Task's life). */
    template <class... Args>
    explicit promise_type(Args&... args) noexcept {
      (grab(args), ...);
      if (req) icap_request_ref(req);
    }
    ~promise_type() {
      if (req) icap_request_unref(req);
    }
    promise_type(const promise_type&) = delete;
    promise_type& operator=(const promise_type&) = delete;

    Task get_return_object() noexcept { return Task(handle_type::from_promise(*this)); }
    std::suspend_never initial_suspend() const noexcept { return {}; }
    FinalAwaiter final_suspend() const noexcept { return {}; }
    void return_void() const noexcept {}
    void unhandled_exception() noexcept { error = std::current_exception(); }

    /* Log the exception and fail the transaction (unless it only says
     * that the transaction is over). */
    void report() noexcept {
      std::exception_ptr e = std::exchange(error, nullptr);
      try {
        std::rethrow_exception(e);
      } catch (...) {
        detail::fail_request(state, req, "coroutine handler");
      }
    }

    icap_request* req = nullptr;
    detail::ServerState* state = nullptr;
    std::coroutine_handle<> continuation;
    std::exception_ptr error;
    bool detached = false;
    bool done = false;

   private:
    void grab(const Request& r) noexcept {
      if (!req && r.native_handle()) {
        req = r.native_handle();
        state = r.state();
      }
    }
    template <class T>
    void grab(const T&) noexcept {}
  };

  Task(Task&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  Task& operator=(Task&& o) noexcept {
    if (this != &o) {
      release();
      h_ = std::exchange(o.h_, {});
    }
    return *this;
  }
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;
  ~Task() { release(); }

  /* True once the coroutine ran to its end. */
  bool done() const noexcept { return !h_ || h_.promise().done; }

  /* co_await a Task from another coroutine. */
  bool await_ready() const noexcept { return done(); }
  void await_suspend(std::coroutine_handle<> awaiting) noexcept {
    h_.promise().continuation = awaiting;
  }
  void await_resume() {
    if (h_ && h_.promise().error)
      std::rethrow_exception(std::exchange(h_.promise().error, nullptr));
  }

 private:
  explicit Task(handle_type h) noexcept : h_(h) {}
  void release() noexcept {
    if (!h_) return;
    handle_type h = std::exchange(h_, {});
    promise_type& p = h.promise();
    if (p.done) {
      if (p.error) p.report();  // nobody awaited it: report here
      h.destroy();
    } else {
      p.detached = true;  // FinalAwaiter destroys the frame
    }
  }
  handle_type h_;
};

namespace detail {

/* co_await req.read_chunk() */
struct ChunkAwaiter {
  explicit ChunkAwaiter(const Request& r) noexcept : req(r) {}
  ChunkAwaiter(const ChunkAwaiter&) = delete;
  ChunkAwaiter& operator=(const ChunkAwaiter&) = delete;

  bool await_ready() noexcept {
    // An end held back from the previous read is delivered at once.
    void* d = icap_request_get_data(req.native_handle());
    if (d && d != &ended_marker) {
      auto* ctx = static_cast<RequestCtx*>(d);
      if (ctx->has_pending) {
        ctx->has_pending = false;
        result = Chunk(static_cast<int>(ctx->pending_flags), std::string());
        return true;
      }
    }
    return false;
  }

  bool await_suspend(std::coroutine_handle<> h) noexcept {
    handle = h;
    icap_request_ref(req.native_handle());
    reffed = true;
    in_suspend = true;
    int rc = icap_request_read_chunk(req.native_handle(), &callback, this);
    in_suspend = false;
    if (rc < 0) {
      start_rc = rc;
      return false;
    }
    return !completed;  // the callback may have run already
  }

  Chunk await_resume() {
    if (reffed) icap_request_unref(req.native_handle());
    if (start_rc < 0) throw Error(start_rc, "read_chunk");
    if (result.error()) throw Error(result.status(), "read_chunk");
    return std::move(result);
  }

  static void callback(icap_request*, int status, const char* data, std::size_t len,
                       void* user) noexcept {
    auto* self = static_cast<ChunkAwaiter*>(user);
    self->deliver(status, data, data ? len : 0);
    self->completed = true;
    if (!self->in_suspend) self->handle.resume();  // `self` may die here
  }

  void deliver(int status, const char* data, std::size_t len) noexcept {
    try {
      const int endish = ICAP_BODY_END | ICAP_BODY_PREVIEW_END;
      if (status >= 0 && (status & endish) && len > 0) {
        // Give the data now and the end on the next read.
        RequestCtx* ctx = ctx_of(req.native_handle(), req.state(), true);
        if (ctx) {
          ctx->pending_flags = static_cast<unsigned>(status);
          ctx->has_pending = true;
          result = Chunk(0, std::string(data, len));
          return;
        }
      }
      result = Chunk(status, status >= 0 ? std::string(data, len) : std::string());
    } catch (...) {
      result = Chunk(ICAP_ENOMEM, std::string());
    }
  }

  Request req;
  Chunk result;
  std::coroutine_handle<> handle;
  int start_rc = 0;
  bool reffed = false;
  bool in_suspend = false;
  bool completed = false;
};

/* co_await req.offload(work) */
template <class Work>
struct OffloadAwaiter {
  using R = std::invoke_result_t<Work&>;

  OffloadAwaiter(const Request& r, Work w) : req(r), work(std::move(w)) {}
  OffloadAwaiter(const OffloadAwaiter&) = delete;
  OffloadAwaiter& operator=(const OffloadAwaiter&) = delete;

  bool await_ready() const noexcept { return false; }

  bool await_suspend(std::coroutine_handle<> h) noexcept {
    handle = h;
    icap_request_ref(req.native_handle());
    reffed = true;
    in_suspend = true;
    int rc = icap_request_offload(req.native_handle(), &work_cb, &done_cb, this);
    in_suspend = false;
    if (rc < 0) {
      start_rc = rc;
      return false;
    }
    return !completed;
  }

  R await_resume() {
    if (reffed) icap_request_unref(req.native_handle());
    if (start_rc < 0) throw Error(start_rc, "offload");
    if (status < 0) throw Error(status, "offload");
    if (error) std::rethrow_exception(error);
    if constexpr (!std::is_void_v<R>) return std::move(*result.value);
  }

  // Thread pool: only the work, no request access.
  static void work_cb(void* user) noexcept {
    run_offload_work(*static_cast<OffloadAwaiter*>(user));
  }
  // Loop thread.
  static void done_cb(icap_request*, int st, void* user) noexcept {
    auto* self = static_cast<OffloadAwaiter*>(user);
    self->status = st;
    self->completed = true;
    if (!self->in_suspend) self->handle.resume();
  }

  Request req;
  Work work;
  Slot<R> result;
  std::exception_ptr error;
  std::coroutine_handle<> handle;
  int status = 0;
  int start_rc = 0;
  bool reffed = false;
  bool in_suspend = false;
  bool completed = false;
};

}  // namespace detail

inline detail::ChunkAwaiter Request::read_chunk() { return detail::ChunkAwaiter(*this); }

template <class Work>
detail::OffloadAwaiter<std::decay_t<Work>> Request::offload(Work&& work) {
  static_assert(std::is_invocable_v<std::decay_t<Work>&>,
                "offload work must be callable as work()");
  return detail::OffloadAwaiter<std::decay_t<Work>>(*this,
                                                    std::decay_t<Work>(std::forward<Work>(work)));
}

}  // namespace icap

#endif  // ICAP_HAS_COROUTINES
#endif  // ICAP_CORO_HPP
