// SPDX-License-Identifier: MIT
/*
 * libicap C++ wrapper - header-only, C++17, built only on the C ABI in
 * icap/icap.h (libicap.so exports no C++ symbols, so this header works with
 * any C++ compiler and standard library).
 *
 *   icap::Server srv;
 *   srv.listen("127.0.0.1", 1344).workers(4);
 *   srv.service("echo")
 *       .reqmod([](icap::Request& req) { req.no_adaptation_required(); })
 *       .respmod([](icap::Request& req) { req.no_adaptation_required(); });
 *   srv.run();                      // until srv.stop() (signal-safe)
 *
 * Ownership and threading follow icap.h:
 *  - icap::Server owns an icap_server (move-only; the destructor frees it and
 *    must not run while run() is executing). icap::Service is owned by its
 *    Server and handed out by reference; the reference stays valid until the
 *    Server is destroyed, also across moves of the Server.
 *  - icap::Request is a non-owning view over an icap_request (two pointers,
 *    cheap to copy). It is valid from the handler call until the transaction's
 *    done callback has run, or longer while an icap::RequestRef (or an
 *    icap::Task coroutine, see icap/coro.hpp) holds a reference. Every
 *    Request member must be called on the request's loop thread, like the C
 *    functions (the only exception is RequestRef::post()).
 *  - std::string_view values returned by Request accessors are borrowed from
 *    the request: valid as long as the request is.
 *
 * Errors: a C function that fails makes the wrapper throw icap::Error, which
 * carries the negative ICAP_E* code and icap_strerror(). Accessors that
 * cannot fail are noexcept.
 *
 * No exception ever crosses into C. Every function the C library calls back
 * (handlers, body, done, offload and post callbacks, the log callback) is a
 * noexcept trampoline that catches everything:
 *  - a handler that throws makes the C handler return ICAP_EHANDLER, so the
 *    client gets 500 (if no response started yet) and the connection is
 *    closed;
 *  - a callback that throws later (body, offload, post) calls
 *    icap_request_abort(req, ICAP_EHANDLER), with the same effect (not for
 *    an icap::Error saying the transaction is already over:
 *    ICAP_ECONNRESET, ICAP_ETIMEDOUT, ICAP_ECANCELED, logged at debug level);
 *  - a done callback that throws is only logged (the transaction is over);
 *  - the exception text is logged through the Server's log callback at
 *    ICAP_LOG_ERROR (when a log callback is set).
 *
 * The wrapper keeps its own per-transaction state (done callback, push body
 * callback, Request::data()) in the C request's user-data slot, so code that
 * uses this header must not call icap_request_set_data() or
 * icap_request_on_done() on native handles of requests it handles.
 *
 * C++20 coroutine handlers (co_await req.read_chunk()) are in icap/coro.hpp.
 */
#ifndef ICAP_ICAP_HPP
#define ICAP_ICAP_HPP

#include "icap/icap.h"

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#if __cplusplus < 201703L && !(defined(_MSVC_LANG) && _MSVC_LANG >= 201703L)
#error "icap/icap.hpp needs C++17 or newer"
#endif

namespace icap {

class Request;
class RequestRef;
class Service;
class Server;

/* ------------------------------------------------------------- errors --- */

/* A failed libicap call: code() is the negative ICAP_E* code. */
class Error : public std::runtime_error {
 public:
  explicit Error(int code, const std::string& context = std::string())
      : std::runtime_error(make_message(code, context)), code_(code) {}

  int code() const noexcept { return code_; }
  /* The static icap_strerror() text, without the context. */
  const char* message() const noexcept { return icap_strerror(code_); }
  /* "ICAP_ECONNRESET" */
  const char* name() const noexcept { return icap_err_name(code_); }

 private:
  static std::string make_message(int code, const std::string& context) {
    std::string m;
    if (!context.empty()) {
      m += context;
      m += ": ";
    }
    m += icap_strerror(code);
    m += " (";
    m += icap_err_name(code);
    m += ')';
    return m;
  }
  int code_;
};

namespace detail {

inline void check(int rc, const char* what) {
  if (rc < 0) throw Error(rc, what);
}

/* A NUL-terminated string for the C API, made from whatever the caller has:
 * const char* and std::string are passed through, a string_view is copied. */
class CStr {
 public:
  CStr(const char* s) : p_(s ? s : "") {}                  // NOLINT
  CStr(const std::string& s) : p_(s.c_str()) {}            // NOLINT
  CStr(std::string_view s) : tmp_(s), p_(tmp_.c_str()) {}  // NOLINT
  CStr(const CStr&) = delete;
  CStr& operator=(const CStr&) = delete;
  const char* c_str() const noexcept { return p_; }

 private:
  std::string tmp_;
  const char* p_;
};

inline std::string_view sv(const char* s) noexcept {
  return s ? std::string_view(s) : std::string_view();
}

inline char ascii_lower(char c) noexcept {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

}  // namespace detail

/* Case-insensitive ASCII comparison, as header names need. */
inline bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (detail::ascii_lower(a[i]) != detail::ascii_lower(b[i])) return false;
  return true;
}

/* ------------------------------------------------------------ headers --- */

/* An ordered, case-insensitive multimap of header fields: pyicap's "dict of
 * lists". Fields keep their arrival order and original spelling; lookups
 * ignore case; repeated names keep all their values in order.
 *
 *   h.get_all("Allow")   every value of Allow, in order
 *   h["Host"]            the first value of Host ("" if absent)
 *   h.get("Host")        the first value, or std::nullopt
 *   for (auto& [name, value] : h) ...   every field in order
 */
class Headers {
 public:
  struct Field {
    std::string name;
    std::string value;
    friend bool operator==(const Field& a, const Field& b) {
      return iequals(a.name, b.name) && a.value == b.value;
    }
  };
  using value_type = Field;
  using const_iterator = std::vector<Field>::const_iterator;
  using iterator = const_iterator;

  Headers() = default;
  Headers(std::initializer_list<Field> fields) : fields_(fields) {}

  /* Append a field (repeated names are kept). */
  Headers& add(std::string name, std::string value) {
    fields_.push_back(Field{std::move(name), std::move(value)});
    return *this;
  }
  /* Replace every field called `name` with one field (appended if new). */
  Headers& set(std::string name, std::string value) {
    for (auto it = fields_.begin(); it != fields_.end(); ++it) {
      if (iequals(it->name, name)) {
        it->value = std::move(value);
        ++it;
        while (it != fields_.end()) {
          if (iequals(it->name, name))
            it = fields_.erase(it);
          else
            ++it;
        }
        return *this;
      }
    }
    return add(std::move(name), std::move(value));
  }
  /* Remove every field called `name`; returns how many were removed. */
  std::size_t erase(std::string_view name) {
    std::size_t before = fields_.size();
    std::vector<Field> kept;
    kept.reserve(before);
    for (auto& f : fields_)
      if (!iequals(f.name, name)) kept.push_back(std::move(f));
    fields_.swap(kept);
    return before - fields_.size();
  }
  void clear() noexcept { fields_.clear(); }

