// SPDX-License-Identifier: MIT
// Timeouts and the connection limit, with small configured values.
#include <gtest/gtest.h>

#include <poll.h>

#include <cstring>
#include <mutex>

#include "harness.hpp"

using namespace itest;

namespace {

long elapsed_ms(Clock::time_point since) {
  return static_cast<long>(std::chrono::duration_cast<ms>(Clock::now() - since).count());
}

}  // namespace

// A keep-alive connection idle past ICAP_LIMIT_IDLE_TIMEOUT_MS is closed,
// without an answer; so is one that never sends anything. Activity resets
// the idle timer.
TEST(Timeouts, IdleConnectionIsClosed) {
  TestServer s;
  s.set_limit(ICAP_LIMIT_IDLE_TIMEOUT_MS, 300);
  ASSERT_TRUE(start_with_echo(s));

  Client used, silent;
  ASSERT_EQ(silent.connect(s.port()), 0);
  auto t_silent = Clock::now();
  ASSERT_EQ(used.connect(s.port()), 0);
  // Five requests 150 ms apart: each within the idle timeout of the last.
  for (int i = 0; i < 5; i++) {
    Response r = round_trip(used, options_request("echo"), ms(2000));
    ASSERT_TRUE(r.ok) << "request " << i << ": " << r.error;
    EXPECT_EQ(r.code, 200);
    if (i < 4) std::this_thread::sleep_for(ms(150));
  }
  auto t_used = Clock::now();
  ASSERT_TRUE(used.wait_closed(ms(3000))) << "idle keep-alive connection not closed";
  long used_ms = elapsed_ms(t_used);
  EXPECT_GE(used_ms, 200);
  EXPECT_LT(used_ms, 1500);
  EXPECT_TRUE(used.pending().empty()) << used.pending();

  ASSERT_TRUE(silent.wait_closed(ms(3000))) << "silent connection not closed";
  EXPECT_TRUE(silent.pending().empty()) << silent.pending();
  // It was closed by the idle timer, long before the 750 ms of activity on
  // the other connection ended.
  EXPECT_LT(elapsed_ms(t_silent), 3000);
}

// Slowloris: a client that sends its request head one byte every 100 ms
// gets 408 and is closed within ICAP_LIMIT_READ_TIMEOUT_MS of starting,
// although it never stops sending. Both in the ICAP head and, after a
// complete ICAP head, in the encapsulated HTTP headers.
TEST(Timeouts, SlowHeaderGets408WithinReadTimeout) {
  std::atomic<int> calls{0};
  TestServer s;
  s.set_limit(ICAP_LIMIT_READ_TIMEOUT_MS, 600);
  s.set_limit(ICAP_LIMIT_IDLE_TIMEOUT_MS, 20000);
  ASSERT_NE(add_echo_service(s, "echo", &calls), nullptr);
  ASSERT_TRUE(s.start());

  const std::string req = reqmod_get("echo", "http://origin.example/slow");
  const size_t icap_head = req.find("\r\n\r\n") + 4;
  for (size_t from : {size_t(0), icap_head}) {
    SCOPED_TRACE(from ? "dripping the encapsulated headers" : "dripping the ICAP head");
    Client c;
    ASSERT_EQ(c.connect(s.port()), 0);
    std::atomic<bool> stop{false};
    std::atomic<size_t> sent{0};
    auto t0 = Clock::now();
    if (from) {
      ASSERT_TRUE(c.send_all(req.substr(0, from)));
      sent = from;
    }
    std::thread dripper([&] {
      for (size_t i = from; i < req.size() && !stop.load(); i++) {
        if (c.send_some(&req[i], 1, ms(200)) != 1) break;  // closed by the server
        sent++;
        std::this_thread::sleep_for(ms(100));
      }
    });
    Response r = c.read_response(ms(5000));
    long got_ms = elapsed_ms(t0);
    bool closed = c.wait_closed(ms(2000));
    long closed_ms = elapsed_ms(t0);
    stop = true;
    dripper.join();

    ASSERT_TRUE(r.ok) << r.error << " after " << got_ms << " ms\n" << s.logs_text();
    EXPECT_EQ(r.code, 408) << r.status_line;
    EXPECT_TRUE(r.conn_close());
    EXPECT_GE(got_ms, 500);
    EXPECT_LT(got_ms, 1500) << "the 408 came late: the timer was reset by each byte";
    EXPECT_TRUE(closed) << "connection not closed after the 408";
    EXPECT_LT(closed_ms, 2000);
    EXPECT_LT(sent.load(), req.size());
  }
  EXPECT_EQ(calls.load(), 0);
}

