/*
 * Test support for the C++ wrapper tests: an icap::Server running on
 * 127.0.0.1:0 in a thread, a raw-socket ICAP client that sends exact bytes
 * and parses responses, builders for ICAP requests, and a small
 * wait-with-timeout helper for events that happen on the server's threads.
 */
#ifndef ICAP_TESTS_CPP_TEST_SUPPORT_HPP
#define ICAP_TESTS_CPP_TEST_SUPPORT_HPP

#include <icap/icap.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

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

namespace icaptest {

using namespace std::chrono_literals;

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

struct Response {
  int status = 0;
  std::string status_line;
  icap::Headers headers;  // ICAP headers
  std::string http_head;  // encapsulated HTTP header block(s), raw
  std::string body;       // de-chunked encapsulated body
  bool has_body = false;
  std::string raw;
};

class Client {
 public:
  explicit Client(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) throw std::runtime_error("socket");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(fd_);
      throw std::runtime_error("connect");
    }
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~Client() { close(); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  void send(const std::string& bytes) {
    std::size_t off = 0;
    while (off < bytes.size()) {
      ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n <= 0) throw std::runtime_error("send failed");
      off += static_cast<std::size_t>(n);
    }
  }
  void close() {
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  /* Close with RST instead of FIN (abrupt client loss). */
  void reset() {
    if (fd_ >= 0) {
      linger l{1, 0};
      ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
      close();
    }
  }

  /* Read one ICAP response (a 100 Continue is a response of its own). */
  Response read_response(std::chrono::milliseconds timeout = 5000ms) {
    Response r;
    std::string head = read_until("\r\n\r\n", timeout);
    r.raw = head;
    std::size_t eol = head.find("\r\n");
    r.status_line = head.substr(0, eol);
    if (r.status_line.size() >= 12) r.status = std::stoi(r.status_line.substr(9, 3));
    std::size_t pos = eol + 2;
    while (pos < head.size() - 2) {
      std::size_t e = head.find("\r\n", pos);
      std::string line = head.substr(pos, e - pos);
      pos = e + 2;
      std::size_t colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string v = line.substr(colon + 1);
      while (!v.empty() && v.front() == ' ') v.erase(0, 1);
      r.headers.add(line.substr(0, colon), v);
    }
    if (r.status == 100) return r;
    auto enc = r.headers.get("Encapsulated");
    if (!enc) return r;
    // The last entry says where the header blocks end and what follows.
    std::string e(*enc);
    std::size_t last = e.rfind(',');
    std::string tail = last == std::string::npos ? e : e.substr(last + 1);
    while (!tail.empty() && tail.front() == ' ') tail.erase(0, 1);
    std::size_t eq = tail.find('=');
    std::string name = tail.substr(0, eq);
    std::size_t off = std::stoul(tail.substr(eq + 1));
    r.http_head = read_exact(off, timeout);
    r.raw += r.http_head;
    if (name == "req-body" || name == "res-body") {
      r.has_body = true;
      while (true) {
        std::string size_line = read_until("\r\n", timeout);
        r.raw += size_line;
        std::size_t n = std::stoul(size_line, nullptr, 16);
        if (n == 0) {
          std::string crlf = read_until("\r\n", timeout);  // no trailers
          r.raw += crlf;
          break;
        }
        std::string data = read_exact(n + 2, timeout);
        r.raw += data;
        r.body += data.substr(0, n);
      }
    }
    return r;
  }

  /* True if the server closes the connection within `timeout` (pending
   * unread bytes are discarded). */
  bool closed_by_peer(std::chrono::milliseconds timeout = 3000ms) {
    auto until = std::chrono::steady_clock::now() + timeout;
    buf_.clear();
    while (std::chrono::steady_clock::now() < until) {
      pollfd p{fd_, POLLIN, 0};
      int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                      until - std::chrono::steady_clock::now())
                                      .count());
      if (::poll(&p, 1, left > 0 ? left : 0) <= 0) return false;
      char tmp[4096];
      ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
      if (n <= 0) return true;
    }
    return false;
  }

  /* Any bytes arrive within `timeout`? (does not consume them) */
  bool readable(std::chrono::milliseconds timeout) {
    if (!buf_.empty()) return true;
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, static_cast<int>(timeout.count())) > 0;
  }

 private:
  bool fill(std::chrono::steady_clock::time_point until) {
    auto now = std::chrono::steady_clock::now();
    if (now >= until) return false;
    pollfd p{fd_, POLLIN, 0};
    int ms = static_cast<int>(
        std::chrono::duration_cast<std::chrono::milliseconds>(until - now).count());
    if (::poll(&p, 1, ms < 1 ? 1 : ms) <= 0) return false;
    char tmp[65536];
    ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n <= 0) return false;
    buf_.append(tmp, static_cast<std::size_t>(n));
    return true;
  }
  std::string read_until(const std::string& delim, std::chrono::milliseconds timeout) {
    auto until = std::chrono::steady_clock::now() + timeout;
    while (true) {
      std::size_t p = buf_.find(delim);
      if (p != std::string::npos) {
        std::string out = buf_.substr(0, p + delim.size());
        buf_.erase(0, p + delim.size());
        return out;
      }
      if (!fill(until)) throw std::runtime_error("timeout/EOF waiting for response; got: " + buf_);
    }
  }
  std::string read_exact(std::size_t n, std::chrono::milliseconds timeout) {
    auto until = std::chrono::steady_clock::now() + timeout;
    while (buf_.size() < n)
      if (!fill(until))
        throw std::runtime_error("timeout/EOF reading " + std::to_string(n) +
                                 " bytes; got: " + buf_);
    std::string out = buf_.substr(0, n);
    buf_.erase(0, n);
    return out;
  }

  int fd_ = -1;
  std::string buf_;
};