  bool contains(std::string_view name) const noexcept {
    for (const auto& f : fields_)
      if (iequals(f.name, name)) return true;
    return false;
  }
  std::size_t count(std::string_view name) const noexcept {
    std::size_t n = 0;
    for (const auto& f : fields_)
      if (iequals(f.name, name)) ++n;
    return n;
  }
  /* The n-th (0-based) value of `name`, or std::nullopt. */
  std::optional<std::string_view> get(std::string_view name, std::size_t n = 0) const noexcept {
    for (const auto& f : fields_)
      if (iequals(f.name, name) && n-- == 0) return std::string_view(f.value);
    return std::nullopt;
  }
  /* Every value of `name`, in order (empty if absent). */
  std::vector<std::string_view> get_all(std::string_view name) const {
    std::vector<std::string_view> out;
    for (const auto& f : fields_)
      if (iequals(f.name, name)) out.emplace_back(f.value);
    return out;
  }
  /* The first value of `name`, or "" when absent. */
  std::string_view operator[](std::string_view name) const noexcept {
    auto v = get(name);
    return v ? *v : std::string_view();
  }
  /* Distinct names in order of first appearance, spelled as first seen. */
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& f : fields_) {
      bool seen = false;
      for (const auto& n : out)
        if (iequals(n, f.name)) {
          seen = true;
          break;
        }
      if (!seen) out.push_back(f.name);
    }
    return out;
  }

  std::size_t size() const noexcept { return fields_.size(); }
  bool empty() const noexcept { return fields_.empty(); }
  const_iterator begin() const noexcept { return fields_.begin(); }
  const_iterator end() const noexcept { return fields_.end(); }
  const Field& at(std::size_t i) const { return fields_.at(i); }

  friend bool operator==(const Headers& a, const Headers& b) { return a.fields_ == b.fields_; }
  friend bool operator!=(const Headers& a, const Headers& b) { return !(a == b); }

 private:
  std::vector<Field> fields_;
};

/* ---------------------------------------------------- small value types --- */

/* The encapsulated HTTP request line (pyicap's enc_req): method, URI and
 * version; also indexable like pyicap's list (r[1] is the URI). */
struct RequestLine {
  std::string_view method;
  std::string_view uri;
  std::string_view version;
  std::string_view operator[](std::size_t i) const noexcept {
    return i == 0 ? method : i == 1 ? uri : i == 2 ? version : std::string_view();
  }
  bool empty() const noexcept { return method.empty() && uri.empty(); }
};

/* The encapsulated HTTP status line (pyicap's enc_res_status). code is -1
 * when the request carries no HTTP response. */
struct StatusLine {
  std::string_view version;
  int code = -1;
  std::string_view reason;
  bool empty() const noexcept { return code < 0; }
};

namespace detail {
/* Shared accessors of a body read result (the C status word). */
class ChunkStatus {
 public:
  explicit ChunkStatus(int status = 0) noexcept : status_(status) {}
  /* The raw status: < 0 an ICAP_E* error, else ICAP_BODY_* flags. */
  int status() const noexcept { return status_; }
  bool ok() const noexcept { return status_ >= 0; }
  /* The read failed (client gone, timeout, malformed body...). */
  bool error() const noexcept { return status_ < 0; }
  /* The whole body has been read: nothing more will come. */
  bool end() const noexcept {
    return status_ >= 0 && (status_ & ICAP_BODY_END) && !(status_ & ICAP_BODY_PREVIEW_END);
  }
  /* The preview is over without ieof: the rest of the body follows once
   * 100 Continue is sent (cont(), or implicitly by the next read_chunk()). */
  bool preview_end() const noexcept { return status_ >= 0 && (status_ & ICAP_BODY_PREVIEW_END); }
  /* The preview ended with ieof: it held the whole body (end() is true too). */
  bool ieof() const noexcept { return status_ >= 0 && (status_ & ICAP_BODY_IEOF); }

 protected:
  int status_;
};
}  // namespace detail

/* One body read, as given to callbacks: data() is borrowed from libicap and
 * valid only during the callback. An end()/preview_end() piece may carry the
 * last bytes too, so use data() before testing end(). */
class ChunkView : public detail::ChunkStatus {
 public:
  ChunkView(int status, std::string_view data) noexcept : ChunkStatus(status), data_(data) {}
  std::string_view data() const noexcept { return data_; }
  std::size_t size() const noexcept { return data_.size(); }
  bool empty() const noexcept { return data_.empty(); }

 private:
  std::string_view data_;
};

/* ------------------------------------------------------------- detail --- */

namespace detail {

/* Server-wide state the trampolines need: the log callback. Lives on the
 * heap, owned by icap::Server, so its address survives moves of the Server. */
struct LogBase {
  virtual ~LogBase() = default;
  virtual void call(icap_log_level level, std::string_view msg) = 0;
};
template <class F>
struct LogImpl final : LogBase {
  explicit LogImpl(F f) : fn(std::move(f)) {}
  void call(icap_log_level level, std::string_view msg) override { std::invoke(fn, level, msg); }
  F fn;
};

struct ServerState {
  std::unique_ptr<LogBase> log;
  icap_log_level min_level = ICAP_LOG_INFO;

