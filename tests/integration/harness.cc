#include "harness.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>

namespace itest {

namespace {

std::string lower(std::string s) {
  for (char &c : s) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(const std::string &s) {
  size_t a = s.find_first_not_of(" \t");
  if (a == std::string::npos) return "";
  size_t b = s.find_last_not_of(" \t");
  return s.substr(a, b - a + 1);
}

int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<ms>(deadline - Clock::now()).count();
  if (left < 0) return 0;
  return static_cast<int>(left);
}

}  // namespace

// ------------------------------------------------------------- server ---

TestServer::TestServer() {
  if (icap_server_new(&srv_) != 0) {
    ADD_FAILURE() << "icap_server_new failed";
    srv_ = nullptr;
    return;
  }
  icap_server_set_log(srv_, ICAP_LOG_DEBUG, on_log, this);
  // Small, predictable default for tests; a test may override it.
  icap_server_set_workers(srv_, 2);
}

TestServer::~TestServer() {
  if (started_) stop_and_join();
  icap_server_free(srv_);
}

void TestServer::on_log(icap_server *, icap_log_level level, const char *msg, void *user) {
  auto *self = static_cast<TestServer *>(user);
  static const char *const names[] = {"error", "warn", "info", "debug"};
  std::lock_guard<std::mutex> g(self->mu_);
  if (self->logs_.size() < 10000) self->logs_.push_back(std::string(names[level & 3]) + ": " + msg);
  if (getenv("ICAP_TEST_LOG")) fprintf(stderr, "[server] %s: %s\n", names[level & 3], msg);
}

std::vector<std::string> TestServer::logs() {
  std::lock_guard<std::mutex> g(mu_);
  return logs_;
}

std::string TestServer::logs_text() {
  std::string s;
  for (auto &l : logs()) s += "  " + l + "\n";
  return s;
}

icap_service *TestServer::add_service(const char *name) {
  icap_service *svc = nullptr;
  int rc = icap_server_add_service(srv_, name, &svc);
  EXPECT_EQ(rc, 0) << "icap_server_add_service(" << name << "): " << icap_strerror(rc);
  return rc == 0 ? svc : nullptr;
}

void TestServer::set_limit(icap_limit which, uint64_t v) {
  int rc = icap_server_set_limit(srv_, which, v);
  EXPECT_EQ(rc, 0) << "icap_server_set_limit(" << which << "): " << icap_strerror(rc);
}

void TestServer::set_workers(unsigned n) {
  int rc = icap_server_set_workers(srv_, n);
  EXPECT_EQ(rc, 0) << "icap_server_set_workers: " << icap_strerror(rc);
}

bool TestServer::start() {
  if (!srv_) return false;
  int rc = icap_server_listen(srv_, "127.0.0.1", 0);
  if (rc != 0) {
    ADD_FAILURE() << "icap_server_listen: " << icap_strerror(rc);
    return false;
  }
  port_ = icap_server_port(srv_, 0);
  if (port_ <= 0) {
    ADD_FAILURE() << "icap_server_port: " << port_;
    return false;
  }
  started_ = true;
  thread_ = std::thread([this] {
    int r = icap_server_run(srv_);
    {
      std::lock_guard<std::mutex> g(mu_);
      run_rc_ = r;
      returned_ = true;
    }
    cv_.notify_all();
  });
  return true;
}

void TestServer::stop() {
  if (srv_) icap_server_stop(srv_);
}

bool TestServer::wait_returned(ms timeout) {
  std::unique_lock<std::mutex> g(mu_);
  return cv_.wait_for(g, timeout, [this] { return returned_.load(); });
}

void TestServer::stop_and_join(ms timeout) {
  if (!started_) return;
  stop();
  if (!wait_returned(timeout)) {
    fprintf(stderr,
            "FATAL: icap_server_run() did not return within %lld ms of "
            "icap_server_stop(); server log:\n%s\n",
            static_cast<long long>(timeout.count()), logs_text().c_str());
    fflush(stderr);
    std::abort();
  }
  thread_.join();
  started_ = false;
}

// ----------------------------------------------------------- response ---

std::optional<std::string> Response::header(const std::string &name) const {
  std::string n = lower(name);
  for (auto &h : headers)
    if (lower(h.first) == n) return h.second;
  return std::nullopt;
}

bool Response::conn_close() const {
  auto c = header("Connection");
  return c && lower(*c).find("close") != std::string::npos;
}

// ------------------------------------------------------------- client ---

Client::~Client() { close(); }

Client::Client(Client &&o) noexcept { *this = std::move(o); }

Client &Client::operator=(Client &&o) noexcept {
  if (this != &o) {
    close();
    fd_ = o.fd_;
    o.fd_ = -1;
    buf_ = std::move(o.buf_);
    pos_ = o.pos_;
    eof_ = o.eof_;
    error_ = std::move(o.error_);
  }
  return *this;
}

int Client::connect(int port, int rcvbuf, int sndbuf, ms timeout) {
  close();
  buf_.clear();
  pos_ = 0;
  eof_ = false;
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -errno;
  if (rcvbuf > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  if (sndbuf > 0) setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int rc = ::connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a);
  if (rc != 0 && errno != EINPROGRESS) {
    int e = errno;
    ::close(fd);
    return -e;
  }
  if (rc != 0) {
    pollfd p{fd, POLLOUT, 0};
    int n = ::poll(&p, 1, static_cast<int>(timeout.count()));
    if (n <= 0) {
      ::close(fd);
      return -ETIMEDOUT;
    }
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      ::close(fd);
      return -err;
    }
  }
  fd_ = fd;
  return 0;
}

