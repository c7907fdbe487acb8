// SPDX-License-Identifier: MIT
/*
 * Test support for the C++ wrapper tests: an icap::Server running on
 * 127.0.0.1:0 in a thread, the raw-socket ICAP client and the request
 * builders of tests/common in the form these tests use, a small
 * wait-with-timeout helper for events that happen on the server's threads,
 * and the exchanges and expectations that several tests share.
 */
#ifndef ICAP_TESTS_CPP_TEST_SUPPORT_HPP
#define ICAP_TESTS_CPP_TEST_SUPPORT_HPP

#include <icap/icap.hpp>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "builders.hpp"
#include "client.hpp"

namespace cpptest {

using namespace std::chrono_literals;
using icaptest::chunk;
using icaptest::Msg;

/* ------------------------------------------------------------ waiting --- */

/* Values recorded on server threads and read by the test thread. */
class Recorder {
 public:
  void add(std::string s) {
    std::lock_guard<std::mutex> lk(m_);
    items_.push_back(std::move(s));
    cv_.notify_all();
  }
  std::vector<std::string> items() const {
    std::lock_guard<std::mutex> lk(m_);
    return items_;
  }
  /* Wait until some item contains `needle`; false after `timeout`. */
  bool wait_for(const std::string& needle, std::chrono::milliseconds timeout = 5000ms) const {
    std::unique_lock<std::mutex> lk(m_);
    return cv_.wait_for(lk, timeout, [&] {
      for (const auto& i : items_)
        if (i.find(needle) != std::string::npos) return true;
      return false;
    });
  }
  bool wait_count(std::size_t n, std::chrono::milliseconds timeout = 5000ms) const {
    std::unique_lock<std::mutex> lk(m_);
    return cv_.wait_for(lk, timeout, [&] { return items_.size() >= n; });
  }
  bool contains(const std::string& needle) const {
    std::lock_guard<std::mutex> lk(m_);
    for (const auto& i : items_)
      if (i.find(needle) != std::string::npos) return true;
    return false;
  }
  std::string joined() const {
    std::lock_guard<std::mutex> lk(m_);
    std::string s;
    for (const auto& i : items_) s += i + "\n";
    return s;
  }

 private:
  mutable std::mutex m_;
  mutable std::condition_variable cv_;
  std::vector<std::string> items_;
};

/* A value set once on a server thread. */
template <class T>
class Slot {
 public:
  void set(T v) {
    std::lock_guard<std::mutex> lk(m_);
    v_ = std::move(v);
    cv_.notify_all();
  }
  std::optional<T> wait(std::chrono::milliseconds timeout = 5000ms) const {
    std::unique_lock<std::mutex> lk(m_);
    cv_.wait_for(lk, timeout, [&] { return v_.has_value(); });
    return v_;
  }

 private:
  mutable std::mutex m_;
  mutable std::condition_variable cv_;
  std::optional<T> v_;
};

inline std::string thread_id_string(std::thread::id id) {
  std::hash<std::thread::id> h;
  return std::to_string(h(id));
}

/* ------------------------------------------------------------- server --- */

/* An icap::Server on 127.0.0.1 (kernel-chosen port) run in a thread. */
class TestServer {
 public:
  explicit TestServer(unsigned workers = 1) {
    srv.workers(workers);
    srv.log([this](icap_log_level, std::string_view m) { log.add(std::string(m)); },
            ICAP_LOG_DEBUG);
    // Keep failure cases fast.
    srv.limit(ICAP_LIMIT_DRAIN_TIMEOUT_MS, 2000);
  }
  ~TestServer() { stop(); }

  void start() {
    srv.listen("127.0.0.1", 0);
    port = srv.port(0);
    thread_ = std::thread([this] {
      try {
        srv.run();
      } catch (const std::exception& e) {
        log.add(std::string("run failed: ") + e.what());
      }
    });
  }
  void stop() {
    if (thread_.joinable()) {
      srv.stop();
      thread_.join();
    }
  }

  Recorder log;  // declared first: destroyed after srv, which may log
  icap::Server srv;
  int port = 0;

 private:
  std::thread thread_;
};

/* ------------------------------------------------------------- client --- */

/* A response as these tests look at it: the ICAP headers as icap::Headers
 * (so that the wrapper's own lookup is what the tests use). */
struct Response {
  int status = 0;
  std::string status_line;
  icap::Headers headers;  // ICAP headers
  std::string http_head;  // encapsulated HTTP header block(s), raw
  std::string body;       // de-chunked encapsulated body
  bool has_body = false;
  std::string raw;  // the head as received, and the body's size (for messages)
};

/* The client of tests/common (strict parser, bounded waits), throwing on a
 * failure so that a test stops at the first broken exchange. */
class Client {
 public:
  explicit Client(int port) : c_(port) {
    if (!c_.ok()) throw std::runtime_error("connect");
  }

  void send(const std::string& bytes) {
    if (!c_.send_all(bytes)) throw std::runtime_error("send failed");
  }
  void close() { c_.close(); }
  /* Close with RST instead of FIN (abrupt client loss). */
  void reset() { c_.reset(); }

  /* Read one ICAP response (a 100 Continue is a response of its own). */
  Response read_response(std::chrono::milliseconds timeout = 5000ms) {
    icaptest::Reply got = c_.read_response(timeout);
    if (!got.ok)
      throw std::runtime_error("no well-formed response: " + got.error + "; got: " + c_.pending());
    Response r;
    r.status = got.code;
    r.status_line = got.status_line;
    r.raw = got.status_line + "\r\n";
    for (const auto& h : got.headers) {
      r.headers.add(h.first, h.second);
      r.raw += h.first + ": " + h.second + "\r\n";
    }
    r.http_head = got.http_head();
    r.raw += "\r\n" + r.http_head;
    r.has_body = got.has_body;
    r.body = std::move(got.body);
    if (r.has_body) r.raw += "[body of " + std::to_string(r.body.size()) + " bytes]";
    return r;
  }