  /* Log from the wrapper itself; never throws. */
  void write(icap_log_level level, std::string_view msg) noexcept {
    if (!log || level > min_level) return;
    try {
      log->call(level, msg);
    } catch (...) {
      // A log callback that throws has nowhere to report to.
    }
  }
};

inline void log_trampoline(icap_server*, icap_log_level level, const char* msg,
                           void* user) noexcept {
  static_cast<ServerState*>(user)->write(level, sv(msg));
}

/* Text of the exception being handled (call inside a catch block). */
inline std::string current_exception_text() noexcept {
  try {
    try {
      throw;
    } catch (const Error& e) {
      return e.what();
    } catch (const std::exception& e) {
      std::string s = "exception: ";
      s += e.what();
      return s;
    } catch (...) {
      return "unknown exception";
    }
  } catch (...) {
    return std::string();  // out of memory while formatting
  }
}

/* Is the exception being handled an icap::Error saying the transaction is
 * over (client gone, timed out, server stopping)? Those are routine. */
inline bool current_exception_is_end() noexcept {
  try {
    throw;
  } catch (const Error& e) {
    return e.code() == ICAP_ECONNRESET || e.code() == ICAP_ETIMEDOUT || e.code() == ICAP_ECANCELED;
  } catch (...) {
    return false;
  }
}

/* Log the exception being handled, with where it happened. */
inline void report_exception(ServerState* st, icap_request* req, const char* where) noexcept {
  if (!st) return;
  try {
    bool routine = current_exception_is_end();
    std::string m = "C++ ";
    m += where;
    if (req) {
      m += " (";
      m += sv(icap_request_method_name(req));
      m += ' ';
      m += sv(icap_request_service_name(req));
      m += ')';
    }
    m += routine ? " ended: " : " threw: ";
    m += current_exception_text();
    st->write(routine ? ICAP_LOG_DEBUG : ICAP_LOG_ERROR, m);
  } catch (...) {
  }
}

/* Log the exception being handled and fail the transaction (500 if no
 * response started, then close), unless the exception only says that the
 * transaction is already over (client gone, timeout, stop). */
inline void fail_request(ServerState* st, icap_request* req, const char* where) noexcept {
  report_exception(st, req, where);
  if (req && !current_exception_is_end()) icap_request_abort(req, ICAP_EHANDLER);
}

/* ----- per-transaction wrapper state (in the C request's data slot) ----- */

struct DoneBase {
  virtual ~DoneBase() = default;
  virtual void call(Request& req, int status) = 0;
};
struct BodyBase {
  virtual ~BodyBase() = default;
  virtual void call(Request& req, const ChunkView& chunk) = 0;
};

struct RequestCtx {
  ServerState* state = nullptr;
  void* user_data = nullptr;
  std::unique_ptr<DoneBase> done;
  std::unique_ptr<BodyBase> body;
  /* A body flag (END, PREVIEW_END...) held back by the coroutine reader so
   * that data and end arrive in separate reads (see icap/coro.hpp). */
  unsigned pending_flags = 0;
  bool has_pending = false;
  /* Bumped by on_body()/stop_body(), so a body callback that replaced or
   * stopped itself is not put back by the trampoline. */
  unsigned body_gen = 0;
  bool push_on = false;
  /* Callbacks running with this ctx; the done callback may come while one
   * runs (a response completed inside a body callback), so deletion waits. */
  int busy = 0;
  bool dead = false;
};

/* Marks a request whose transaction ended: its ctx is gone and no new one is
 * made (a new done callback would never be called). */
inline char ended_marker = 0;

inline void release_ctx(RequestCtx* ctx) noexcept {
  if (ctx->busy == 0)
    delete ctx;
  else
    ctx->dead = true;
}

inline void done_trampoline(icap_request* r, int status, void* user) noexcept;

/* The wrapper's state for `r`; made (and the done callback registered) on
 * first use when `create`. nullptr when the transaction already ended. */
inline RequestCtx* ctx_of(icap_request* r, ServerState* st, bool create) {
  void* d = icap_request_get_data(r);
  if (d == &ended_marker) return nullptr;
  if (d) return static_cast<RequestCtx*>(d);
  if (!create) return nullptr;
  auto ctx = std::make_unique<RequestCtx>();
  ctx->state = st;
  int rc = icap_request_on_done(r, &done_trampoline, ctx.get());
  if (rc < 0) {
    icap_request_set_data(r, &ended_marker);
    return nullptr;
  }
  icap_request_set_data(r, ctx.get());
  return ctx.release();
}

/* ----- type-erased callables (move-only callables are fine) ----- */

struct HandlerBase {
  virtual ~HandlerBase() = default;
  virtual void call(Request& req) = 0;
  ServerState* state = nullptr;
};
template <class F>
struct HandlerImpl final : HandlerBase {
  explicit HandlerImpl(F f) : fn(std::move(f)) {}
  void call(Request& req) override;
  F fn;
};

inline int handler_trampoline(icap_request* r, void* user) noexcept;

template <class F>
struct DoneImpl final : DoneBase {
  explicit DoneImpl(F f) : fn(std::move(f)) {}
  void call(Request& req, int status) override;
  F fn;
};
template <class F>
struct BodyImpl final : BodyBase {
  explicit BodyImpl(F f) : fn(std::move(f)) {}
  void call(Request& req, const ChunkView& chunk) override;
  F fn;
};

template <class F>
struct ReadOp;
template <class Work, class Then>
struct OffloadOp;
template <class F>
struct PostOp;
struct ZeroCopy;

/* Holds a result of type R, or nothing for void. */
template <class R>
struct Slot {
  std::optional<R> value;
  template <class F>
  void fill(F& f) {
    value.emplace(std::invoke(f));
  }
};
template <>
struct Slot<void> {
  template <class F>
  void fill(F& f) {
    std::invoke(f);
  }
};

/* The thread-pool half of an offload (OffloadOp, and OffloadAwaiter in
 * icap/coro.hpp): runs op.work, keeping its result in op.result or what it
 * threw in op.error. */
template <class Op>
void run_offload_work(Op& op) noexcept {
  try {
    op.result.fill(op.work);
  } catch (...) {
    op.error = std::current_exception();
  }
}

#if defined(__cpp_impl_coroutine)
/* Defined in icap/coro.hpp. */
struct ChunkAwaiter;
template <class Work>
struct OffloadAwaiter;
#endif

}  // namespace detail

/* ------------------------------------------------------------ request --- */

/* A view over one ICAP transaction (see the top of this file for its
 * lifetime). Names and meaning follow pyicap's BaseICAPRequestHandler. */
class Request {
 public:
  Request() noexcept = default;
  explicit Request(icap_request* req, detail::ServerState* state = nullptr) noexcept
      : r_(req), st_(state) {}

  icap_request* native_handle() const noexcept { return r_; }
  explicit operator bool() const noexcept { return r_ != nullptr; }

  /* ----- what arrived (pyicap's fields) ----- */

  /* ICAP method: "OPTIONS", "REQMOD" or "RESPMOD". */
  std::string_view command() const noexcept { return detail::sv(icap_request_method_name(r_)); }
  icap_method method() const noexcept { return icap_request_method(r_); }
  /* The full ICAP request URI ("icap://host:1344/echo?x=1"). */
  std::string_view request_uri() const noexcept { return detail::sv(icap_request_uri(r_)); }
  /* "ICAP/1.0" */
  std::string_view version() const noexcept { return detail::sv(icap_request_version(r_)); }
  /* The service name the request was routed to ("echo"). */
  std::string_view servicename() const noexcept {
    return detail::sv(icap_request_service_name(r_));
  }
  icap_service* service_handle() const noexcept { return icap_request_service(r_); }
  std::string_view client_ip() const noexcept { return detail::sv(icap_request_client_ip(r_)); }
  int client_port() const noexcept { return icap_request_client_port(r_); }
  /* Index of the worker loop running this transaction. */
  unsigned worker() const noexcept { return icap_request_worker(r_); }

  /* TLS of the connection (icap_request_is_tls() and friends): the version
   * ("TLSv1.3"), the cipher, and the verified client certificate's subject
   * (RFC 2253); "" when not TLS. Borrowed until the done callback. */
  bool is_tls() const noexcept { return icap_request_is_tls(r_) != 0; }
  std::string_view tls_version() const noexcept { return detail::sv(icap_request_tls_version(r_)); }
  std::string_view tls_cipher() const noexcept { return detail::sv(icap_request_tls_cipher(r_)); }
  std::string_view tls_peer_subject() const noexcept {
    return detail::sv(icap_request_tls_peer_subject(r_));
  }

  /* The ICAP request's own headers (copied into a Headers). */
  Headers icap_headers() const { return headers(ICAP_HEADERS_ICAP); }
  /* The n-th value of one ICAP header, without copying, or std::nullopt. */
  std::optional<std::string_view> icap_header(const detail::CStr& name, std::size_t n = 0) const {
    return header(ICAP_HEADERS_ICAP, name, n);
  }