int Client::local_port() const {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  if (fd_ < 0 || getsockname(fd_, reinterpret_cast<sockaddr *>(&a), &len) != 0) return -1;
  return ntohs(a.sin_port);
}

long Client::send_some(const char *p, size_t n, ms timeout) {
  if (fd_ < 0) return -1;
  auto deadline = Clock::now() + timeout;
  size_t sent = 0;
  while (sent < n) {
    ssize_t k = ::send(fd_, p + sent, n - sent, MSG_NOSIGNAL);
    if (k > 0) {
      sent += static_cast<size_t>(k);
      continue;
    }
    if (k < 0 && errno == EINTR) continue;
    if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      int left = remaining_ms(deadline);
      if (left <= 0) break;
      pollfd pf{fd_, POLLOUT, 0};
      int r = ::poll(&pf, 1, left);
      if (r < 0 && errno != EINTR) return -1;
      if (r == 0) break;
      continue;
    }
    return sent ? static_cast<long>(sent) : -1;
  }
  return static_cast<long>(sent);
}

bool Client::send_all(const std::string &data, ms timeout) {
  long n = send_some(data.data(), data.size(), timeout);
  return n == static_cast<long>(data.size());
}

bool Client::fill(Clock::time_point deadline) {
  if (fd_ < 0) {
    error_ = "not connected";
    return false;
  }
  if (eof_) {
    error_ = "connection closed by peer";
    return false;
  }
  if (pos_ > 0 && pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  } else if (pos_ > (1u << 20)) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  for (;;) {
    char tmp[65536];
    ssize_t k = ::recv(fd_, tmp, sizeof tmp, 0);
    if (k > 0) {
      buf_.append(tmp, static_cast<size_t>(k));
      return true;
    }
    if (k == 0) {
      eof_ = true;
      error_ = "connection closed by peer";
      return false;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      int left = remaining_ms(deadline);
      if (left <= 0) {
        error_ = "timeout";
        return false;
      }
      pollfd pf{fd_, POLLIN, 0};
      int r = ::poll(&pf, 1, left);
      if (r < 0 && errno != EINTR) {
        error_ = std::string("poll: ") + strerror(errno);
        return false;
      }
      if (r == 0) {
        error_ = "timeout";
        return false;
      }
      continue;
    }
    eof_ = true;  // ECONNRESET and friends: the peer is gone
    error_ = std::string("recv: ") + strerror(errno);
    return false;
  }
}

bool Client::need(size_t n, Clock::time_point deadline) {
  while (buf_.size() - pos_ < n)
    if (!fill(deadline)) return false;
  return true;
}

bool Client::read_line(std::string &line, Clock::time_point deadline, size_t max) {
  size_t scan = pos_;
  for (;;) {
    size_t e = buf_.find("\r\n", scan);
    if (e != std::string::npos) {
      line = buf_.substr(pos_, e - pos_);
      pos_ = e + 2;
      return true;
    }
    if (buf_.size() - pos_ > max) {
      error_ = "line too long";
      return false;
    }
    scan = buf_.size() > 0 ? buf_.size() - 1 : 0;
    if (scan < pos_) scan = pos_;
    size_t keep = scan - pos_;
    if (!fill(deadline)) return false;
    scan = pos_ + keep;  // fill() may have compacted the buffer
  }
}