/* ----------------------------------------------------------- builders --- */

/* Chunked encoding of `pieces`, ended by "0\r\n\r\n" or "0; ieof\r\n\r\n"
 * (or not ended when terminator is empty). */
inline std::string chunked(const std::vector<std::string>& pieces,
                           const std::string& terminator = "0\r\n\r\n") {
  std::string out;
  char size[32];
  for (const auto& p : pieces) {
    std::snprintf(size, sizeof size, "%zx\r\n", p.size());
    out += size;
    out += p;
    out += "\r\n";
  }
  out += terminator;
  return out;
}
inline const char* const kIeof = "0; ieof\r\n\r\n";

/* An ICAP request head with a correct Encapsulated header. `req_hdr` and
 * `res_hdr` are complete HTTP header blocks (ending in an empty line) or
 * empty; `body` says which body section follows ("req-body", "res-body")
 * or "" for null-body. `extra` are ICAP header lines ("Name: v\r\n"). */
inline std::string icap_head(const std::string& method, int port, const std::string& service,
                             const std::string& extra, const std::string& req_hdr,
                             const std::string& res_hdr, const std::string& body) {
  std::string enc;
  std::size_t off = 0;
  auto add = [&](const std::string& name, std::size_t at) {
    if (!enc.empty()) enc += ", ";
    enc += name + "=" + std::to_string(at);
  };
  if (!req_hdr.empty()) {
    add("req-hdr", off);
    off += req_hdr.size();
  }
  if (!res_hdr.empty()) {
    add("res-hdr", off);
    off += res_hdr.size();
  }
  add(body.empty() ? "null-body" : body, off);
  return method + " icap://127.0.0.1:" + std::to_string(port) + "/" + service +
         " ICAP/1.0\r\nHost: 127.0.0.1:" + std::to_string(port) + "\r\n" + extra +
         "Encapsulated: " + enc + "\r\n\r\n" + req_hdr + res_hdr;
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

}  // namespace icaptest

#endif  // ICAP_TESTS_CPP_TEST_SUPPORT_HPP
