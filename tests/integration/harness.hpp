// Test harness for the integration tests: an icap_server running in-process
// on 127.0.0.1 (port chosen by the kernel) on its own thread, and a small
// blocking ICAP client over real TCP sockets. Every wait is bounded: socket
// reads use poll() with a deadline, and a server that does not return from
// icap_server_run() after a stop aborts the test binary with a message
// rather than hanging until ctest's timeout.
#ifndef ICAP_TESTS_INTEGRATION_HARNESS_HPP
#define ICAP_TESTS_INTEGRATION_HARNESS_HPP

#include <icap/icap.h>

#include <atomic>
#include <cstdlib>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace itest {

using Clock = std::chrono::steady_clock;
using ms = std::chrono::milliseconds;

// ------------------------------------------------------------- server ---

// Owns an icap_server and the thread that runs it. Configure through srv()
// (or the helpers) before start(); stop_and_join() afterwards. The
// destructor stops and joins, then frees.
class TestServer {
 public:
  TestServer();
  ~TestServer();
  TestServer(const TestServer &) = delete;
  TestServer &operator=(const TestServer &) = delete;

  icap_server *srv() { return srv_; }
  // Adds a service; fails the test (returns nullptr) on error.
  icap_service *add_service(const char *name);
  void set_limit(icap_limit which, uint64_t v);
  void set_workers(unsigned n);

  // Listens on 127.0.0.1:0 and runs the server on a new thread. Returns
  // false (and records a failure) if listening fails.
  bool start();
  int port() const { return port_; }

  // icap_server_stop() without waiting.
  void stop();
  // True once icap_server_run() returned.
  bool returned() const { return returned_.load(); }
  // Waits up to `timeout` for icap_server_run() to return; true if it did.
  bool wait_returned(ms timeout);
  // stop(), then waits (bounded) and joins. Aborts the process if the server
  // does not return within `timeout`, since a hung thread cannot be joined.
  void stop_and_join(ms timeout = ms(15000));
  int run_result() const { return run_rc_; }

  // Log lines captured from the server (all levels), for diagnostics.
  std::vector<std::string> logs();
  std::string logs_text();

 private:
  static void on_log(icap_server *, icap_log_level level, const char *msg, void *user);

  icap_server *srv_ = nullptr;
  std::thread thread_;
  int port_ = -1;
  int run_rc_ = 0;
  bool started_ = false;
  std::atomic<bool> returned_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> logs_;
};

// ------------------------------------------------------------- client ---

// An ICAP response as read off the wire.
struct Response {
  bool ok = false;    // a complete, well-formed response was read
  std::string error;  // why not, when !ok
  int code = 0;
  std::string status_line;                                   // without CRLF
  std::vector<std::pair<std::string, std::string>> headers;  // in order
  std::string encapsulated;                                  // the Encapsulated value
  std::string http_head;       // the encapsulated header sections, raw
  bool has_body = false;       // a chunked body followed
  std::string body;            // decoded body (unless a sink was given)
  uint64_t body_bytes = 0;     // decoded body length
  std::string last_chunk_ext;  // extensions of the last chunk ("ieof"...)

  // First value of a header (case-insensitive), or nullopt.
  std::optional<std::string> header(const std::string &name) const;
  // True if Connection: close is present.
  bool conn_close() const;
};

// A blocking ICAP client with deadlines on every operation.
class Client {
 public:
  Client() = default;
  ~Client();
  Client(const Client &) = delete;
  Client &operator=(const Client &) = delete;
  Client(Client &&o) noexcept;
  Client &operator=(Client &&o) noexcept;

  // Connects to 127.0.0.1:port. rcvbuf/sndbuf > 0 set small socket buffers
  // before connecting (for backpressure tests). Returns 0 or -errno.
  int connect(int port, int rcvbuf = 0, int sndbuf = 0, ms timeout = ms(5000));
  bool connected() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  // The local port of this connection (what the server sees as client port).
  int local_port() const;