Response Client::read_response(ms timeout, const std::function<void(const char *, size_t)> &sink) {
  Response r;
  auto deadline = Clock::now() + timeout;
  auto fail = [&](const std::string &what) {
    r.ok = false;
    r.error = what + (error_.empty() ? "" : " (" + error_ + ")");
    return r;
  };
  error_.clear();
  std::string line;
  if (!read_line(line, deadline)) return fail("reading the status line");
  r.status_line = line;
  if (line.compare(0, 9, "ICAP/1.0 ") != 0 || line.size() < 12)
    return fail("bad status line: '" + line + "'");
  r.code = atoi(line.c_str() + 9);
  for (int i = 0;; i++) {
    if (i > 200) return fail("too many headers");
    if (!read_line(line, deadline)) return fail("reading headers");
    if (line.empty()) break;
    size_t c = line.find(':');
    if (c == std::string::npos) return fail("bad header line: '" + line + "'");
    r.headers.emplace_back(trim(line.substr(0, c)), trim(line.substr(c + 1)));
  }
  if (r.code == 100) {
    r.ok = true;
    return r;
  }
  auto enc = r.header("Encapsulated");
  if (!enc) return fail("no Encapsulated header in " + r.status_line);
  r.encapsulated = *enc;
  // Find the body entity and its offset (the header sections end there).
  long body_off = -1;
  std::string body_kind;
  size_t p = 0;
  std::string v = *enc;
  while (p < v.size()) {
    size_t comma = v.find(',', p);
    std::string item =
        trim(v.substr(p, comma == std::string::npos ? std::string::npos : comma - p));
    p = comma == std::string::npos ? v.size() : comma + 1;
    size_t eq = item.find('=');
    if (eq == std::string::npos) return fail("bad Encapsulated: " + v);
    std::string name = lower(trim(item.substr(0, eq)));
    long off = atol(item.c_str() + eq + 1);
    if (name.size() > 5 && name.compare(name.size() - 5, 5, "-body") == 0) {
      body_kind = name;
      body_off = off;
    }
  }
  if (body_off < 0) return fail("Encapsulated without a body entity: " + v);
  if (!need(static_cast<size_t>(body_off), deadline)) return fail("reading the HTTP headers");
  r.http_head = buf_.substr(pos_, static_cast<size_t>(body_off));
  pos_ += static_cast<size_t>(body_off);
  if (body_kind == "null-body") {
    r.ok = true;
    return r;
  }
  r.has_body = true;
  for (;;) {
    if (!read_line(line, deadline, 1024)) return fail("reading a chunk size");
    std::string sz = line, ext;
    size_t semi = line.find(';');
    if (semi != std::string::npos) {
      sz = line.substr(0, semi);
      ext = trim(line.substr(semi + 1));
    }
    sz = trim(sz);
    if (sz.empty() || sz.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos)
      return fail("bad chunk size line: '" + line + "'");
    uint64_t n = strtoull(sz.c_str(), nullptr, 16);
    if (n == 0) {
      r.last_chunk_ext = ext;
      // Trailer section up to the empty line.
      for (int i = 0;; i++) {
        if (i > 100) return fail("trailer too long");
        if (!read_line(line, deadline)) return fail("reading the last chunk's CRLF");
        if (line.empty()) break;
      }
      r.ok = true;
      return r;
    }
    uint64_t left = n;
    while (left > 0) {
      if (pos_ == buf_.size() && !fill(deadline)) return fail("reading chunk data");
      size_t take = std::min<uint64_t>(left, buf_.size() - pos_);
      if (sink)
        sink(buf_.data() + pos_, take);
      else
        r.body.append(buf_, pos_, take);
      r.body_bytes += take;
      pos_ += take;
      left -= take;
    }
    if (!need(2, deadline)) return fail("reading a chunk's CRLF");
    if (buf_.compare(pos_, 2, "\r\n") != 0) return fail("chunk data not followed by CRLF");
    pos_ += 2;
  }
}

bool Client::wait_closed(ms timeout) {
  auto deadline = Clock::now() + timeout;
  while (!eof_) {
    if (!fill(deadline) && !eof_) return false;
  }
  return true;
}

void Client::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void Client::reset() {
  if (fd_ < 0) return;
  linger l{1, 0};
  setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  ::close(fd_);
  fd_ = -1;
}

