// SPDX-License-Identifier: MIT
// Test harness for the integration tests: an icap_server running in-process
// on 127.0.0.1 (port chosen by the kernel) on its own thread, and a blocking
// ICAP client over real TCP sockets; both come from tests/common. Every wait
// is bounded: socket reads use poll() with a deadline, and a server that
// does not return from icap_server_run() after a stop aborts the test binary
// with a message rather than hanging until ctest's timeout.
#ifndef ICAP_TESTS_INTEGRATION_HARNESS_HPP
#define ICAP_TESTS_INTEGRATION_HARNESS_HPP

#include <icap/icap.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "builders.hpp"
#include "client.hpp"
#include "fixtures.hpp"
#include "server_thread.hpp"

namespace itest {

using icaptest::Client;
using icaptest::Clock;
using icaptest::DoneLog;
using icaptest::fill_pattern;
using icaptest::ms;
using icaptest::pattern_byte;
using icaptest::round_trip;
using Response = icaptest::Reply;

// ------------------------------------------------------------- server ---

// The server thread of tests/common with `workers` worker loops, whose
// configuration calls record a test failure when they fail. Configure
// through srv() (or the helpers) before start(); the destructor stops and
// joins, then frees.
class TestServer : public icaptest::ServerThread {
 public:
  explicit TestServer(unsigned workers = 2);

  // Adds a service; fails the test (returns nullptr) on error.
  icap_service *add_service(const char *name);
  void set_limit(icap_limit which, uint64_t v);
  void set_workers(unsigned n);

  // Listens on 127.0.0.1:0 and runs the server on a new thread. Returns
  // false (and records a failure) if listening fails.
  bool start();
  // stop(), then waits (bounded) and joins. Aborts the process if the server
  // does not return within `timeout`, since a hung thread cannot be joined.
  void stop_and_join(ms timeout = ms(15000));
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

// ------------------------------------------------------------ helpers ---

// A handler that calls icap_request_no_adaptation() (204 or echo). If `user`
// is a std::atomic<int>*, it is incremented per call.
int echo_handler(icap_request *req, void *user);
// Registers `name` with `handler` for REQMOD and RESPMOD; nullptr (and a
// recorded failure) if a call fails.
icap_service *add_mod_service(TestServer &s, const char *name, icap_handler_cb handler, void *user);
// Registers `name` with echo_handler for REQMOD and RESPMOD.
icap_service *add_echo_service(TestServer &s, const char *name, std::atomic<int> *calls = nullptr);

// Registers the echo service "echo" and starts the server; false (with a
// recorded failure) if either fails.
bool start_with_echo(TestServer &s);
// Registers `name` with `handler` for REQMOD and RESPMOD and starts the
// server; false (with a recorded failure) if either fails.
bool start_with_mod_service(TestServer &s, const char *name, icap_handler_cb handler, void *user);
// Registers `name` with `handler` for `method` only and starts the server;
// false (with a recorded failure) if a call fails.
bool start_with_handler(TestServer &s, const char *name, icap_method method,
                        icap_handler_cb handler, void *user);

// Expects every done callback recorded in `log` to have said `status`.
void expect_statuses(DoneLog &log, int status);
// Waits up to `timeout` for `n` done callbacks in `log` (a failure shows
// the server's log), then expect_statuses().
void expect_all_done(DoneLog &log, int n, int status, TestServer &s, ms timeout = ms(5000));

// Connects each of `clients` to 127.0.0.1:port and sends it request(i), `i`
// its index; false (with a recorded failure) at the first that fails.
bool connect_and_send(std::vector<Client> &clients, int port,
                      const std::function<std::string(int)> &request);
// Connects `c` to `s` and has an OPTIONS of "echo" answered on it without
// Connection: close: the connection is then idle and kept alive. False
// (with a recorded failure) if not.
bool open_idle(Client &c, TestServer &s);
// Makes a client go away mid-transaction: an odd-numbered one (`i`) with a
// reset, the others with a FIN.
void vanish(Client &c, int i);

// Polls `pred` every 5 ms until it is true or the timeout passes.
bool wait_until(const std::function<bool()> &pred, ms timeout);

// VmRSS of this process in bytes (0 if unknown).
uint64_t rss_bytes();

}  // namespace itest

#endif
