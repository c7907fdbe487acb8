// SPDX-License-Identifier: MIT
// The one ICAP client of the tests that talk to a real server over
// loopback (integration, robustness, C++): a raw TCP connection to
// 127.0.0.1 that sends exact bytes, and reads responses with the strict
// parser of icap_wire.hpp. Every wait has a deadline (poll() with a
// timeout), so that no test can hang on a server that stops answering.
#ifndef ICAP_TESTS_COMMON_CLIENT_HPP
#define ICAP_TESTS_COMMON_CLIENT_HPP

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "icap_wire.hpp"

namespace icaptest {

using Clock = std::chrono::steady_clock;
using ms = std::chrono::milliseconds;

// A response as read off a socket.
struct Reply : icapwire::Response {
  enum class Got { kResponse, kClosed, kTimeout, kBad };
  Got got = Got::kTimeout;
  bool ok = false;    // a complete, well-formed response was read
  std::string error;  // why not, when !ok
};

class Client {
 public:
  using Got = Reply::Got;
  Client() = default;
  // Connects at once; see ok().
  explicit Client(int port, int rcvbuf = 0, int sndbuf = 0) { connect(port, rcvbuf, sndbuf); }
  ~Client();
  Client(Client &&o) noexcept;
  Client &operator=(Client &&o) noexcept;
  Client(const Client &) = delete;
  Client &operator=(const Client &) = delete;

  // Connects to 127.0.0.1:port. rcvbuf/sndbuf > 0 set small socket buffers
  // before connecting (for backpressure tests). Returns 0 or -errno.
  int connect(int port, int rcvbuf = 0, int sndbuf = 0, ms timeout = ms(5000));
  bool ok() const { return fd_ >= 0; }
  bool connected() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  // The local port of this connection (what the server sees as client port).
  int local_port() const;

  // Sends all of `data` within `timeout`, reading (and keeping) whatever the
  // server sends meanwhile so that neither side can block the other. Returns
  // false if the server closed or reset first, or on timeout.
  bool send(const std::string &data, ms timeout = ms(10000));
  // Sends everything without reading anything (for a backpressure test, or
  // a thread that sends while another one reads the same socket).
  bool send_all(const std::string &data, ms timeout = ms(10000));
  // Sends as much as the socket takes within `timeout`; returns the bytes
  // sent, or -1 on a socket error before anything was sent.
  long send_some(const char *p, size_t n, ms timeout);

  // Reads one whole response (held in memory) within `timeout`. An interim
  // "100 Continue" is a response of its own.
  Reply::Got read(icapwire::Response &r, ms timeout = ms(5000), std::string *why = nullptr);
  // Reads one response as it arrives: the body goes to `sink`, when given,
  // instead of Reply::body, so that a body of any size can be checked.
  Reply read_response(ms timeout = ms(10000),
                      const std::function<void(const char *, size_t)> &sink = {});

  // Waits for the server to close (EOF or reset) within `timeout`; data
  // that arrives meanwhile is kept (pending()).
  bool wait_closed(ms timeout = ms(5000));
  // True once the server closed (seen by a read).
  bool closed() const { return eof_; }
  bool peer_closed() const { return eof_; }
  // Received bytes not yet returned by a read.
  std::string pending() const { return buf_.substr(pos_); }
  size_t received() const { return total_rx_; }

  // Half-close (FIN), close, or close with a reset (SO_LINGER 0).
  void shutdown_write();
  void close();
  void reset();

 private:
  // Reads more into buf_; false on timeout, EOF or error (error_ says which).
  bool fill(Clock::time_point deadline);
  int fd_ = -1;
  std::string buf_;
  size_t pos_ = 0;
  size_t total_rx_ = 0;
  bool eof_ = false;
  std::string error_;
};

}  // namespace icaptest

#endif