void Client::shutdown_write() {
  if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
}

// ---------------------------------------------------------- requests ---

std::string build_request(const std::string &method, const std::string &service,
                          const std::string &req_hdr, const std::string &res_hdr,
                          const std::optional<std::string> &body, const std::string &extra_headers,
                          size_t chunk) {
  std::string enc;
  size_t off = 0;
  bool reqmod = method == "REQMOD";
  if (!req_hdr.empty()) {
    enc += "req-hdr=0";
    off += req_hdr.size();
  }
  if (!res_hdr.empty()) {
    if (!enc.empty()) enc += ", ";
    enc += "res-hdr=" + std::to_string(off);
    off += res_hdr.size();
  }
  if (!enc.empty()) enc += ", ";
  if (body)
    enc += std::string(reqmod ? "req-body=" : "res-body=") + std::to_string(off);
  else
    enc += "null-body=" + std::to_string(off);

  std::string s = method + " icap://127.0.0.1/" + service + " ICAP/1.0\r\n";
  s += "Host: 127.0.0.1\r\n";
  s += extra_headers;
  s += "Encapsulated: " + enc + "\r\n\r\n";
  s += req_hdr;
  s += res_hdr;
  if (body) {
    size_t step = chunk ? chunk : (body->empty() ? 1 : body->size());
    for (size_t i = 0; i < body->size(); i += step) {
      size_t n = std::min(step, body->size() - i);
      char hex[32];
      snprintf(hex, sizeof hex, "%zx\r\n", n);
      s += hex;
      s.append(*body, i, n);
      s += "\r\n";
    }
    s += "0\r\n\r\n";
  }
  return s;
}

std::string options_request(const std::string &service, const std::string &extra) {
  // As Squid sends it: no Encapsulated header.
  return "OPTIONS icap://127.0.0.1/" + service + " ICAP/1.0\r\nHost: 127.0.0.1\r\n" + extra +
         "\r\n";
}

std::string http_request_head(const std::string &url) {
  return "GET " + url + " HTTP/1.1\r\nHost: origin.example\r\nAccept: */*\r\n\r\n";
}

std::string http_response_head(size_t content_length) {
  return "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
         std::to_string(content_length) + "\r\n\r\n";
}

std::string reqmod_get(const std::string &service, const std::string &url,
                       const std::string &extra) {
  return build_request("REQMOD", service, http_request_head(url), "", std::nullopt, extra);
}

std::string respmod(const std::string &service, const std::string &body, const std::string &extra,
                    size_t chunk) {
  return build_request("RESPMOD", service, http_request_head("http://origin.example/x"),
                       http_response_head(body.size()), body, extra, chunk);
}

std::string respmod_head(const std::string &service, uint64_t content_length,
                         const std::string &extra) {
  std::string s = build_request("RESPMOD", service, http_request_head("http://origin.example/big"),
                                http_response_head(content_length), std::string(), extra);
  // Drop the "0\r\n\r\n" that build_request appended for the empty body.
  s.resize(s.size() - 5);
  return s;
}

void fill_pattern(char *out, size_t n, uint64_t offset, uint32_t seed) {
  for (size_t i = 0; i < n; i++) out[i] = pattern_byte(offset + i, seed);
}

// ------------------------------------------------------------ helpers ---

int echo_handler(icap_request *req, void *user) {
  if (user) static_cast<std::atomic<int> *>(user)->fetch_add(1);
  return icap_request_no_adaptation(req);
}

icap_service *add_echo_service(TestServer &s, const char *name, std::atomic<int> *calls) {
  icap_service *svc = s.add_service(name);
  if (!svc) return nullptr;
  EXPECT_EQ(icap_service_set_handler(svc, ICAP_METHOD_REQMOD, echo_handler, calls), 0);
  EXPECT_EQ(icap_service_set_handler(svc, ICAP_METHOD_RESPMOD, echo_handler, calls), 0);
  return svc;
}

bool wait_until(const std::function<bool()> &pred, ms timeout) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    if (pred()) return true;
    if (Clock::now() >= deadline) return pred();
    std::this_thread::sleep_for(ms(5));
  }
}

uint64_t rss_bytes() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.compare(0, 6, "VmRSS:") == 0) return strtoull(line.c_str() + 6, nullptr, 10) * 1024;
  }
  return 0;
}

}  // namespace itest
