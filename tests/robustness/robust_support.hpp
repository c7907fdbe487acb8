// Support for the robustness and load tests: an icap_server running
// in-process on 127.0.0.1 (port 0) on its own thread, with the services the
// tests talk to, and a small raw-socket ICAP client whose every wait is
// bounded. Responses are read with tests/fuzz/icap_wire.hpp, a strict reader
// that shares no code with the library.
#ifndef ICAP_TESTS_ROBUSTNESS_ROBUST_SUPPORT_HPP
#define ICAP_TESTS_ROBUSTNESS_ROBUST_SUPPORT_HPP

#include <icap/icap.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "../fuzz/icap_wire.hpp"

namespace robust {

using Clock = std::chrono::steady_clock;
using ms = std::chrono::milliseconds;

// Counters the handlers keep (all services of one server).
struct Stats {
  std::atomic<uint64_t> dispatched{0};  // handler calls (REQMOD/RESPMOD)
  std::atomic<uint64_t> done{0};        // done callbacks
  std::atomic<uint64_t> done_ok{0}, done_reset{0}, done_timeout{0}, done_canceled{0}, done_proto{0},
      done_handler{0}, done_other{0};
};

// The services every test server has:
//   echo     REQMOD + RESPMOD, icap_request_no_adaptation() (204 or echo)
//   read     REQMOD + RESPMOD, reads the whole body with read_chunk (sends
//            100 Continue after a preview), then answers 200 with the
//            original head and what it read
//   reqonly  REQMOD only (RESPMOD gets 405), no_adaptation
//   never    REQMOD + RESPMOD, never answers (the handler timeout must)
//   preview-never  reads the preview, then never decides
//   fail     the handler returns ICAP_EIO
//   abort    the handler calls icap_request_abort()
//   abort-later  calls icap_request_abort() after an icap_request_offload()
struct ServerOptions {
  unsigned workers = 1;
  std::vector<std::pair<icap_limit, uint64_t>> limits;
};

class Server {
 public:
  explicit Server(const ServerOptions &o = ServerOptions());
  ~Server();
  Server(const Server &) = delete;
  Server &operator=(const Server &) = delete;

  // Listens and runs the server on a new thread; false on failure.
  bool start();
  int port() const { return port_; }
  // icap_server_stop(), then waits (bounded) for icap_server_run() to
  // return; returns how long that took, or -1 ms if it did not return in
  // `timeout` (the process then aborts in the destructor rather than hang).
  ms stop(ms timeout = ms(20000));
  bool running() const { return started_ && !returned_.load(); }
  Stats &stats() { return stats_; }
  std::string logs();

 private:
  static void on_log(icap_server *, icap_log_level, const char *msg, void *user);
  icap_server *srv_ = nullptr;
  std::thread thread_;
  int port_ = -1;
  bool started_ = false;
  std::atomic<bool> returned_{false};
  Stats stats_;
  std::mutex log_mu_;
  std::vector<std::string> logs_;
};

// A raw TCP connection to the server with deadlines on every wait.
class Conn {
 public:
  Conn() = default;
  explicit Conn(int port, int rcvbuf = 0, int sndbuf = 0) { connect(port, rcvbuf, sndbuf); }
  ~Conn();
  Conn(Conn &&o) noexcept;
  Conn &operator=(Conn &&o) noexcept;
  Conn(const Conn &) = delete;
  Conn &operator=(const Conn &) = delete;

  // 0 or -errno.
  int connect(int port, int rcvbuf = 0, int sndbuf = 0);
  bool ok() const { return fd_ >= 0; }
  int fd() const { return fd_; }

  // Sends all of `data` within `timeout`, reading (and keeping) whatever the
  // server sends meanwhile so that neither side can block the other. Returns
  // false if the server closed or reset first, or on timeout.
  bool send(const std::string &data, ms timeout = ms(10000));
  // Sends all of `data` without reading anything (for a thread that sends
  // while another one reads the same socket).
  bool send_only(const std::string &data, ms timeout = ms(10000));
  // Half-close (FIN), or close with a reset (SO_LINGER 0).
  void shutdown_write();
  void reset();
  void close();

  // Reads one response within `timeout`.
  enum class Got { kResponse, kClosed, kTimeout, kBad };
  Got read(icapwire::Response &r, ms timeout = ms(5000), std::string *why = nullptr);
  // Waits for the server to close the connection (EOF or reset) within
  // `timeout`; data that arrives meanwhile is kept (pending()).
  bool wait_closed(ms timeout = ms(5000));
  // True if the server closed (seen by a read).
  bool closed() const { return eof_; }
  // Received bytes not yet returned by read().
  std::string pending() const { return buf_.substr(pos_); }
  size_t received() const { return total_rx_; }

 private:
  bool fill(Clock::time_point deadline);  // false on EOF/error/timeout
  int fd_ = -1;
  std::string buf_;
  size_t pos_ = 0;
  size_t total_rx_ = 0;
  bool eof_ = false;
};

// ---- request builders.
// An OPTIONS request for `service` (no Encapsulated, as Squid sends it).
std::string options(const std::string &service = "echo", const std::string &extra = "");
// A REQMOD with a GET and no body.
std::string reqmod_get(const std::string &service = "echo", const std::string &extra = "");
// A RESPMOD with req-hdr, res-hdr and `body` in chunks of `chunk` bytes
// (0: one chunk). `extra` goes into the ICAP headers (CRLF-terminated lines).
std::string respmod(const std::string &service, const std::string &body,
                    const std::string &extra = "", size_t chunk = 0);
// A RESPMOD with a preview of `preview` bytes: the first `preview` bytes of
// `body` as the preview ("0; ieof" when that is all), then the rest, as a
// client sends it after 100 Continue. With rest=false only the preview part.
std::string respmod_preview(const std::string &service, const std::string &body, size_t preview,
                            size_t chunk = 0, bool rest = true, const std::string &extra = "");
// The same built from given pieces: ICAP head lines after the request line
// (without Encapsulated), the encapsulated sections, and the raw body bytes.
std::string raw_request(const std::string &method, const std::string &service,
                        const std::string &extra_headers,
                        const std::vector<std::pair<std::string, std::string>> &sections,
                        const std::string &body_kind, const std::string &body);
std::string http_res_head(size_t content_length);
std::string http_req_head(const std::string &url = "http://origin.example/x");
std::string chunked(const std::string &body, size_t chunk = 0, const std::string &last = "0");

// A fresh connection gets OPTIONS 200 and an echoed RESPMOD: the server is
// unaffected. Returns "" or what went wrong.
std::string server_healthy(int port);

// Tests blocked by a known library bug skip themselves with "BUG: ...",
// unless ICAP_RUN_KNOWN_BUGS=1 is set (to check a fix).
bool run_known_bugs();

// Raises RLIMIT_NOFILE to the hard limit; returns the new soft limit.
uint64_t raise_nofile();

}  // namespace robust

#endif