// A body that makes progress is not cut by the read timeout (the timeout
// is about progress, not the total time); a body that stalls is.
TEST(Timeouts, ReadTimeoutIsAboutProgressInTheBody) {
  std::atomic<int> calls{0};
  TestServer s;
  s.set_limit(ICAP_LIMIT_READ_TIMEOUT_MS, 500);
  ASSERT_NE(add_echo_service(s, "echo", &calls), nullptr);
  ASSERT_TRUE(s.start());

  // 12 chunks 100 ms apart: 1.2 s in total, each within the timeout.
  Client c;
  ASSERT_EQ(c.connect(s.port()), 0);
  std::string body_chunk = "a\r\n0123456789\r\n";
  ASSERT_TRUE(c.send_all(respmod_head("echo", 120)));
  std::string echoed;
  std::thread reader([&] {
    Response r = c.read_response(ms(5000));
    if (r.ok && r.code == 200) echoed = r.body;
  });
  bool sent = true;
  for (int i = 0; i < 12 && sent; i++) {
    std::this_thread::sleep_for(ms(100));
    sent = c.send_all(body_chunk);
  }
  sent = sent && c.send_all("0\r\n\r\n");
  reader.join();  // bounded by its read timeout
  ASSERT_TRUE(sent) << "the server closed a body that was making progress";
  std::string want;
  for (int i = 0; i < 12; i++) want += "0123456789";
  EXPECT_EQ(echoed, want) << s.logs_text();

  // A body that stops: closed within the read timeout (408 is impossible,
  // the echo's 200 has started; the connection is simply closed).
  Client d;
  ASSERT_EQ(d.connect(s.port()), 0);
  ASSERT_TRUE(d.send_all(respmod_head("echo", 120) + body_chunk));
  auto t0 = Clock::now();
  Response r = d.read_response(ms(3000));
  EXPECT_FALSE(r.ok) << "a stalled echo completed?";
  EXPECT_TRUE(d.peer_closed()) << r.error;
  long took = elapsed_ms(t0);
  EXPECT_GE(took, 400);
  EXPECT_LT(took, 1500);
}

// A handler that never answers: 500 with Connection: close after
// ICAP_LIMIT_HANDLER_TIMEOUT_MS, and the done callback says ICAP_ETIMEDOUT.
TEST(Timeouts, HandlerThatNeverAnswersGets500) {
  DoneLog ctx;
  TestServer s;
  s.set_limit(ICAP_LIMIT_HANDLER_TIMEOUT_MS, 300);
  ASSERT_TRUE(start_with_mod_service(s, "never", DoneLog::track_only, &ctx));

  // A REQMOD without a body, and a RESPMOD whose body is complete.
  std::vector<std::string> reqs = {reqmod_get("never", "http://origin.example/"),
                                   respmod("never", std::string(3000, 'n'))};
  for (size_t i = 0; i < reqs.size(); i++) {
    Client c;
    ASSERT_EQ(c.connect(s.port()), 0);
    auto t0 = Clock::now();
    Response r = round_trip(c, reqs[i], ms(3000));
    long took = elapsed_ms(t0);
    ASSERT_TRUE(r.ok) << "request " << i << ": " << r.error;
    EXPECT_EQ(r.code, 500) << r.status_line;
    EXPECT_TRUE(r.conn_close());
    EXPECT_GE(took, 250);
    EXPECT_LT(took, 1500);
    EXPECT_TRUE(c.wait_closed(ms(2000)));
    EXPECT_TRUE(
        wait_until([&] { return ctx.done_calls.load() == static_cast<int>(i + 1); }, ms(2000)));
  }
  EXPECT_EQ(ctx.handler_calls.load(), 2);
  std::lock_guard<std::mutex> g(ctx.mu);
  ASSERT_EQ(ctx.done_status.size(), 2u);
  EXPECT_EQ(ctx.done_status[0], ICAP_ETIMEDOUT)
      << "REQMOD (no body): done status " << icap_err_name(ctx.done_status[0]);
  EXPECT_EQ(ctx.done_status[1], ICAP_ETIMEDOUT)
      << "RESPMOD (complete body): done status " << icap_err_name(ctx.done_status[1]);
}

// A client that stops reading a large response is closed after
// ICAP_LIMIT_WRITE_TIMEOUT_MS.
TEST(Timeouts, ClientThatStopsReadingIsClosed) {
  TestServer s;
  s.set_limit(ICAP_LIMIT_WRITE_TIMEOUT_MS, 500);
  ASSERT_TRUE(start_with_echo(s));
  Client c;
  ASSERT_EQ(c.connect(s.port(), 32 * 1024, 32 * 1024), 0);
  // 16 MiB body, streamed; the client never reads the echo.
  const uint64_t kTotal = 16u << 20;
  ASSERT_TRUE(c.send_all(respmod_head("echo", kTotal)));
  std::string chunk = "10000\r\n" + std::string(65536, 'w') + "\r\n";
  uint64_t sent = 0;
  auto t0 = Clock::now();
  bool send_failed = false;
  while (sent < kTotal && elapsed_ms(t0) < 8000) {
    long n = c.send_some(chunk.data(), chunk.size(), ms(200));
    if (n < 0) {
      send_failed = true;
      break;
    }
    // A partial frame would desynchronise the chunking; the server closes
    // the connection anyway, which is all this test looks at.
    sent += static_cast<uint64_t>(n);
    if (n == 0) {
      // Stalled: is the socket closed by the server?
      pollfd pf{c.fd(), POLLIN, 0};
      if (::poll(&pf, 1, 0) == 1 && (pf.revents & (POLLHUP | POLLERR))) {
        send_failed = true;
        break;
      }
    }
  }
  long took = elapsed_ms(t0);
  // The server closed (reset or FIN); a send then fails, or a read sees it.
  if (!send_failed) {
    send_failed = c.send_some("x", 1, ms(100)) < 0;
  }
  EXPECT_TRUE(send_failed || c.wait_closed(ms(100)))
      << "connection still open after " << took << " ms with a non-reading client\n"
      << s.logs_text();
  EXPECT_LT(took, 6000);
  EXPECT_LT(sent, kTotal);
}

