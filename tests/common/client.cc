// SPDX-License-Identifier: MIT
#include "client.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

namespace icaptest {

namespace {

int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<ms>(deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

}  // namespace

Client::~Client() { close(); }

Client::Client(Client &&o) noexcept { *this = std::move(o); }

Client &Client::operator=(Client &&o) noexcept {
  if (this != &o) {
    close();
    fd_ = o.fd_;
    o.fd_ = -1;
    buf_ = std::move(o.buf_);
    pos_ = o.pos_;
    total_rx_ = o.total_rx_;
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
    int err = 0;
    socklen_t len = sizeof err;
    if (n > 0) getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (n <= 0 || err != 0) {
      ::close(fd);
      return n <= 0 ? -ETIMEDOUT : -err;
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
  return send_some(data.data(), data.size(), timeout) == static_cast<long>(data.size());
}

bool Client::send(const std::string &data, ms timeout) {
  if (fd_ < 0) return false;
  auto deadline = Clock::now() + timeout;
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return false;
    // Wait for room, reading what the server says meanwhile.
    int left = remaining_ms(deadline);
    if (left <= 0) return false;
    pollfd p{fd_, static_cast<short>(POLLOUT | (eof_ ? 0 : POLLIN)), 0};
    int r = ::poll(&p, 1, left);
    if (r < 0 && errno != EINTR) return false;
    if (p.revents & POLLIN) {
      char tmp[65536];
      ssize_t m = ::recv(fd_, tmp, sizeof tmp, 0);
      if (m > 0) {
        buf_.append(tmp, static_cast<size_t>(m));
        total_rx_ += static_cast<size_t>(m);
      } else if (m == 0 || (errno != EAGAIN && errno != EINTR)) {
        eof_ = true;
      }
    }
    if (p.revents & (POLLERR | POLLHUP)) return false;
  }
  return true;
}

void Client::shutdown_write() {
  if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
}

void Client::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void Client::reset() {
  if (fd_ < 0) return;
  linger l{1, 0};
  setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  close();
}

bool Client::fill(Clock::time_point deadline) {
  if (fd_ < 0) return error_ = "not connected", false;
  if (eof_) return error_ = "closed", false;
  // Keep the buffer small while a long stream goes through it.
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
      total_rx_ += static_cast<size_t>(k);
      return true;
    }
    if (k < 0 && errno == EINTR) continue;
    if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      int left = remaining_ms(deadline);
      pollfd pf{fd_, POLLIN, 0};
      int r = left > 0 ? ::poll(&pf, 1, left) : 0;
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return error_ = std::string("poll: ") + strerror(errno), false;
      if (r == 0) return error_ = "timeout", false;
      continue;
    }
    // EOF, or ECONNRESET and friends: the peer is gone.
    error_ = k == 0 ? "closed" : std::string("closed: ") + strerror(errno);
    eof_ = true;
    return false;
  }
}

Reply::Got Client::read(icapwire::Response &r, ms timeout, std::string *why) {
  auto deadline = Clock::now() + timeout;
  std::string w;
  while (true) {
    if (pos_ < buf_.size()) {
      icapwire::Parse p = icapwire::parse_response(std::string_view(buf_).substr(pos_), r, w);
      if (p == icapwire::Parse::kOk) {
        pos_ += r.wire_bytes;
        return Reply::Got::kResponse;
      }
      if (p == icapwire::Parse::kBad) {
        if (why) *why = w;
        return Reply::Got::kBad;
      }
    }
    if (!fill(deadline)) {
      if (why) *why = eof_ ? "closed" : "timeout";
      return eof_ ? Reply::Got::kClosed : Reply::Got::kTimeout;
    }
  }
}

Reply Client::read_response(ms timeout, const std::function<void(const char *, size_t)> &sink) {
  Reply r;
  auto deadline = Clock::now() + timeout;
  auto fail = [&](Reply::Got got, const std::string &what) {
    r.got = got;
    r.ok = false;
    r.error = what;
    return r;
  };
  auto gone = [&](const std::string &what) {
    return fail(eof_ ? Reply::Got::kClosed : Reply::Got::kTimeout, what + " (" + error_ + ")");
  };
  std::string why;
  // The head: status line, ICAP headers and the HTTP header sections.
  while (true) {
    icapwire::Parse p = icapwire::Parse::kPartial;
    if (pos_ < buf_.size()) p = icapwire::parse_head(std::string_view(buf_).substr(pos_), r, why);
    if (p == icapwire::Parse::kOk) break;
    if (p == icapwire::Parse::kBad) return fail(Reply::Got::kBad, why);
    if (!fill(deadline)) return gone("reading the response head");
  }
  pos_ += r.wire_bytes;
  if (r.has_body) {
    icapwire::ChunkedReader body;
    auto take = [&](const char *d, size_t n) {
      if (sink)
        sink(d, n);
      else
        r.body.append(d, n);
      r.body_bytes += n;
    };
    while (true) {
      size_t used = 0;
      icapwire::Parse p = body.read(std::string_view(buf_).substr(pos_), used, why, take);
      pos_ += used;
      r.wire_bytes += used;
      if (p == icapwire::Parse::kOk) break;
      if (p == icapwire::Parse::kBad) return fail(Reply::Got::kBad, why);
      if (!fill(deadline)) return gone("reading the body");
    }
    r.last_chunk_ext = body.last_ext();
  }
  r.got = Reply::Got::kResponse;
  r.ok = true;
  return r;
}

bool Client::wait_closed(ms timeout) {
  auto deadline = Clock::now() + timeout;
  while (!eof_)
    if (!fill(deadline) && !eof_) return false;
  return true;
}

}  // namespace icaptest