  // Sends everything or fails (false) within the timeout.
  bool send_all(const std::string &data, ms timeout = ms(10000));
  // Sends as much as the socket takes within `timeout` without blocking
  // longer; returns bytes sent, or -1 on a socket error.
  long send_some(const char *p, size_t n, ms timeout);

  // Reads one response. For a body, `sink` (if set) receives the decoded
  // data instead of Response::body. An interim "100 Continue" is returned
  // like any response (code 100).
  Response read_response(ms timeout = ms(10000),
                         const std::function<void(const char *, size_t)> &sink = {});

  // Waits for the peer to close (EOF or reset) within the timeout. Any data
  // received meanwhile is kept in the buffer (see pending()). Returns true
  // when the connection was closed by the peer.
  bool wait_closed(ms timeout);
  // Bytes received but not consumed by read_response.
  std::string pending() const { return buf_.substr(pos_); }
  // Whether the peer has closed (seen by a read).
  bool peer_closed() const { return eof_; }

  // Closes gracefully (FIN), or with a reset (SO_LINGER 0).
  void close();
  void reset();
  // Half-close: shutdown(SHUT_WR).
  void shutdown_write();

 private:
  // Reads more into buf_; false on timeout, EOF or error (error_ set).
  bool fill(Clock::time_point deadline);
  bool need(size_t n, Clock::time_point deadline);
  bool read_line(std::string &line, Clock::time_point deadline, size_t max = 65536);

  int fd_ = -1;
  std::string buf_;
  size_t pos_ = 0;
  bool eof_ = false;
  std::string error_;
};

// ---------------------------------------------------------- requests ---

// Builds an ICAP request. `req_hdr`/`res_hdr` are raw HTTP header blocks
// (ending with CRLF CRLF) or empty; `body`, when set, is sent chunked in
// pieces of `chunk` bytes (0: one chunk) followed by "0\r\n\r\n".
// options_request() sends no Encapsulated header at all, as Squid does.
std::string build_request(const std::string &method, const std::string &service,
                          const std::string &req_hdr, const std::string &res_hdr,
                          const std::optional<std::string> &body,
                          const std::string &extra_headers = "", size_t chunk = 0);

std::string options_request(const std::string &service, const std::string &extra = "");
// REQMOD with a GET (no body).
std::string reqmod_get(const std::string &service, const std::string &url,
                       const std::string &extra = "");
// RESPMOD with req-hdr, res-hdr and a body.
std::string respmod(const std::string &service, const std::string &body,
                    const std::string &extra = "", size_t chunk = 0);
// The HTTP response header block used by respmod().
std::string http_response_head(size_t content_length);
std::string http_request_head(const std::string &url);

// Only the ICAP head + encapsulated headers of a RESPMOD with a body, so a
// test can stream the chunks itself.
std::string respmod_head(const std::string &service, uint64_t content_length,
                         const std::string &extra = "");

// A deterministic byte pattern: byte i of stream `seed`.
inline char pattern_byte(uint64_t i, uint32_t seed) {
  uint64_t x = i * 0x9E3779B97F4A7C15ull + seed;
  x ^= x >> 29;
  return static_cast<char>('a' + (x % 26));
}
void fill_pattern(char *out, size_t n, uint64_t offset, uint32_t seed);

// ------------------------------------------------------------ helpers ---

// A handler that calls icap_request_no_adaptation() (204 or echo). If `user`
// is a std::atomic<int>*, it is incremented per call.
int echo_handler(icap_request *req, void *user);
// Registers `name` with echo_handler for REQMOD and RESPMOD.
icap_service *add_echo_service(TestServer &s, const char *name, std::atomic<int> *calls = nullptr);

// Polls `pred` every 5 ms until it is true or the timeout passes.
bool wait_until(const std::function<bool()> &pred, ms timeout);

// VmRSS of this process in bytes (0 if unknown).
uint64_t rss_bytes();

}  // namespace itest

#endif
