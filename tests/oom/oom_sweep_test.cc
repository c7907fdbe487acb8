// SPDX-License-Identifier: MIT
// The failing-allocation sweep: a real server in-process (one worker, so the
// order of its allocations is repeatable) runs a fixed set of transactions
// over TCP — OPTIONS, REQMOD answered 204, a RESPMOD echo with a body, a
// preview answered 100 Continue, two pipelined requests — once with every
// allocation counted, then once for every N up to that count with the N-th
// allocation failing. Each run must end in correct answers, an error answer
// or a close (never a crash, a hang or a wrong answer), and a following
// connection, with allocation working again, must be served completely. In
// the ASan build LeakSanitizer checks at exit that no run leaked.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "failing_alloc.hpp"
#include "harness.hpp"

namespace {

using itest::Client;
using itest::ms;
using itest::Response;

constexpr size_t kBodyBytes = 20000;
constexpr size_t kPreviewBytes = 4;

// RESPMOD handler for "count": reads the whole body (the preview, then the
// rest after the 100 Continue that read_chunk sends) and answers 200 with
// its length, without allocating itself. Its state belongs to on_done,
// which runs exactly once however the transaction ends.
struct Count {
  uint64_t bytes = 0;
};

void count_done(icap_request *, int, void *user) { delete static_cast<Count *>(user); }

void count_answer(icap_request *req, uint64_t bytes) {
  char body[64];
  int n = snprintf(body, sizeof body, "bytes=%llu", static_cast<unsigned long long>(bytes));
  if (icap_request_set_http_status(req, "HTTP/1.1 200 OK") != 0 ||
      icap_request_send_headers(req, 1) != 0 ||
      icap_request_send_chunk(req, body, static_cast<size_t>(n)) != 0 || icap_request_end(req) != 0)
    icap_request_abort(req, ICAP_ENOMEM);
}

void count_body(icap_request *req, int status, const char *, size_t len, void *user) {
  auto *c = static_cast<Count *>(user);
  if (status < 0) return;
  c->bytes += len;
  unsigned flags = static_cast<unsigned>(status);
  if ((flags & ICAP_BODY_END) && !(flags & ICAP_BODY_PREVIEW_END)) {
    count_answer(req, c->bytes);
    return;
  }
  if (icap_request_read_chunk(req, count_body, c) != 0) icap_request_abort(req, ICAP_ENOMEM);
}

int count_handler(icap_request *req, void *) {
  auto *c = new (std::nothrow) Count;
  if (!c) return ICAP_ENOMEM;
  if (int rc = icap_request_on_done(req, count_done, c)) {
    delete c;
    return rc;
  }
  return icap_request_read_chunk(req, count_body, c);
}

// How one run of the script ended.
enum class End { kAllCorrect, kCutShort, kWrong };

struct Outcome {
  End end = End::kAllCorrect;
  std::string what;  // for kWrong: which step and why
};

// A response that is allowed while allocations fail: the expected one, an
// ICAP error status (500 when the server could still answer), or none
// because the connection closed.
enum class Got { kExpected, kErrorOrClosed, kWrong };

Got judge(const Response &r, Client &c, int expected, const std::string &expected_body,
          std::string &why) {
  if (!r.ok) {
    // The server closed (EOF or reset) before a complete answer: allowed.
    // A read that timed out while the connection stayed open is a hang.
    if (c.peer_closed() || r.error.find("reset") != std::string::npos ||
        r.error.find("closed") != std::string::npos || r.error.find("EOF") != std::string::npos)
      return Got::kErrorOrClosed;
    why = "no answer and no close: " + r.error;
    return Got::kWrong;
  }
  if (r.code >= 500 && r.code != expected) return Got::kErrorOrClosed;
  if (r.code != expected) {
    why = "status " + std::to_string(r.code) + ", expected " + std::to_string(expected);
    return Got::kWrong;
  }
  if (!expected_body.empty() && r.body != expected_body) {
    why = "body of " + std::to_string(r.body.size()) + " bytes differs from the expected " +
          std::to_string(expected_body.size());
    return Got::kWrong;
  }
  return Got::kExpected;
}

// The whole script on one connection. Stops at the first answer that is
// an error or missing (allowed), or wrong (a failure).
Outcome run_script(int port) {
  Outcome o;
  Client c;
  if (c.connect(port) != 0) {
    o.end = End::kCutShort;  // refused under memory pressure: allowed
    return o;
  }
  std::string body(kBodyBytes, '\0');
  itest::fill_pattern(&body[0], body.size(), 0, 7);
  std::string rest = body.substr(kPreviewBytes);
  auto step = [&](const char *name, int expected, const std::string &expected_body) {
    Response r = c.read_response(ms(8000));
    std::string why;
    Got g = judge(r, c, expected, expected_body, why);
    if (g == Got::kWrong) {
      o.end = End::kWrong;
      o.what = std::string(name) + ": " + why;
    } else if (g == Got::kErrorOrClosed) {
      o.end = End::kCutShort;
    }
    return g == Got::kExpected;
  };
  auto send = [&](const std::string &s) {
    if (c.send_all(s, ms(8000))) return true;
    o.end = End::kCutShort;  // the server closed while we sent: allowed
    return false;
  };

  if (!send(itest::options_request("echo")) || !step("OPTIONS", 200, "")) return o;
  if (!send(itest::reqmod_get("echo", "http://origin.example/a", "Allow: 204\r\n")) ||
      !step("REQMOD 204", 204, ""))
    return o;
  if (!send(itest::respmod("echo", body, "", 4096)) || !step("RESPMOD echo", 200, body)) return o;

  // Preview of 4 bytes, 100 Continue, then the rest of the body.
  std::string head = itest::respmod_head("count", body.size(), "Preview: 4\r\n");
  char hex[32];
  snprintf(hex, sizeof hex, "%zx\r\n", rest.size());
  if (!send(head + "4\r\n" + body.substr(0, kPreviewBytes) + "\r\n0\r\n\r\n") ||
      !step("preview", 100, ""))
    return o;
  if (!send(hex + rest + "\r\n0\r\n\r\n") ||
      !step("after 100 Continue", 200, "bytes=" + std::to_string(body.size())))
    return o;

  // Two requests in one write: answered in order.
  if (!send(itest::options_request("echo") +
            itest::reqmod_get("echo", "http://origin.example/b", "Allow: 204\r\n")) ||
      !step("pipelined OPTIONS", 200, "") || !step("pipelined REQMOD", 204, ""))
    return o;
  return o;
}

class OomSweep : public ::testing::Test {
 protected:
  void SetUp() override {
    oom::exempt_this_thread();
    server_.set_workers(1);
    // Short server timeouts: a transaction that a failure left waiting ends
    // in an answer or a close well before the client's 8 s deadline.
    server_.set_limit(ICAP_LIMIT_HANDLER_TIMEOUT_MS, 1000);
    server_.set_limit(ICAP_LIMIT_READ_TIMEOUT_MS, 1000);
    server_.set_limit(ICAP_LIMIT_DRAIN_TIMEOUT_MS, 1000);
    itest::add_echo_service(server_, "echo");
    icap_service *count = server_.add_service("count");
    ASSERT_NE(count, nullptr);
    ASSERT_EQ(icap_service_set_handler(count, ICAP_METHOD_RESPMOD, count_handler, nullptr), 0);
    ASSERT_TRUE(server_.start());
  }