  /* pyicap's encapsulated: section name ("req-hdr", "res-body", ...) ->
   * offset, for the sections present. */
  std::map<std::string, std::int64_t> encapsulated() const {
    std::map<std::string, std::int64_t> out;
    // The library names the sections (and says where they end: NULL), so
    // this header keeps no copy of the table.
    for (int s = 0;; ++s) {
      const char* name = icap_section_name(static_cast<icap_section>(s));
      if (!name) break;
      std::int64_t off = icap_request_encapsulated(r_, static_cast<icap_section>(s));
      if (off >= 0) out.emplace(name, off);
    }
    return out;
  }
  /* Offset of one section, or -1. */
  std::int64_t encapsulated(icap_section section) const noexcept {
    return icap_request_encapsulated(r_, section);
  }

  /* pyicap's enc_req: method, URI and version of the encapsulated HTTP
   * request ("" when absent). */
  RequestLine enc_req() const noexcept {
    return RequestLine{detail::sv(icap_request_http_method(r_)),
                       detail::sv(icap_request_http_uri(r_)),
                       detail::sv(icap_request_http_req_version(r_))};
  }
  Headers enc_req_headers() const { return headers(ICAP_HEADERS_HTTP_REQ); }
  std::optional<std::string_view> enc_req_header(const detail::CStr& name,
                                                 std::size_t n = 0) const {
    return header(ICAP_HEADERS_HTTP_REQ, name, n);
  }

  /* pyicap's enc_res_status: version, code (-1 if absent) and reason of the
   * encapsulated HTTP response. */
  StatusLine enc_res_status() const noexcept {
    return StatusLine{detail::sv(icap_request_http_res_version(r_)), icap_request_http_status(r_),
                      detail::sv(icap_request_http_reason(r_))};
  }
  Headers enc_res_headers() const { return headers(ICAP_HEADERS_HTTP_RES); }
  std::optional<std::string_view> enc_res_header(const detail::CStr& name,
                                                 std::size_t n = 0) const {
    return header(ICAP_HEADERS_HTTP_RES, name, n);
  }

  /* Any header block, copied; or one value without copying. */
  Headers headers(::icap_headers which) const {
    Headers h;
    std::size_t n = icap_request_header_count(r_, which);
    for (std::size_t i = 0; i < n; ++i) {
      const char* name = nullptr;
      const char* value = nullptr;
      if (icap_request_header_at(r_, which, i, &name, &value) == 0)
        h.add(name ? name : "", value ? value : "");
    }
    return h;
  }
  std::optional<std::string_view> header(::icap_headers which, const detail::CStr& name,
                                         std::size_t n = 0) const {
    const char* v = icap_request_header(r_, which, name.c_str(), n);
    if (!v) return std::nullopt;
    return std::string_view(v);
  }
  /* The raw bytes of a header section as received (empty if absent). */
  std::string_view raw_section(icap_section section) const noexcept {
    std::size_t len = 0;
    const char* p = icap_request_raw_section(r_, section, &len);
    return p ? std::string_view(p, len) : std::string_view();
  }

  /* True if an encapsulated body (req-body or res-body) follows. */
  bool has_body() const noexcept { return icap_request_has_body(r_) == 1; }
  /* The Preview: value, or std::nullopt without a preview. */
  std::optional<std::int64_t> preview() const noexcept {
    std::int64_t p = icap_request_preview(r_);
    if (p < 0) return std::nullopt;
    return p;
  }
  /* True while the preview is not over (see icap_request_in_preview). */
  bool in_preview() const noexcept { return icap_request_in_preview(r_) == 1; }
  /* True once a "0; ieof" chunk was read. */
  bool ieof() const noexcept { return icap_request_ieof(r_) == 1; }
  /* pyicap's allow: the numeric codes the client's Allow headers list
   * (204, 206; other tokens such as "trailers" are left out). */
  std::set<int> allow() const {
    std::set<int> out;
    for (std::size_t n = 0;; ++n) {
      const char* v = icap_request_header(r_, ICAP_HEADERS_ICAP, "Allow", n);
      if (!v) break;
      std::string_view s(v);
      while (!s.empty()) {
        std::size_t comma = s.find(',');
        std::string_view tok = s.substr(0, comma);
        s = comma == std::string_view::npos ? std::string_view() : s.substr(comma + 1);
        while (!tok.empty() && (tok.front() == ' ' || tok.front() == '\t')) tok.remove_prefix(1);
        while (!tok.empty() && (tok.back() == ' ' || tok.back() == '\t')) tok.remove_suffix(1);
        if (tok.empty() || tok.size() > 3) continue;
        int code = 0;
        bool digits = true;
        for (char c : tok) {
          if (c < '0' || c > '9') {
            digits = false;
            break;
          }
          code = code * 10 + (c - '0');
        }
        if (digits) out.insert(code);
      }
    }
    for (int code : {204, 206})
      if (icap_request_allows(r_, code) == 1) out.insert(code);
    return out;
  }
  bool allows(int code) const noexcept { return icap_request_allows(r_, code) == 1; }
  /* The ICAP status set so far (set_icap_response) or sent, or 0. */
  int icap_response_code() const noexcept { return icap_request_response_code(r_); }
  /* Bytes queued on the connection and not yet written. */
  std::size_t write_queue_size() const noexcept { return icap_request_write_queue_size(r_); }

  /* Per-transaction user data (nullptr by default). It is kept by the
   * wrapper, not in the C slot, and reads nullptr once the transaction
   * ended. Free what it points to in on_done(). */
  void* data() const noexcept {
    void* d = icap_request_get_data(r_);
    if (!d || d == &detail::ended_marker) return nullptr;
    return static_cast<detail::RequestCtx*>(d)->user_data;
  }
  template <class T>
  T* data_as() const noexcept {
    return static_cast<T*>(data());
  }
  void set_data(void* p) {
    detail::RequestCtx* ctx = detail::ctx_of(r_, st_, p != nullptr);
    if (ctx) ctx->user_data = p;
  }

  /* Write a line to the server's log callback (if any). */
  void log(icap_log_level level, std::string_view msg) const noexcept {
    if (st_) st_->write(level, msg);
  }

  /* ----- answering (pyicap's helpers) ----- */

  /* A complete bodiless response with this status (403, 500...). */
  void send_error(int code) { detail::check(icap_request_send_error(r_, code), "send_error"); }
  /* 204 when allowed (Allow: 204 or in a preview), else 200 echoing the
   * original message, streamed through. */
  void no_adaptation_required() {
    detail::check(icap_request_no_adaptation(r_), "no_adaptation_required");
  }
  /* 100 Continue after a preview that ended without ieof. */
  void cont() { detail::check(icap_request_continue(r_), "cont"); }