namespace {

// Tries new connections (OPTIONS) until one is served; the time it took.
bool newcomer_served(int port, ms within, long *took_ms) {
  auto t0 = Clock::now();
  for (int attempt = 0; attempt < 200 && elapsed_ms(t0) < within.count(); attempt++) {
    Client n;
    if (n.connect(port) != 0) return false;
    n.send_all(options_request("echo"), ms(1000));  // may fail: 503 + close
    Response r = n.read_response(ms(2000));
    if (r.ok && r.code == 200) {
      *took_ms = elapsed_ms(t0);
      return true;
    }
    std::this_thread::sleep_for(ms(20));
  }
  return false;
}

}  // namespace

// ICAP_LIMIT_CONNECTIONS = 5: the sixth concurrent connection gets 503 and
// is closed; OPTIONS advertises Max-Connections below the limit; once a
// connection closes, a new one is accepted again.
TEST(Limits, SixthConnectionGets503) {
  TestServer s;
  s.set_limit(ICAP_LIMIT_CONNECTIONS, 5);
  ASSERT_TRUE(start_with_echo(s));

  std::vector<Client> clients(5);
  for (size_t i = 0; i < clients.size(); i++) {
    ASSERT_EQ(clients[i].connect(s.port()), 0);
    ASSERT_TRUE(clients[i].send_all(options_request("echo")));
    Response r = clients[i].read_response();
    ASSERT_TRUE(r.ok) << "connection " << i << ": " << r.error;
    ASSERT_EQ(r.code, 200) << "connection " << i << ": " << r.status_line;
    if (i == 0) {
      auto mc = r.header("Max-Connections");
      ASSERT_TRUE(mc != nullptr);
      long v = atol(mc->c_str());
      EXPECT_GE(v, 1);
      EXPECT_LT(v, 5) << "Max-Connections " << *mc << " is not below the hard limit";
    }
  }
  for (int k = 0; k < 3; k++) {
    Client extra;
    ASSERT_EQ(extra.connect(s.port()), 0);
    Response r = extra.read_response(ms(3000));
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.code, 503) << r.status_line;
    EXPECT_TRUE(r.conn_close());
    EXPECT_TRUE(extra.wait_closed(ms(2000)));
  }
  // The five are still served.
  for (auto &c : clients) {
    Response r = round_trip(c, reqmod_get("echo", "http://o/", "Allow: 204\r\n"));
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.code, 204);
  }
  // One leaves; a newcomer is served again.
  clients[0].close();
  long first_ok_ms = -1;
  ASSERT_TRUE(newcomer_served(s.port(), ms(4000), &first_ok_ms))
      << "no connection accepted after one of five closed";
}

// The slot of a client that closed its connection is free at once (not
// after the server's 2 s linger).
TEST(Limits, ClosedConnectionFreesItsSlotPromptly) {
  TestServer s;
  s.set_limit(ICAP_LIMIT_CONNECTIONS, 2);
  ASSERT_TRUE(start_with_echo(s));
  std::vector<Client> clients(2);
  for (auto &c : clients) {
    ASSERT_EQ(c.connect(s.port()), 0);
    Response r = round_trip(c, options_request("echo"));
    ASSERT_TRUE(r.ok && r.code == 200) << r.error << r.status_line;
  }
  clients[0].close();
  long first_ok_ms = -1;
  ASSERT_TRUE(newcomer_served(s.port(), ms(4000), &first_ok_ms));
  EXPECT_LT(first_ok_ms, 500) << "a closed client's slot was freed only after " << first_ok_ms
                              << " ms";
}

// The default Max-Connections is 7/8 of ICAP_LIMIT_CONNECTIONS (icap.h),
// rounded down: below the hard limit, but not needlessly small.
TEST(Limits, DefaultMaxConnectionsIsSevenEighthsOfTheLimit) {
  const std::pair<uint64_t, long> cases[] = {{10000, 8750}, {16, 14}, {12, 10}, {5, 4}};
  for (auto [limit, want] : cases) {
    Client c;  // outlives the server: the stop closes it at once
    TestServer s;
    s.set_limit(ICAP_LIMIT_CONNECTIONS, limit);
    ASSERT_NE(add_echo_service(s, "echo"), nullptr);
    ASSERT_TRUE(s.start());
    ASSERT_EQ(c.connect(s.port()), 0);
    Response r = round_trip(c, options_request("echo"));
    ASSERT_TRUE(r.ok) << r.error;
    long got = atol(r.value("Max-Connections", "-1").c_str());
    EXPECT_EQ(got, want) << "limit " << limit;
    s.stop_and_join();
  }
}