  /* True if the server closes the connection within `timeout`. */
  bool closed_by_peer(std::chrono::milliseconds timeout = 3000ms) {
    return c_.wait_closed(timeout);
  }

 private:
  icaptest::Client c_;
};

/* ----------------------------------------------------------- builders --- */

/* Chunked encoding of `pieces`, ended by "0\r\n\r\n" or "0; ieof\r\n\r\n"
 * (or not ended when terminator is empty). */
inline std::string chunked_pieces(const std::vector<std::string>& pieces,
                                  const std::string& terminator = "0\r\n\r\n") {
  std::string out;
  for (const auto& p : pieces) out += chunk(p);
  return out + terminator;
}
inline const char* const kIeof = "0; ieof\r\n\r\n";

/* An ICAP request head with a correct Encapsulated header. `req_hdr` and
 * `res_hdr` are complete HTTP header blocks (ending in an empty line) or
 * empty; `body` says which body section follows ("req-body", "res-body")
 * or "" for null-body. `extra` are ICAP header lines ("Name: v\r\n"). */
inline std::string icap_head(const std::string& method, int port, const std::string& service,
                             const std::string& extra, const std::string& req_hdr,
                             const std::string& res_hdr, const std::string& body) {
  Msg m;
  m.method = method;
  m.svc = service;
  m.authority = "127.0.0.1:" + std::to_string(port);
  m.hdrs = extra;
  m.req = req_hdr;
  m.res = res_hdr;
  m.entity = body.empty() ? "null-body" : body;
  return m.str();
}

inline const std::string kReqHdr =
    "GET http://example.com/path?q=1 HTTP/1.1\r\n"
    "Host: example.com\r\n"
    "Cookie: a=1\r\n"
    "Cookie: b=2\r\n"
    "\r\n";
inline const std::string kResHdr =
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: text/plain\r\n"
    "Server: origin/1.0\r\n"
    "X-Keep: yes\r\n"
    "\r\n";

/* A REQMOD of kReqHdr, without a body, to `service`. */
inline std::string reqmod_request(int port, const std::string& service,
                                  const std::string& extra = "") {
  return icap_head("REQMOD", port, service, extra, kReqHdr, "", "");
}

/* A RESPMOD of kReqHdr and kResHdr to `service` with the body `pieces`,
 * ended by `terminator` as in chunked_pieces(). */
inline std::string respmod_request(int port, const std::string& service,
                                   const std::vector<std::string>& pieces,
                                   const std::string& extra = "",
                                   const std::string& terminator = "0\r\n\r\n") {
  return icap_head("RESPMOD", port, service, extra, kReqHdr, kResHdr, "res-body") +
         chunked_pieces(pieces, terminator);
}

/* The response to `request`, sent on a new connection. */
inline Response response_to(int port, const std::string& request) {
  Client c(port);
  c.send(request);
  return c.read_response();
}

/* The status of a REQMOD (kReqHdr, no body) to `service`, on a new
 * connection. */
inline int reqmod_status(int port, const std::string& service, const std::string& extra = "") {
  return response_to(port, reqmod_request(port, service, extra)).status;
}

/* ---------------------------------------------------------- expecting --- */

/* `request` on a new connection gets a 500 and the server closes the
 * connection (what a failed handler gives). */
inline void expect_500_and_close(int port, const std::string& request) {
  Client c(port);
  c.send(request);
  Response r = c.read_response();
  EXPECT_EQ(r.status, 500) << r.raw;
  EXPECT_TRUE(c.closed_by_peer());
}

/* A RESPMOD to `service` with "Preview: <preview>" and the body `previewed`
 * (no ieof) on a new connection: expects 100 Continue, sends the rest of the
 * body and returns the final response. */
inline Response respmod_after_continue(int port, const std::string& service, int preview,
                                       const std::vector<std::string>& previewed,
                                       const std::vector<std::string>& rest) {
  Client c(port);
  c.send(respmod_request(port, service, previewed, "Preview: " + std::to_string(preview) + "\r\n"));
  Response cont = c.read_response();
  EXPECT_EQ(cont.status, 100) << cont.raw;
  c.send(chunked_pieces(rest));
  return c.read_response();
}

/* A handler recorded "<what>: yes" or "<what>: no" each time it checked
 * something: `answer` was recorded, the other answer never. */
inline void expect_always(const Recorder& seen, const std::string& what,
                          const std::string& answer) {
  const std::string other = answer == "yes" ? "no" : "yes";
  EXPECT_TRUE(seen.contains(what + ": " + answer)) << seen.joined();
  EXPECT_FALSE(seen.contains(what + ": " + other)) << seen.joined();
}

/* Runs `srv` (a server the test set up itself) on 127.0.0.1, kernel-chosen
 * port, in a thread while `body(port)` runs; then stops it. */
template <class F>
void while_running(icap::Server& srv, F&& body) {
  srv.listen("127.0.0.1", 0);
  int port = srv.port();
  std::thread t([&] { srv.run(); });
  body(port);
  srv.stop();
  t.join();
}

}  // namespace cpptest

#endif  // ICAP_TESTS_CPP_TEST_SUPPORT_HPP