  void set_icap_response(int code) {
    detail::check(icap_request_set_status(r_, code), "set_icap_response");
  }
  void set_icap_header(const detail::CStr& name, const detail::CStr& value) {
    detail::check(icap_request_set_icap_header(r_, name.c_str(), value.c_str()), "set_icap_header");
  }
  /* The encapsulated HTTP status line of the answer, "HTTP/1.1 403
   * Forbidden" (allowed in REQMOD too, for a block page). */
  void set_enc_status(const detail::CStr& status_line) {
    detail::check(icap_request_set_http_status(r_, status_line.c_str()), "set_enc_status");
  }
  void set_enc_status(int code, std::string_view reason, std::string_view version = "HTTP/1.1") {
    std::string line(version);
    line += ' ';
    line += std::to_string(code);
    line += ' ';
    line += reason;
    set_enc_status(line);
  }
  /* The encapsulated HTTP request line, "GET http://x/ HTTP/1.1" (REQMOD). */
  void set_enc_request(const detail::CStr& request_line) {
    detail::check(icap_request_set_http_request(r_, request_line.c_str()), "set_enc_request");
  }
  /* Add an encapsulated HTTP header (repeatable). */
  void set_enc_header(const detail::CStr& name, const detail::CStr& value) {
    detail::check(icap_request_add_http_header(r_, name.c_str(), value.c_str()), "set_enc_header");
  }
  /* Copy the original start line and headers into the answer, except the
   * named headers: copy_http_head({"Server", "X-Powered-By"}). */
  void copy_http_head(std::initializer_list<const char*> skip = {}) {
    std::vector<const char*> v(skip.begin(), skip.end());
    v.push_back(nullptr);
    detail::check(icap_request_copy_http_head(r_, v.data()), "copy_http_head");
  }
  void copy_http_head(const std::vector<std::string>& skip) {
    std::vector<const char*> v;
    v.reserve(skip.size() + 1);
    for (const auto& s : skip) v.push_back(s.c_str());
    v.push_back(nullptr);
    detail::check(icap_request_copy_http_head(r_, v.data()), "copy_http_head");
  }
  /* Send the response head; has_body: a body follows (send_chunk + end). */
  void send_headers(bool has_body = false) {
    detail::check(icap_request_send_headers(r_, has_body ? 1 : 0), "send_headers");
  }

  /* Send one chunk of the answer body. The data is copied, except for the
   * std::string&& overload, which moves the string into libicap (zero
   * copy). An empty chunk ends the body, as in pyicap. */
  void send_chunk(std::string_view data) {
    detail::check(icap_request_send_chunk(r_, data.data(), data.size()), "send_chunk");
  }
  void send_chunk(const char* data) { send_chunk(detail::sv(data)); }
  void send_chunk(const std::string& data) { send_chunk(std::string_view(data)); }
  void send_chunk(const void* data, std::size_t len) {
    send_chunk(std::string_view(static_cast<const char*>(data), len));
  }
  inline void send_chunk(std::string&& data);

  /* End the answer body. */
  void end() { detail::check(icap_request_end(r_), "end"); }
  /* End a 206 answer: the client uses its original body from `offset`. */
  void end_use_original(std::uint64_t offset) {
    detail::check(icap_request_end_use_original(r_, offset), "end_use_original");
  }
  /* Fail the transaction: 500 if no response started, then close. Returns
   * false if it had already ended. Never throws. */
  bool abort(int err = ICAP_EHANDLER) noexcept { return icap_request_abort(r_, err) == 0; }

  /* ----- reading the body ----- */

  /* pyicap's read_chunk(), asynchronous: `cb(Request&, const ChunkView&)`
   * gets the next piece of the body once, on the loop thread. After a
   * preview that ended without ieof it first sends 100 Continue. */
  template <class F>
  void read_chunk(F&& cb);

  /* Push streaming: `cb(Request&, const ChunkView&)` gets every piece until
   * end() or an error, unless paused. The callable is kept until the
   * transaction ends or stop_body() / another on_body() replaces it. */
  template <class F>
  void on_body(F&& cb);
  void stop_body() {
    detail::check(icap_request_set_body_cb(r_, nullptr, nullptr), "stop_body");
    if (auto* ctx = detail::ctx_of(r_, st_, false)) {
      ctx->push_on = false;
      ctx->body_gen++;  // a running body callback is freed when it returns
      ctx->body.reset();
    }
  }
  void pause() { detail::check(icap_request_pause(r_), "pause"); }
  void resume() { detail::check(icap_request_resume(r_), "resume"); }

  /* ----- completion, blocking work ----- */

  /* `cb(Request&, int status)` runs once when the transaction ends: status
   * 0 (response written), ICAP_ECONNRESET, ICAP_ETIMEDOUT or
   * ICAP_ECANCELED. Setting it again replaces it. */
  template <class F>
  void on_done(F&& cb);

  /* Run `work()` on the thread pool (it may block; it must not touch the
   * request), then `then(Request&, result)` - or `then(Request&)` when work
   * returns void - on this request's loop thread. If work throws, or then
   * throws, the transaction fails (500, logged). If the transaction ended
   * before the work finished, then is not called (the result is dropped). */
  template <class Work, class Then>
  void offload(Work&& work, Then&& then);

#if defined(__cpp_impl_coroutine)
  /* Awaitable forms, defined in icap/coro.hpp (include it to use them):
   *   icap::Chunk c = co_await req.read_chunk();
   *   auto r = co_await req.offload([] { return blocking_work(); }); */
  inline detail::ChunkAwaiter read_chunk();
  template <class Work>
  detail::OffloadAwaiter<std::decay_t<Work>> offload(Work&& work);
#endif

  /* A counted reference that keeps this request valid (loop thread). */
  inline RequestRef ref() const;

  detail::ServerState* state() const noexcept { return st_; }

 private:
  icap_request* r_ = nullptr;
  detail::ServerState* st_ = nullptr;
};

/* ----------------------------------------------------------- RequestRef --- */

/* Holds an icap_request_ref() on a transaction: the request's memory stays
 * valid (readable; answering fails once the transaction ended) until the
 * RequestRef is destroyed. Create and destroy it on the loop thread; move it
 * to another thread only to call post(). */
class RequestRef {
 public:
  RequestRef() noexcept = default;
  explicit RequestRef(const Request& req) noexcept : r_(req.native_handle()), st_(req.state()) {
    if (r_) icap_request_ref(r_);
  }
  RequestRef(RequestRef&& o) noexcept : r_(std::exchange(o.r_, nullptr)), st_(o.st_) {}
  RequestRef& operator=(RequestRef&& o) noexcept {
    if (this != &o) {
      reset();
      r_ = std::exchange(o.r_, nullptr);
      st_ = o.st_;
    }
    return *this;
  }
  RequestRef(const RequestRef&) = delete;
  RequestRef& operator=(const RequestRef&) = delete;
  ~RequestRef() { reset(); }

  void reset() noexcept {
    if (r_) icap_request_unref(std::exchange(r_, nullptr));
  }
  Request get() const noexcept { return Request(r_, st_); }
  icap_request* native_handle() const noexcept { return r_; }
  explicit operator bool() const noexcept { return r_ != nullptr; }

  /* Run `fn(Request&, int status)` on the request's loop thread; status is
   * 0, or ICAP_ECANCELED if the transaction already ended (the request is
   * then only readable). Thread-safe: the one call allowed from any thread.
   * Consumes the reference (released after fn returns); on failure it
   * throws icap::Error and the reference stays with this object. */
  template <class F>
  void post(F&& fn) &&;

 private:
  icap_request* r_ = nullptr;
  detail::ServerState* st_ = nullptr;
};

inline RequestRef Request::ref() const { return RequestRef(*this); }

/* --------------------------------------------------- detail, continued --- */