  itest::TestServer server_;
};

TEST_F(OomSweep, EveryAllocationOfATransactionSetMayFail) {
  // A clean run first: it must pass, and says how many allocations the
  // script makes (the server's only; the client thread is exempt).
  oom::arm(0);
  Outcome clean = run_script(server_.port());
  uint64_t total = oom::disarm();
  ASSERT_EQ(clean.end, End::kAllCorrect) << clean.what;
  ASSERT_GT(total, 20u) << "the allocation hook counts nothing: operator new not replaced?";

  // Every N when the count is moderate, else a stride that keeps the sweep
  // under about 3000 runs (bounded in time as well: each run's reads have
  // 8 s deadlines, and the loop stops after 240 s).
  uint64_t stride = total / 3000 + 1;
  if (const char *s = getenv("ICAP_OOM_STRIDE")) stride = strtoull(s, nullptr, 10) ?: stride;
  auto started = itest::Clock::now();
  uint64_t runs = 0, injected = 0, cut_short = 0;
  std::vector<std::string> wrong;
  for (uint64_t n = 1; n <= total + 5; n += stride) {
    oom::arm(n);
    Outcome o = run_script(server_.port());
    oom::disarm();
    runs++;
    if (oom::injected()) injected++;
    if (o.end == End::kCutShort) cut_short++;
    if (o.end == End::kWrong)
      wrong.push_back("allocation " + std::to_string(n) + " of " + std::to_string(total) +
                      " failing: " + o.what);
    // The next connection is served in full once memory is back.
    Outcome next = run_script(server_.port());
    ASSERT_EQ(next.end, End::kAllCorrect)
        << "after allocation " << n << " failed: " << next.what << "\n"
        << server_.logs_text();
    ASSERT_LT(itest::Clock::now() - started, std::chrono::seconds(240))
        << "sweep too slow at N=" << n << " of " << total;
  }
  printf(
      "oom sweep: %llu allocations in a clean run, %llu runs (stride %llu), %llu with a "
      "refused allocation, %llu cut short\n",
      static_cast<unsigned long long>(total), static_cast<unsigned long long>(runs),
      static_cast<unsigned long long>(stride), static_cast<unsigned long long>(injected),
      static_cast<unsigned long long>(cut_short));
  // Most N fall inside the script; only the last few may lie beyond it.
  EXPECT_GE(injected * 10, runs * 8);
  server_.stop_and_join();
  EXPECT_EQ(server_.run_result(), 0);
  // Every answer is whole or the connection closes: since the engine writes
  // each response head in one piece (the response writer), a failed
  // allocation can no longer leave a torn head followed by a 500.
  std::string list;
  for (auto &w : wrong) list += "  " + w + "\n";
  EXPECT_TRUE(wrong.empty()) << wrong.size() << " run(s) got a wrong answer:\n" << list;
}

// Allocations during icap_server_run() itself (two worker loops, a thread):
// run returns an error or serves; it never hangs or crashes, every thread
// it started is joined, and icap_server_free() leaks nothing.
TEST(OomStartup, EveryAllocationOfServerRunMayFail) {
  oom::exempt_this_thread();
  uint64_t total = 0;
  for (uint64_t n = 0; n == 0 || n <= total + 3; n++) {
    icap_server *srv = nullptr;
    ASSERT_EQ(icap_server_new(&srv), 0);
    icap_service *svc = nullptr;
    ASSERT_EQ(icap_server_add_service(srv, "echo", &svc), 0);
    ASSERT_EQ(icap_service_set_handler(svc, ICAP_METHOD_REQMOD, itest::echo_handler, nullptr), 0);
    ASSERT_EQ(icap_server_set_workers(srv, 2), 0);
    ASSERT_EQ(icap_server_listen(srv, "127.0.0.1", 0), 0);
    int port = icap_server_port(srv, 0);
    std::atomic<int> rc{1};
    std::atomic<bool> done{false};
    // arm() before the thread starts: its own allocations count as well.
    oom::arm(n);
    std::thread t([&] {
      rc = icap_server_run(srv);
      done = true;
    });
    bool served = false;
    if (!itest::wait_until([&] { return done.load(); }, ms(100))) {
      // Still running after a failure, or no failure: it must answer.
      Client c;
      if (c.connect(port) == 0 && c.send_all(itest::options_request("echo"))) {
        Response r = c.read_response(ms(8000));
        served = r.ok && r.code == 200;
      }
    }
    icap_server_stop(srv);
    bool returned = itest::wait_until([&] { return done.load(); }, ms(15000));
    if (!returned) {
      fprintf(stderr, "icap_server_run did not return after stop (N=%llu)\n",
              static_cast<unsigned long long>(n));
      abort();
    }
    t.join();
    uint64_t counted = oom::disarm();
    if (n == 0) {
      total = counted;
      ASSERT_EQ(rc.load(), 0);
      ASSERT_TRUE(served);
      ASSERT_GT(total, 5u);
    } else {
      EXPECT_TRUE(rc == 0 || rc == ICAP_ENOMEM || rc == ICAP_EIO)
          << "N=" << n << ": " << icap_strerror(rc);
      if (rc == 0 && !oom::injected()) {
        EXPECT_TRUE(served) << "N=" << n;
      }
    }
    icap_server_free(srv);
    ASSERT_LT(n, 100000u);
  }
  printf("oom startup: %llu allocations in a clean start and stop\n",
         static_cast<unsigned long long>(total));
}

// Setters that copy strings: each refused allocation gives ICAP_ENOMEM and
// leaves the object as it was. The calls run on a thread of their own, since
// the test's thread is exempt from failures.
TEST(OomSetters, EnomemLeavesTheObjectUnchanged) {
  oom::exempt_this_thread();
  itest::TestServer server;
  icap_server *srv = server.srv();
  auto on_thread = [](auto f) {
    std::thread t(f);
    t.join();
  };
  const std::string long_name(100, 'n');  // past any small-string buffer
  int enomem = 0;
  for (uint64_t n = 1; n < 100; n++) {
    int rc = 0;
    icap_service *svc = nullptr;
    on_thread([&] {
      oom::arm(n);
      rc = icap_server_add_service(srv, long_name.c_str(), &svc);
      oom::disarm();
    });
    if (rc == 0) break;  // n is past the call's allocations
    ASSERT_EQ(rc, ICAP_ENOMEM) << "N=" << n;
    EXPECT_EQ(svc, nullptr);
    enomem++;
  }
  EXPECT_GT(enomem, 0);
  // The last call succeeded: the name exists once, and only now.
  icap_service *svc = nullptr;
  EXPECT_EQ(icap_server_add_service(srv, long_name.c_str(), &svc), ICAP_EEXIST);
  icap_service *other = nullptr;
  ASSERT_EQ(icap_server_add_service(srv, "other", &other), 0);
  const std::string value(200, 'v');
  for (int which = 0; which < 3; which++) {
    int rc = 0;
    on_thread([&] {
      oom::arm(1);
      if (which == 0) rc = icap_server_set_server_header(srv, value.c_str());
      if (which == 1) rc = icap_service_set_transfer(other, value.c_str(), value.c_str(), nullptr);
      if (which == 2) rc = icap_service_add_options_header(other, "X-Long", value.c_str());
      oom::disarm();
    });
    EXPECT_EQ(rc, ICAP_ENOMEM) << "setter " << which;
  }
  EXPECT_STREQ(icap_service_name(other), "other");
  // What OPTIONS shows is still the default, so none of them changed.
  ASSERT_TRUE(server.start());
  Client c;
  ASSERT_EQ(c.connect(server.port()), 0);
  ASSERT_TRUE(c.send_all(itest::options_request("other")));
  Response r = c.read_response();
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.value("Server", "").rfind("libicap/", 0), 0u);
  EXPECT_EQ(r.value("Transfer-Preview", ""), "*");
  EXPECT_FALSE((r.header("Transfer-Ignore") != nullptr));
  EXPECT_FALSE((r.header("X-Long") != nullptr));
}

}  // namespace

int main(int argc, char **argv) {
  // Before anything can have made libuv allocate.
  oom::install_uv_allocator();
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
