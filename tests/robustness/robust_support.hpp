// SPDX-License-Identifier: MIT
// Support for the robustness and load tests: an icap_server running
// in-process on 127.0.0.1 (port 0) on its own thread, with the services the
// tests talk to. The raw-socket client (whose every wait is bounded), the
// strict response reader that shares no code with the library, and the
// request builders are those of tests/common.
#ifndef ICAP_TESTS_ROBUSTNESS_ROBUST_SUPPORT_HPP
#define ICAP_TESTS_ROBUSTNESS_ROBUST_SUPPORT_HPP

#include <icap/icap.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "builders.hpp"
#include "client.hpp"
#include "fixtures.hpp"
#include "icap_wire.hpp"
#include "server_thread.hpp"

namespace robust {

using icaptest::Clock;
using icaptest::ms;

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

// Options with `limits` set, and `workers` worker loops.
inline ServerOptions with_limits(std::vector<std::pair<icap_limit, uint64_t>> limits,
                                 unsigned workers = 1) {
  ServerOptions o;
  o.workers = workers;
  o.limits = std::move(limits);
  return o;
}

class Server {
 public:
  explicit Server(const ServerOptions &o = ServerOptions());
  Server(const Server &) = delete;
  Server &operator=(const Server &) = delete;

  // Listens and runs the server on a new thread; false on failure.
  bool start() { return thread_.start() == 0; }
  int port() const { return thread_.port(); }
  // icap_server_stop(), then waits (bounded) for icap_server_run() to
  // return; returns how long that took, or -1 ms if it did not return in
  // `timeout` (the process then aborts in the destructor rather than hang).
  ms stop(ms timeout = ms(20000)) { return thread_.stop_and_join(timeout); }
  bool running() const { return thread_.started() && !thread_.returned(); }
  Stats &stats() { return stats_; }
  std::string logs() { return thread_.logs_text(""); }

 private:
  Stats stats_;  // declared first: the handlers count into it until the server is freed
  icaptest::ServerThread thread_;
};

// A raw TCP connection to the server with deadlines on every wait.
using Conn = icaptest::Client;
using icaptest::chunked;
using icaptest::round_trip;

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