namespace detail {

template <class F>
void HandlerImpl<F>::call(Request& req) {
  // A coroutine handler returns an icap::Task; discarding it detaches it
  // (the coroutine runs on by itself, see icap/coro.hpp).
  (void)std::invoke(fn, req);
}

inline int handler_trampoline(icap_request* r, void* user) noexcept {
  auto* h = static_cast<HandlerBase*>(user);
  Request req(r, h->state);
  try {
    h->call(req);
    return 0;
  } catch (...) {
    report_exception(h->state, r, "handler");
    return ICAP_EHANDLER;
  }
}

template <class F>
void DoneImpl<F>::call(Request& req, int status) {
  std::invoke(fn, req, status);
}

template <class F>
void BodyImpl<F>::call(Request& req, const ChunkView& chunk) {
  std::invoke(fn, req, chunk);
}

inline void done_trampoline(icap_request* r, int status, void* user) noexcept {
  auto* ctx = static_cast<RequestCtx*>(user);
  ctx->busy++;
  std::unique_ptr<DoneBase> fn = std::move(ctx->done);
  if (fn) {
    Request req(r, ctx->state);
    try {
      fn->call(req, status);
    } catch (...) {
      report_exception(ctx->state, r, "done callback");
    }
  }
  fn.reset();
  ctx->busy--;
  // From now on the request has no wrapper state; a later lookup must not
  // make a new one (its done callback would never run).
  icap_request_set_data(r, &ended_marker);
  release_ctx(ctx);
}

inline void body_trampoline(icap_request* r, int status, const char* data, std::size_t len,
                            void* user) noexcept {
  auto* ctx = static_cast<RequestCtx*>(user);
  ctx->busy++;
  // Keep the callable alive while it runs even if it replaces itself.
  std::unique_ptr<BodyBase> fn = std::move(ctx->body);
  unsigned gen = ctx->body_gen;
  if (fn) {
    Request req(r, ctx->state);
    try {
      fn->call(req, ChunkView(status, std::string_view(data, data ? len : 0)));
    } catch (...) {
      fail_request(ctx->state, r, "body callback");
    }
  }
  // Put it back unless it was replaced, push mode is over, or the ctx died.
  bool over = status < 0 || ((status & ICAP_BODY_END) && !(status & ICAP_BODY_PREVIEW_END));
  if (over) ctx->push_on = false;
  if (gen == ctx->body_gen && !over && !ctx->dead) ctx->body = std::move(fn);
  fn.reset();
  ctx->busy--;
  if (ctx->dead && ctx->busy == 0) delete ctx;
}

template <class F>
struct ReadOp {
  ReadOp(ServerState* s, F f) : state(s), fn(std::move(f)) {}
  static void trampoline(icap_request* r, int status, const char* data, std::size_t len,
                         void* user) noexcept {
    std::unique_ptr<ReadOp> op(static_cast<ReadOp*>(user));
    Request req(r, op->state);
    try {
      std::invoke(op->fn, req, ChunkView(status, std::string_view(data, data ? len : 0)));
    } catch (...) {
      fail_request(op->state, r, "read_chunk callback");
    }
  }
  ServerState* state;
  F fn;
};

template <class Work, class Then>
struct OffloadOp {
  using R = std::invoke_result_t<Work&>;
  OffloadOp(ServerState* s, Work w, Then t) : state(s), work(std::move(w)), then(std::move(t)) {}

  // Thread pool: no request access here.
  static void work_cb(void* user) noexcept { run_offload_work(*static_cast<OffloadOp*>(user)); }
  // Loop thread.
  static void done_cb(icap_request* r, int status, void* user) noexcept {
    std::unique_ptr<OffloadOp> op(static_cast<OffloadOp*>(user));
    if (status < 0) {
      if (op->state)
        op->state->write(ICAP_LOG_DEBUG,
                         "C++ offload: transaction ended before the work "
                         "finished; result dropped");
      return;
    }
    Request req(r, op->state);
    try {
      if (op->error) std::rethrow_exception(op->error);
      if constexpr (std::is_void_v<R>)
        std::invoke(op->then, req);
      else
        std::invoke(op->then, req, std::move(*op->result.value));
    } catch (...) {
      fail_request(op->state, r, "offload");
    }
  }

  ServerState* state;
  Work work;
  Then then;
  Slot<R> result;
  std::exception_ptr error;
};

template <class F>
struct PostOp {
  PostOp(ServerState* s, F f) : state(s), fn(std::move(f)) {}
  static void trampoline(icap_request* r, int status, void* user) noexcept {
    std::unique_ptr<PostOp> op(static_cast<PostOp*>(user));
    Request req(r, op->state);
    try {
      std::invoke(op->fn, req, status);
    } catch (...) {
      fail_request(op->state, r, "post callback");
    }
  }
  ServerState* state;
  F fn;
};

struct ZeroCopy {
  static void release(const char*, std::size_t, void* user) noexcept {
    delete static_cast<std::string*>(user);
  }
};

}  // namespace detail

/* ------------------------------------- Request template member bodies --- */

inline void Request::send_chunk(std::string&& data) {
  if (data.empty()) {
    end();
    return;
  }
  auto owned = std::make_unique<std::string>(std::move(data));
  detail::check(icap_request_send_chunk_zc(r_, owned->data(), owned->size(),
                                           &detail::ZeroCopy::release, owned.get()),
                "send_chunk");
  owned.release();  // libicap calls ZeroCopy::release once it is written
}

template <class F>
void Request::read_chunk(F&& cb) {
  using Fn = std::decay_t<F>;
  static_assert(std::is_invocable_v<Fn&, Request&, const ChunkView&>,
                "read_chunk callback must be callable as "
                "void(icap::Request&, const icap::ChunkView&)");
  auto op = std::make_unique<detail::ReadOp<Fn>>(st_, Fn(std::forward<F>(cb)));
  detail::check(icap_request_read_chunk(r_, &detail::ReadOp<Fn>::trampoline, op.get()),
                "read_chunk");
  op.release();  // the trampoline owns it now (it may already have run)
}

template <class F>
void Request::on_body(F&& cb) {
  using Fn = std::decay_t<F>;
  static_assert(std::is_invocable_v<Fn&, Request&, const ChunkView&>,
                "on_body callback must be callable as "
                "void(icap::Request&, const icap::ChunkView&)");
  detail::RequestCtx* ctx = detail::ctx_of(r_, st_, true);
  if (!ctx) throw Error(ICAP_ESTATE, "on_body");
  auto fn = std::make_unique<detail::BodyImpl<Fn>>(Fn(std::forward<F>(cb)));
  if (!ctx->push_on) {
    // libicap calls the wrapper's trampoline; the callable lives in ctx.
    detail::check(icap_request_set_body_cb(r_, &detail::body_trampoline, ctx), "on_body");
    ctx->push_on = true;
  }
  ctx->body = std::move(fn);
  ctx->body_gen++;
}

