// SPDX-License-Identifier: MIT
// What the tests that run handlers on a real server share beyond the client
// and the server thread: a record of the handler calls and done callbacks,
// and one request/response exchange on a connection. Header-only, and free
// of any test framework, like the rest of tests/common.
#ifndef ICAP_TESTS_COMMON_FIXTURES_HPP
#define ICAP_TESTS_COMMON_FIXTURES_HPP

#include <icap/icap.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "client.hpp"

namespace icaptest {

// The handler calls of a test and the status each transaction's done
// callback got, in the order they came. A test's context derives from it
// when its handlers record more.
struct DoneLog {
  std::atomic<int> handler_calls{0};
  std::atomic<int> done_calls{0};
  std::mutex mu;  // guards done_status (and what a derived context adds)
  std::vector<int> done_status;

  // Records one done callback.
  void record(int status) {
    {
      std::lock_guard<std::mutex> g(mu);
      done_status.push_back(status);
    }
    done_calls++;
  }
  // A done callback whose `user` is the DoneLog.
  static void on_done(icap_request *, int status, void *user) {
    static_cast<DoneLog *>(user)->record(status);
  }
  // Counts a handler call and has the transaction's end recorded; returns
  // what icap_request_on_done() returned.
  int track(icap_request *req) {
    handler_calls++;
    return icap_request_on_done(req, on_done, this);
  }
  // A handler that tracks the request and never answers (`user` is the
  // DoneLog).
  static int track_only(icap_request *req, void *user) {
    return static_cast<DoneLog *>(user)->track(req);
  }
  // The statuses recorded so far.
  std::vector<int> statuses() {
    std::lock_guard<std::mutex> g(mu);
    return done_status;
  }
};

// Sends `request` on `c` and reads one response within `timeout`; a request
// that cannot be sent gives a Reply that is not ok() and says so.
inline Reply round_trip(Client &c, const std::string &request, ms timeout = ms(10000)) {
  if (!c.send_all(request)) {
    Reply r;
    r.got = Reply::Got::kClosed;
    r.error = "the request could not be sent";
    return r;
  }
  return c.read_response(timeout);
}

// The same on a new connection to 127.0.0.1:port (closed on return).
inline Reply round_trip(int port, const std::string &request, ms timeout = ms(10000)) {
  Client c;
  int rc = c.connect(port);
  if (rc != 0) {
    Reply r;
    r.got = Reply::Got::kClosed;
    r.error = std::string("connect: ") + strerror(-rc);
    return r;
  }
  return round_trip(c, request, timeout);
}

}  // namespace icaptest

#endif