template <class F>
void Request::on_done(F&& cb) {
  using Fn = std::decay_t<F>;
  static_assert(std::is_invocable_v<Fn&, Request&, int>,
                "on_done callback must be callable as "
                "void(icap::Request&, int status)");
  detail::RequestCtx* ctx = detail::ctx_of(r_, st_, true);
  if (!ctx) throw Error(ICAP_ESTATE, "on_done");
  ctx->done = std::make_unique<detail::DoneImpl<Fn>>(Fn(std::forward<F>(cb)));
}

template <class Work, class Then>
void Request::offload(Work&& work, Then&& then) {
  using W = std::decay_t<Work>;
  using T = std::decay_t<Then>;
  static_assert(std::is_invocable_v<W&>, "offload work must be callable as work()");
  using R = std::invoke_result_t<W&>;
  if constexpr (std::is_void_v<R>) {
    static_assert(std::is_invocable_v<T&, Request&>,
                  "offload then must be callable as then(icap::Request&)");
  } else {
    static_assert(std::is_invocable_v<T&, Request&, R&&>,
                  "offload then must be callable as then(icap::Request&, "
                  "result)");
  }
  auto op = std::make_unique<detail::OffloadOp<W, T>>(st_, W(std::forward<Work>(work)),
                                                      T(std::forward<Then>(then)));
  detail::check(icap_request_offload(r_, &detail::OffloadOp<W, T>::work_cb,
                                     &detail::OffloadOp<W, T>::done_cb, op.get()),
                "offload");
  op.release();
}

template <class F>
void RequestRef::post(F&& fn) && {
  using Fn = std::decay_t<F>;
  static_assert(std::is_invocable_v<Fn&, Request&, int>,
                "post callback must be callable as "
                "void(icap::Request&, int status)");
  if (!r_) throw Error(ICAP_EINVAL, "post");
  auto op = std::make_unique<detail::PostOp<Fn>>(st_, Fn(std::forward<F>(fn)));
  detail::check(icap_request_post(r_, &detail::PostOp<Fn>::trampoline, op.get()), "post");
  op.release();
  r_ = nullptr;  // the reference now belongs to libicap
}

/* ------------------------------------------------------------ service --- */

/* One registered service (icap://host:port/NAME). Owned by its Server. */
class Service {
 public:
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  /* Handlers: any callable `void(icap::Request&)` (a lambda, a
   * std::function, a functor; call a member function from a lambda), or a
   * coroutine returning icap::Task (icap/coro.hpp) taking icap::Request by
   * value. Before run only. */
  template <class F>
  Service& options(F&& fn) {
    return handler(ICAP_METHOD_OPTIONS, std::forward<F>(fn));
  }
  template <class F>
  Service& reqmod(F&& fn) {
    return handler(ICAP_METHOD_REQMOD, std::forward<F>(fn));
  }
  template <class F>
  Service& respmod(F&& fn) {
    return handler(ICAP_METHOD_RESPMOD, std::forward<F>(fn));
  }
  template <class F>
  Service& handler(icap_method method, F&& fn) {
    using Fn = std::decay_t<F>;
    static_assert(std::is_invocable_v<Fn&, Request&>,
                  "an ICAP handler must be callable as "
                  "void(icap::Request&) (or return icap::Task)");
    if (method < 0 || method >= ICAP_METHOD_COUNT_) throw Error(ICAP_EINVAL, "handler");
    auto h = std::make_unique<detail::HandlerImpl<Fn>>(Fn(std::forward<F>(fn)));
    h->state = state_;
    detail::check(icap_service_set_handler(svc_, method, &detail::handler_trampoline, h.get()),
                  "icap_service_set_handler");
    handlers_[method] = std::move(h);  // the previous one is no longer used
    return *this;
  }

  /* Preview bytes advertised in OPTIONS (-1: none). */
  Service& preview(std::int64_t bytes) {
    detail::check(icap_service_set_preview(svc_, bytes), "icap_service_set_preview");
    return *this;
  }
  /* ISTag without quotes (<= 30 chars). Thread-safe. */
  Service& istag(const detail::CStr& tag) {
    detail::check(icap_service_set_istag(svc_, tag.c_str()), "icap_service_set_istag");
    return *this;
  }
  /* Advertise Allow: 204 / Allow: 206 in OPTIONS. */
  Service& allow(bool allow_204, bool allow_206 = false) {
    detail::check(icap_service_set_allow(svc_, allow_204, allow_206), "icap_service_set_allow");
    return *this;
  }
  Service& options_ttl(std::int64_t seconds) {
    detail::check(icap_service_set_options_ttl(svc_, seconds), "icap_service_set_options_ttl");
    return *this;
  }
  Service& max_connections(std::uint64_t n) {
    detail::check(icap_service_set_max_connections(svc_, n), "icap_service_set_max_connections");
    return *this;
  }
  /* Transfer-Preview / -Ignore / -Complete (std::nullopt: omit). */
  Service& transfer(std::optional<std::string> preview,
                    std::optional<std::string> ignore = std::nullopt,
                    std::optional<std::string> complete = std::nullopt) {
    detail::check(icap_service_set_transfer(svc_, preview ? preview->c_str() : nullptr,
                                            ignore ? ignore->c_str() : nullptr,
                                            complete ? complete->c_str() : nullptr),
                  "icap_service_set_transfer");
    return *this;
  }
  /* An extra header in every OPTIONS answer. */
  Service& options_header(const detail::CStr& name, const detail::CStr& value) {
    detail::check(icap_service_add_options_header(svc_, name.c_str(), value.c_str()),
                  "icap_service_add_options_header");
    return *this;
  }

  std::string_view name() const noexcept { return detail::sv(icap_service_name(svc_)); }
  icap_service* native_handle() const noexcept { return svc_; }

 private:
  friend class Server;
  Service(icap_service* svc, detail::ServerState* st) noexcept : svc_(svc), state_(st) {}

  icap_service* svc_;
  detail::ServerState* state_;
  std::unique_ptr<detail::HandlerBase> handlers_[ICAP_METHOD_COUNT_];
};

/* ---------------------------------------------------------------- tls --- */

/* Owns a reference to an icap_tls_config (move-only). Setters and reload()
 * are thread-safe, as in icap.h; a Server that listens with it keeps its own
 * reference, so this object may go away before the Server. */
class TlsConfig {
 public:
  TlsConfig() { detail::check(icap_tls_config_new(&cfg_), "icap_tls_config_new"); }
  TlsConfig(TlsConfig&& o) noexcept : cfg_(o.cfg_) { o.cfg_ = nullptr; }
  TlsConfig& operator=(TlsConfig&& o) noexcept {
    if (this != &o) {
      icap_tls_config_free(cfg_);
      cfg_ = o.cfg_;
      o.cfg_ = nullptr;
    }
    return *this;
  }
  TlsConfig(const TlsConfig&) = delete;
  TlsConfig& operator=(const TlsConfig&) = delete;
  ~TlsConfig() { icap_tls_config_free(cfg_); }
  icap_tls_config* native_handle() const noexcept { return cfg_; }

  TlsConfig& cert_file(const detail::CStr& path) {
    detail::check(icap_tls_config_set_cert_file(cfg_, path.c_str()),
                  "icap_tls_config_set_cert_file");
    return *this;
  }
  TlsConfig& key_file(const detail::CStr& path, const char* passphrase = nullptr) {
    detail::check(icap_tls_config_set_key_file(cfg_, path.c_str(), passphrase),
                  "icap_tls_config_set_key_file");
    return *this;
  }
  TlsConfig& min_version(icap_tls_version v) {
    detail::check(icap_tls_config_set_min_version(cfg_, v), "icap_tls_config_set_min_version");
    return *this;
  }
  /* nullptr keeps OpenSSL's default for that protocol version. */
  TlsConfig& ciphers(const char* tls12_ciphers, const char* tls13_suites) {
    detail::check(icap_tls_config_set_ciphers(cfg_, tls12_ciphers, tls13_suites),
                  "icap_tls_config_set_ciphers");
    return *this;
  }
  TlsConfig& verify_client(icap_tls_verify mode, const char* ca_file,
                           const char* ca_dir = nullptr) {
    detail::check(icap_tls_config_set_verify_client(cfg_, mode, ca_file, ca_dir),
                  "icap_tls_config_set_verify_client");
    return *this;
  }
  /* Re-reads the files; throws icap::Error whose text includes error(). */
  void reload() {
    int rc = icap_tls_config_reload(cfg_);
    if (rc < 0) throw Error(rc, "icap_tls_config_reload: " + error());
  }
  /* Why the last load or reload failed, "" after a success. */
  std::string error() const {
    std::string out(icap_tls_config_error(cfg_, nullptr, 0) + 1, '\0');
    out.resize(icap_tls_config_error(cfg_, &out[0], out.size()));
    return out;
  }

 private:
  icap_tls_config* cfg_ = nullptr;
};

/* ------------------------------------------------------------- server --- */

/* Owns an icap_server. Configure it from one thread, then run() it. */
class Server {
 public:
  Server() : impl_(std::make_unique<Impl>()) {
    detail::check(icap_server_new(&impl_->srv), "icap_server_new");
  }
  /* Take ownership of an existing handle. */
  explicit Server(icap_server* srv) : impl_(std::make_unique<Impl>()) { impl_->srv = srv; }
  Server(Server&&) noexcept = default;
  Server& operator=(Server&& o) noexcept {
    if (this != &o) {
      close();
      impl_ = std::move(o.impl_);
    }
    return *this;
  }
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  ~Server() { close(); }

  /* Free the server now (idempotent). Not while run() is executing. */
  void close() noexcept {
    if (impl_ && impl_->srv) {
      icap_server_free(impl_->srv);  // services and C handlers go with it
      impl_->srv = nullptr;
    }
    impl_.reset();  // then the C++ handlers and the log callback
  }

  icap_server* native_handle() const noexcept { return impl_ ? impl_->srv : nullptr; }
  explicit operator bool() const noexcept { return native_handle() != nullptr; }

  /* Bind host:port now (port 0: the kernel picks; see port()). Repeatable. */
  Server& listen(const detail::CStr& host, int port) {
    detail::check(icap_server_listen(srv(), host.c_str(), port), "icap_server_listen");
    return *this;
  }
  /* Adopt a bound, listening TCP socket (systemd socket activation, a
   * supervisor); the server takes the fd (see icap_server_listen_fd). */
  Server& listen_fd(int fd) {
    detail::check(icap_server_listen_fd(srv(), fd), "icap_server_listen_fd");
    return *this;
  }
  /* The same for icaps:// (the files of `tls` are read now). */
  Server& listen_tls(const detail::CStr& host, int port, const TlsConfig& tls) {
    int rc = icap_server_listen_tls(srv(), host.c_str(), port, tls.native_handle());
    if (rc < 0) throw Error(rc, "icap_server_listen_tls: " + tls.error());
    return *this;
  }
  /* Worker loops (threads); 0 = number of CPUs. */
  Server& workers(unsigned n) {
    detail::check(icap_server_set_workers(srv(), n), "icap_server_set_workers");
    return *this;
  }
  Server& limit(icap_limit which, std::uint64_t value) {
    detail::check(icap_server_set_limit(srv(), which, value), "icap_server_set_limit");
    return *this;
  }
  std::uint64_t limit(icap_limit which) const noexcept {
    return icap_server_get_limit(native_handle(), which);
  }
  /* The Server: header value. */
  Server& server_header(const detail::CStr& value) {
    detail::check(icap_server_set_server_header(srv(), value.c_str()),
                  "icap_server_set_server_header");
    return *this;
  }
  /* Log callback `fn(icap_log_level, std::string_view msg)`, called on any
   * worker thread (make it thread-safe). Also receives the wrapper's own
   * reports of exceptions thrown by handlers and callbacks. */
  template <class F>
  Server& log(F&& fn, icap_log_level min_level = ICAP_LOG_INFO) {
    using Fn = std::decay_t<F>;
    static_assert(std::is_invocable_v<Fn&, icap_log_level, std::string_view>,
                  "log callback must be callable as "
                  "void(icap_log_level, std::string_view)");
    detail::check(icap_server_set_log(srv(), min_level, &detail::log_trampoline, &impl_->state),
                  "icap_server_set_log");
    impl_->state.log = std::make_unique<detail::LogImpl<Fn>>(Fn(std::forward<F>(fn)));
    impl_->state.min_level = min_level;
    return *this;
  }

  /* The service called `name`, registered on first use. */
  Service& service(const std::string& name) {
    auto it = impl_->services.find(name);
    if (it != impl_->services.end()) return *it->second;
    icap_service* svc = nullptr;
    detail::check(icap_server_add_service(srv(), name.c_str(), &svc), "icap_server_add_service");
    std::unique_ptr<Service> s(new Service(svc, &impl_->state));
    return *impl_->services.emplace(name, std::move(s)).first->second;
  }

  /* Serve until stop(); throws icap::Error if the server cannot run. */
  void run() { detail::check(icap_server_run(srv()), "icap_server_run"); }
  /* Ask run() to return after in-flight transactions finish. Thread-safe
   * and async-signal-safe (it only calls icap_server_stop()). */
  void stop() noexcept {
    if (impl_ && impl_->srv) icap_server_stop(impl_->srv);
  }
  /* The port of the idx-th listen address. */
  int port(unsigned idx = 0) const {
    int p = icap_server_port(native_handle(), idx);
    detail::check(p, "icap_server_port");
    return p;
  }

 private:
  struct Impl {
    icap_server* srv = nullptr;
    detail::ServerState state;
    std::map<std::string, std::unique_ptr<Service>> services;
  };
  icap_server* srv() const {
    if (!impl_ || !impl_->srv) throw Error(ICAP_EINVAL, "moved-from Server");
    return impl_->srv;
  }
  std::unique_ptr<Impl> impl_;
};

/* ----------------------------------------------------------- utilities --- */

/* The loaded library's version, comparable with ICAP_VERSION_HEX. */
inline unsigned version() noexcept { return icap_version(); }
/* The loaded library's version ("0.1.0"). */
inline std::string_view version_string() noexcept { return detail::sv(icap_version_string()); }
/* Standard reason phrase of an ICAP status code. */
inline std::string_view status_reason(int code) noexcept {
  return detail::sv(icap_status_reason(code));
}

}  // namespace icap

#endif  // ICAP_ICAP_HPP
