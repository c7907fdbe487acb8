// SPDX-License-Identifier: MIT
// Server lifecycle and threading: graceful stop with transactions in
// flight, several worker loops, and work that leaves the loop thread
// (icap_request_post from another thread, icap_request_offload).
#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <set>
#include <cstring>

#include "harness.hpp"

using namespace itest;

namespace {

// ------------------------------------------------------ delayed answers ---

struct SlowCtx : DoneLog {
  std::atomic<int> answered{0};
  std::atomic<int> offload_canceled{0};
  int delay_ms = 300;
};

void slow_work(void *user) {
  auto *ctx = static_cast<SlowCtx *>(user);
  std::this_thread::sleep_for(ms(ctx->delay_ms));
}

// After the delay: REQMOD gets a block page, RESPMOD the echo of its body.
void slow_answer(icap_request *req, int status, void *user) {
  auto *ctx = static_cast<SlowCtx *>(user);
  if (status != 0) {
    ctx->offload_canceled++;
    return;
  }
  if (icap_request_method(req) == ICAP_METHOD_REQMOD) {
    const char *page = "blocked by policy";
    EXPECT_EQ(icap_request_set_http_status(req, "HTTP/1.1 403 Forbidden"), 0);
    EXPECT_EQ(icap_request_add_http_header(req, "Content-Length", "17"), 0);
    EXPECT_EQ(icap_request_send_headers(req, 1), 0);
    EXPECT_EQ(icap_request_send_chunk(req, page, strlen(page)), 0);
    EXPECT_EQ(icap_request_end(req), 0);
  } else {
    EXPECT_EQ(icap_request_no_adaptation(req), 0);
  }
  ctx->answered++;
}

int slow_handler(icap_request *req, void *user) {
  auto *ctx = static_cast<SlowCtx *>(user);
  EXPECT_EQ(ctx->track(req), 0);
  return icap_request_offload(req, slow_work, slow_answer, ctx);
}

icap_service *add_slow_service(TestServer &s, SlowCtx *ctx) {
  return add_mod_service(s, "slow", slow_handler, ctx);
}

}  // namespace

// 20 clients are mid-transaction (their handlers answer after a delay on
// the thread pool) when icap_server_stop() is called: every one gets its
// complete, correct answer with Connection: close and then a close; an idle
// keep-alive connection is closed without an answer; new connections are
// refused; icap_server_run() returns.
TEST(Stop, GracefulStopFinishesInFlightTransactions) {
  SlowCtx ctx;
  TestServer s;
  ASSERT_NE(add_slow_service(s, &ctx), nullptr);
  ASSERT_TRUE(start_with_echo(s));

  Client idle;
  ASSERT_TRUE(open_idle(idle, s));

  const int kClients = 20;
  std::vector<Client> clients(kClients);
  auto body_of = [](int i) { return std::string(static_cast<size_t>(1000 + i * 100), 'b'); };
  ASSERT_TRUE(connect_and_send(clients, s.port(), [&](int i) {
    return i % 2 ? respmod("slow", body_of(i), "", 400)
                 : reqmod_get("slow", "http://origin.example/" + std::to_string(i));
  }));
  ASSERT_TRUE(wait_until([&] { return ctx.handler_calls.load() == kClients; }, ms(5000)));
  ASSERT_LT(ctx.answered.load(), kClients / 2) << "the handlers answered too fast for this test";

  auto t_stop = Clock::now();
  s.stop();

  // New connections are refused once the listeners are closed. A connection
  // that races with the stop may be accepted by the kernel; it is then
  // either reset or, if the server had accepted it just before the stop,
  // served once with Connection: close (never hung, never kept alive).
  bool refused = false;
  int raced = 0;
  auto until = Clock::now() + ms(2000);
  while (!refused && Clock::now() < until) {
    Client late;
    int rc = late.connect(s.port(), 0, 0, ms(1000));
    if (rc == -ECONNREFUSED) {
      refused = true;
      break;
    }
    // Accepted by the kernel into a listener's queue just as that listener
    // closed: reset, which is as good as refused (it was never served).
    if (rc == -ECONNRESET) continue;
    ASSERT_EQ(rc, 0) << strerror(-rc);
    raced++;
    late.send_all(options_request("echo"), ms(500));
    Response lr = late.read_response(ms(3000));
    if (lr.ok) EXPECT_TRUE(lr.conn_close()) << "served during drain without Connection: close";
    std::this_thread::sleep_for(ms(20));
  }
  EXPECT_TRUE(refused) << "connections still accepted 2 s after stop (" << raced << ")";

  // Every in-flight transaction completes correctly.
  for (int i = 0; i < kClients; i++) {
    Response r = clients[i].read_response(ms(8000));
    ASSERT_TRUE(r.ok) << "client " << i << ": " << r.error << "\n" << s.logs_text();
    EXPECT_EQ(r.code, 200) << r.status_line;
    EXPECT_TRUE(r.conn_close()) << "client " << i << ": an answer during drain lacks "
                                << "Connection: close";
    if (i % 2) {
      EXPECT_EQ(r.http_head(), http_response_head(body_of(i).size()));
      EXPECT_TRUE(r.body == body_of(i)) << "client " << i;
    } else {
      EXPECT_EQ(r.http_head().rfind("HTTP/1.1 403 Forbidden\r\n", 0), 0u) << r.http_head();
      EXPECT_EQ(r.body, "blocked by policy");
    }
    EXPECT_TRUE(clients[i].wait_closed(ms(3000))) << "client " << i << " not closed after drain";
    EXPECT_TRUE(clients[i].pending().empty());
    clients[i].close();  // lets the server's linger end at once
  }
  EXPECT_TRUE(idle.wait_closed(ms(3000))) << "the idle connection was not closed";
  EXPECT_TRUE(idle.pending().empty()) << "the idle connection got: " << idle.pending();
  idle.close();

  EXPECT_TRUE(s.wait_returned(ms(5000))) << "icap_server_run did not return";
  auto took = std::chrono::duration_cast<ms>(Clock::now() - t_stop).count();
  EXPECT_LT(took, 5000);
  s.stop_and_join();
  EXPECT_EQ(s.run_result(), 0);
  EXPECT_EQ(ctx.answered.load(), kClients);
  EXPECT_EQ(ctx.offload_canceled.load(), 0);
  EXPECT_EQ(ctx.done_calls.load(), kClients);
  expect_statuses(ctx, 0);
}

// A handler that never answers cannot hold the stop forever: after the
// drain timeout the connection is closed and the done callback says
// ICAP_ECANCELED.
TEST(Stop, DrainTimeoutEndsStuckTransactions) {
  DoneLog ctx;
  TestServer s;
  s.set_limit(ICAP_LIMIT_DRAIN_TIMEOUT_MS, 400);
  ASSERT_TRUE(start_with_handler(s, "stuck", ICAP_METHOD_REQMOD, DoneLog::track_only, &ctx));
  const int kClients = 4;
  std::vector<Client> clients(kClients);
  ASSERT_TRUE(connect_and_send(clients, s.port(),
                               [](int) { return reqmod_get("stuck", "http://origin.example/"); }));
  ASSERT_TRUE(wait_until([&] { return ctx.handler_calls.load() == kClients; }, ms(3000)));
  auto t0 = Clock::now();
  s.stop();
  ASSERT_TRUE(s.wait_returned(ms(5000))) << "run did not return after the drain timeout";
  auto took = std::chrono::duration_cast<ms>(Clock::now() - t0).count();
  EXPECT_GE(took, 300);
  EXPECT_LT(took, 3000);
  for (auto &c : clients) EXPECT_TRUE(c.wait_closed(ms(2000)));
  EXPECT_EQ(ctx.done_calls.load(), kClients);
  expect_statuses(ctx, ICAP_ECANCELED);
}

// Clients that have already closed their connections must not delay the
// stop: icap_server_run returns promptly.
TEST(Stop, ReturnsPromptlyAfterClientsClosed) {
  TestServer s;
  ASSERT_TRUE(start_with_echo(s));
  for (int i = 0; i < 3; i++) {
    Client c;
    ASSERT_EQ(c.connect(s.port()), 0);
    Response r = round_trip(c, options_request("echo"));
    ASSERT_TRUE(r.ok) << r.error;
  }  // closed here (FIN)
  std::this_thread::sleep_for(ms(100));
  auto t0 = Clock::now();
  s.stop();
  ASSERT_TRUE(s.wait_returned(ms(5000)));
  auto took = std::chrono::duration_cast<ms>(Clock::now() - t0).count();
  EXPECT_LT(took, 1000) << "icap_server_run took " << took
                        << " ms to return with no client connected";
}

namespace {

constexpr size_t kBigAnswer = 8u << 20;

// REQMOD handler that answers at once with an 8 MiB block page, all queued
// before it returns: the transaction is complete (queued) while the bytes
// are still being written.
int big_answer_handler(icap_request *req, void *user) {
  static_cast<std::atomic<int> *>(user)->fetch_add(1);
  std::string piece(64 * 1024, 'B');
  int rc = icap_request_set_http_status(req, "HTTP/1.1 200 OK");
  if (rc == 0)
    rc = icap_request_add_http_header(req, "Content-Length", std::to_string(kBigAnswer).c_str());
  if (rc == 0) rc = icap_request_send_headers(req, 1);
  for (size_t off = 0; rc == 0 && off < kBigAnswer; off += piece.size())
    rc = icap_request_send_chunk(req, piece.data(), piece.size());
  if (rc == 0) rc = icap_request_end(req);
  return rc;
}

}  // namespace

// A connection whose (complete) answer is still being written when the stop
// comes must be closed once that answer is written, and icap_server_run()
// must return then, not only after the drain timeout.
TEST(Stop, ConnectionWritingAtStopIsClosedAfterIt) {
  std::atomic<int> calls{0};
  TestServer s;
  s.set_limit(ICAP_LIMIT_DRAIN_TIMEOUT_MS, 8000);
  ASSERT_TRUE(start_with_handler(s, "big", ICAP_METHOD_REQMOD, big_answer_handler, &calls));

  Client c;
  ASSERT_EQ(c.connect(s.port(), 64 * 1024, 0), 0);
  ASSERT_TRUE(c.send_all(reqmod_get("big", "http://origin.example/")));
  ASSERT_TRUE(wait_until([&] { return calls.load() == 1; }, ms(3000)));
  std::this_thread::sleep_for(ms(200));  // the socket buffers fill up
  auto t0 = Clock::now();
  s.stop();
  std::this_thread::sleep_for(ms(200));
  Response r = c.read_response(ms(5000));
  ASSERT_TRUE(r.ok) << r.error << "\n" << s.logs_text();
  EXPECT_EQ(r.code, 200);
  EXPECT_EQ(r.body_bytes, kBigAnswer);
  bool closed = c.wait_closed(ms(3000));
  auto closed_ms = std::chrono::duration_cast<ms>(Clock::now() - t0).count();
  EXPECT_TRUE(closed) << "the connection was kept open after its answer during the drain";
  EXPECT_LT(closed_ms, 2000);
  c.close();
  EXPECT_TRUE(s.wait_returned(ms(3000)))
      << "icap_server_run did not return within 3 s (drain timeout 8 s)\n"
      << s.logs_text();
}

namespace {

struct LoadCtx {
  std::atomic<int> dispatched{0};
  std::atomic<int> done_ok{0};
  std::atomic<int> done_other{0};
};

void load_done(icap_request *, int st, void *u) {
  auto *ctx = static_cast<LoadCtx *>(u);
  if (st == 0)
    ctx->done_ok++;
  else
    ctx->done_other++;
}

void load_work(void *) { std::this_thread::sleep_for(std::chrono::microseconds(2000)); }

void load_after(icap_request *req, int st, void *) {
  if (st == 0) {
    EXPECT_EQ(icap_request_no_adaptation(req), 0);
  }
}

// REQMOD: answered from the thread pool after 2 ms; RESPMOD: echo at once.
int load_handler(icap_request *req, void *user) {
  auto *ctx = static_cast<LoadCtx *>(user);
  ctx->dispatched++;
  EXPECT_EQ(icap_request_on_done(req, load_done, ctx), 0);
  if (icap_request_method(req) == ICAP_METHOD_REQMOD)
    return icap_request_offload(req, load_work, load_after, ctx);
  return icap_request_no_adaptation(req);
}

}  // namespace

// icap_server_stop() while 40 clients run transactions as fast as they
// can: every transaction that reached a handler is answered completely to
// its client (none lost, none cut), answers after the stop say
// Connection: close, run returns, and the clients then find the port closed.
TEST(Stop, UnderLoadNoDispatchedTransactionIsLost) {
  LoadCtx ctx;
  TestServer s(3);
  ASSERT_TRUE(start_with_mod_service(s, "load", load_handler, &ctx));

  const int kClients = 40;
  std::atomic<int> answered{0}, bad{0}, after_stop_keepalive{0}, cut{0};
  std::atomic<bool> stopped{false};
  std::atomic<int64_t> stop_done_ns{0};
  std::mutex err_mu;
  std::string first_error;
  std::vector<std::thread> threads;
  for (int t = 0; t < kClients; t++) {
    threads.emplace_back([&, t] {
      auto end = Clock::now() + ms(8000);
      int i = 0;
      while (Clock::now() < end) {
        Client c;
        int rc = c.connect(s.port(), 0, 0, ms(1000));
        if (rc != 0) {
          if (stopped.load()) return;  // refused after the stop: done
          std::this_thread::sleep_for(ms(5));
          continue;
        }
        while (Clock::now() < end) {
          i++;
          bool resp = (i + t) % 2 != 0;
          std::string body = "load " + std::to_string(t) + "/" + std::to_string(i);
          // The stop reaches the workers asynchronously (a wake-up), so
          // only a request sent well after icap_server_stop() returned must
          // be answered with Connection: close.
          int64_t since = stop_done_ns.load();
          bool stop_seen_before =
              since != 0 &&
              std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
                          .count() -
                      since >
                  100 * 1000 * 1000;
          if (!c.send_all(
                  resp ? respmod("load", body) : reqmod_get("load", "http://o/", "Allow: 204\r\n"),
                  ms(3000)))
            break;
          Response r = c.read_response(ms(5000));
          if (!r.ok) {
            // Closed without an answer: only allowed if nothing was read
            // (an idle connection closed by the drain), never mid-answer.
            if (!r.status_line.empty()) {
              cut++;
              std::lock_guard<std::mutex> g(err_mu);
              if (first_error.empty()) first_error = r.status_line + ": " + r.error;
            }
            break;
          }
          if (r.code != (resp ? 200 : 204) || (resp && r.body != body)) {
            bad++;
            std::lock_guard<std::mutex> g(err_mu);
            if (first_error.empty()) first_error = "wrong answer " + r.status_line;
            break;
          }
          answered++;
          if (stop_seen_before && !r.conn_close()) after_stop_keepalive++;
          if (r.conn_close()) break;
        }
      }
    });
  }
  std::this_thread::sleep_for(ms(400));
  int before = answered.load();
  stopped = true;
  s.stop();
  stop_done_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
  bool returned = s.wait_returned(ms(8000));
  for (auto &th : threads) th.join();
  ASSERT_TRUE(returned) << "icap_server_run did not return under load\n" << s.logs_text();
  EXPECT_GT(before, 100) << "too little load to mean anything";
  EXPECT_EQ(bad.load(), 0) << first_error;
  EXPECT_EQ(cut.load(), 0) << first_error;
  EXPECT_EQ(after_stop_keepalive.load(), 0)
      << "answers to requests sent after the stop without Connection: close";
  EXPECT_EQ(ctx.done_other.load(), 0) << "transactions ended without a complete answer";
  EXPECT_EQ(ctx.dispatched.load(), ctx.done_ok.load());
  EXPECT_EQ(ctx.dispatched.load(), answered.load())
      << "dispatched transactions whose answer never reached the client";
}

// icap_server_stop() racing with the start of the worker threads (called
// right after icap_server_run() began on another thread) still stops all of
// them.
TEST(Stop, StopRacingWithStartup) {
  for (int i = 0; i < 30; i++) {
    TestServer s(4);
    ASSERT_NE(add_echo_service(s, "echo"), nullptr);
    ASSERT_TRUE(s.start());
    if (i % 3 == 1) std::this_thread::sleep_for(std::chrono::microseconds(200 * i));
    s.stop();
    ASSERT_TRUE(s.wait_returned(ms(5000))) << "iteration " << i;
    s.stop_and_join();
    EXPECT_EQ(s.run_result(), 0);
  }
}

// A client asked for Connection: close and sent more bytes after its
// request (which the server no longer reads). The answer is large and still
// in the socket buffers when the stop comes. Closing a socket with unread
// input makes the kernel send a reset and drop unsent output, so the server
// must not close it outright: the answer must arrive complete, with or
// without a stop.
TEST(Stop, DrainDoesNotCutAnAnswerWithUnreadInput) {
  for (bool stop : {false, true}) {
    SCOPED_TRACE(stop ? "with a stop" : "without a stop");
    std::atomic<int> calls{0};
    TestServer s;
    ASSERT_TRUE(start_with_handler(s, "big", ICAP_METHOD_REQMOD, big_answer_handler, &calls));

    Client c;
    ASSERT_EQ(c.connect(s.port(), 64 * 1024, 0), 0);
    ASSERT_TRUE(c.send_all(reqmod_get("big", "http://origin.example/", "Connection: close\r\n")));
    ASSERT_TRUE(wait_until([&] { return calls.load() == 1; }, ms(3000)));
    std::this_thread::sleep_for(ms(100));
    // Bytes the server will not read any more (it answers, then closes).
    ASSERT_TRUE(c.send_all(options_request("big")));
    std::this_thread::sleep_for(ms(100));
    if (stop) s.stop();
    std::this_thread::sleep_for(ms(100));
    Response r = c.read_response(ms(5000));
    ASSERT_TRUE(r.ok) << "answer cut after " << r.body_bytes << " of " << kBigAnswer
                      << " body bytes: " << r.error << "\n"
                      << s.logs_text();
    EXPECT_EQ(r.code, 200);
    EXPECT_EQ(r.body_bytes, kBigAnswer);
    EXPECT_TRUE(r.conn_close());
    EXPECT_TRUE(c.wait_closed(ms(3000)));
  }
}

// Stop before run: run returns at once.
TEST(Stop, StopBeforeRunReturnsAtOnce) {
  icap_server *srv = nullptr;
  ASSERT_EQ(icap_server_new(&srv), 0);
  ASSERT_EQ(icap_server_listen(srv, "127.0.0.1", 0), 0);
  icap_server_stop(srv);
  std::atomic<bool> done{false};
  int rc = -1;
  std::thread t([&] {
    rc = icap_server_run(srv);
    done = true;
  });
  bool returned = wait_until([&] { return done.load(); }, ms(3000));
  if (!returned) {
    fprintf(stderr, "FATAL: icap_server_run did not return after an early stop\n");
    std::abort();
  }
  t.join();
  EXPECT_EQ(rc, 0);
  icap_server_free(srv);
}

// ------------------------------------------------------------- workers ---

namespace {

// `rounds` rounds of transactions on `clients`: in each, every client sends
// one request to `service` (odd rounds a RESPMOD, whose echo must bring its
// body back; even rounds a REQMOD with Allow: 204), then every one reads its
// answer. Returns the number of answers read.
int mixed_rounds(std::vector<Client> &clients, const std::string &service, int rounds,
                 TestServer &s) {
  int answers = 0;
  auto body = [](int k, size_t i) {
    return "payload " + std::to_string(k) + "/" + std::to_string(i);
  };
  for (int k = 0; k < rounds; k++) {
    for (size_t i = 0; i < clients.size(); i++) {
      std::string req =
          k % 2 ? respmod(service, body(k, i))
                : reqmod_get(service, "http://o/" + std::to_string(i), "Allow: 204\r\n");
      EXPECT_TRUE(clients[i].send_all(req)) << "client " << i;
    }
    for (size_t i = 0; i < clients.size(); i++) {
      Response r = clients[i].read_response();
      EXPECT_TRUE(r.ok) << "client " << i << ": " << r.error << "\n" << s.logs_text();
      if (!r.ok) return answers;
      EXPECT_EQ(r.code, k % 2 ? 200 : 204);
      if (k % 2) {
        EXPECT_EQ(r.body, body(k, i));
      }
      answers++;
    }
  }
  return answers;
}

}  // namespace

namespace {

struct WorkerLog {
  std::mutex mu;
  std::map<int, std::set<unsigned>> workers_by_port;
  std::map<unsigned, std::set<std::thread::id>> threads_by_worker;
  std::atomic<int> calls{0};
};

int worker_recording(icap_request *req, void *user) {
  auto *log = static_cast<WorkerLog *>(user);
  {
    std::lock_guard<std::mutex> g(log->mu);
    log->workers_by_port[icap_request_client_port(req)].insert(icap_request_worker(req));
    log->threads_by_worker[icap_request_worker(req)].insert(std::this_thread::get_id());
  }
  log->calls++;
  return icap_request_no_adaptation(req);
}

}  // namespace

// With 4 workers, connections spread over more than one worker loop, and
// every transaction of a connection stays on its worker (and its thread).
TEST(Workers, ConnectionsSpreadAndStayOnTheirWorker) {
  WorkerLog log;
  TestServer s(4);
  ASSERT_TRUE(start_with_mod_service(s, "echo", worker_recording, &log));

  int expected_calls = 0;
  size_t distinct = 0;
  // SO_REUSEPORT hashing may, rarely, put a small batch on one socket:
  // retry with more connections (bounded).
  for (int round = 0, conns = 16; round < 4 && distinct < 2; round++, conns *= 2) {
    std::vector<Client> clients(static_cast<size_t>(conns));
    for (auto &c : clients) ASSERT_EQ(c.connect(s.port()), 0);
    expected_calls += mixed_rounds(clients, "echo", 4, s);
    std::lock_guard<std::mutex> g(log.mu);
    std::set<unsigned> used;
    for (auto &[port, ws] : log.workers_by_port) {
      EXPECT_EQ(ws.size(), 1u) << "the transactions of client port " << port << " ran on "
                               << ws.size() << " workers";
      used.insert(ws.begin(), ws.end());
    }
    distinct = used.size();
  }
  EXPECT_EQ(log.calls.load(), expected_calls);
  std::lock_guard<std::mutex> g(log.mu);
  EXPECT_GE(distinct, 2u) << "all connections were served by one worker";
  std::set<std::thread::id> all_threads;
  for (auto &[w, ts] : log.threads_by_worker) {
    EXPECT_LT(w, 4u) << "worker index out of range";
    EXPECT_EQ(ts.size(), 1u) << "worker " << w << " ran handlers on several threads";
    all_threads.insert(ts.begin(), ts.end());
  }
  EXPECT_EQ(all_threads.size(), log.threads_by_worker.size()) << "two workers share a thread";
}

// ------------------------------------------------------- cross-thread ---

namespace {

struct CrossCtx : DoneLog {
  std::atomic<int> callbacks{0};
  std::atomic<int> wrong_thread{0};
  std::atomic<int> work_on_loop_thread{0};
  std::vector<int> cb_status;
  std::vector<std::thread> threads;
  // Requests kept referenced by the test after their done callback.
  std::vector<struct CrossRec *> recs;
  bool expect_gone = false;  // clients vanish before the post/offload ends
  ~CrossCtx();
};

struct CrossRec {
  CrossCtx *ctx;
  std::thread::id loop_thread;
  std::thread::id work_thread;
  std::atomic<bool> done{false};
  int done_status = 1;
};

// Declared before the server in the tests, so the server is gone first.
CrossCtx::~CrossCtx() {
  for (auto &t : threads)
    if (t.joinable()) t.join();
  for (CrossRec *r : recs) delete r;
}

void cross_done(icap_request *, int status, void *user) {
  auto *rec = static_cast<CrossRec *>(user);
  rec->done_status = status;
  rec->done = true;
  rec->ctx->record(status);
}

// Runs on the loop thread after a post or an offload.
void cross_callback(icap_request *req, int status, void *user) {
  auto *rec = static_cast<CrossRec *>(user);
  CrossCtx *ctx = rec->ctx;
  if (std::this_thread::get_id() != rec->loop_thread) ctx->wrong_thread++;
  {
    std::lock_guard<std::mutex> g(ctx->mu);
    ctx->cb_status.push_back(status);
  }
  if (status == 0) {
    EXPECT_EQ(icap_request_no_adaptation(req), 0);
  } else {
    // The transaction is over: answering must be refused, reading allowed.
    EXPECT_EQ(icap_request_no_adaptation(req), ICAP_ESTATE);
    EXPECT_EQ(icap_request_method(req), ICAP_METHOD_RESPMOD);
  }
  ctx->callbacks++;
}

CrossRec *new_rec(icap_request *req, CrossCtx *ctx) {
  auto *rec = new CrossRec{ctx, std::this_thread::get_id(), {}, {false}, 1};
  {
    std::lock_guard<std::mutex> g(ctx->mu);
    ctx->recs.push_back(rec);
  }
  EXPECT_EQ(icap_request_on_done(req, cross_done, rec), 0);
  return rec;
}

int post_handler(icap_request *req, void *user) {
  auto *ctx = static_cast<CrossCtx *>(user);
  ctx->handler_calls++;
  CrossRec *rec = new_rec(req, ctx);
  icap_request_ref(req);  // transferred by icap_request_post
  std::lock_guard<std::mutex> g(ctx->mu);
  ctx->threads.emplace_back([req, rec, ctx] {
    if (ctx->expect_gone) {
      // Post only once the transaction ended (the client went away).
      wait_until([&] { return rec->done.load(); }, ms(5000));
    } else {
      std::this_thread::sleep_for(ms(20));
    }
    int rc = icap_request_post(req, cross_callback, rec);
    EXPECT_EQ(rc, 0) << icap_strerror(rc);
  });
  return 0;
}

void offload_work(void *user) {
  auto *rec = static_cast<CrossRec *>(user);
  rec->work_thread = std::this_thread::get_id();
  if (rec->work_thread == rec->loop_thread) rec->ctx->work_on_loop_thread++;
  if (rec->ctx->expect_gone)
    wait_until([&] { return rec->done.load(); }, ms(5000));
  else
    std::this_thread::sleep_for(ms(20));
}

int offload_handler(icap_request *req, void *user) {
  auto *ctx = static_cast<CrossCtx *>(user);
  ctx->handler_calls++;
  CrossRec *rec = new_rec(req, ctx);
  return icap_request_offload(req, offload_work, cross_callback, rec);
}

void run_cross_test(icap_handler_cb handler, bool gone) {
  CrossCtx ctx;
  TestServer s;
  ctx.expect_gone = gone;
  // Bounds the stop at the end (see Stop.ConnectionWritingAtStopIsClosedAfterIt:
  // a connection whose last answer is still being written when the stop
  // comes is otherwise kept until the drain timeout).
  s.set_limit(ICAP_LIMIT_DRAIN_TIMEOUT_MS, 2000);
  ASSERT_TRUE(start_with_mod_service(s, "x", handler, &ctx));

  const int kClients = 4, kPerConn = gone ? 1 : 5;
  std::vector<Client> clients(kClients);
  for (auto &c : clients) ASSERT_EQ(c.connect(s.port()), 0);
  if (!gone) {
    ASSERT_EQ(mixed_rounds(clients, "x", kPerConn, s), kClients * kPerConn);
  } else {
    // Each client sends half a body, waits for its handler, and vanishes
    // (half with FIN, half with a reset).
    std::string req = respmod("x", std::string(4000, 'q'), "", 1000);
    req.resize(req.size() - 2500);
    for (int i = 0; i < kClients; i++) {
      ASSERT_TRUE(clients[i].send_all(req));
      ASSERT_TRUE(wait_until([&] { return ctx.handler_calls.load() == i + 1; }, ms(3000)));
      vanish(clients[i], i);
    }
  }
  const int total = kClients * kPerConn;
  EXPECT_TRUE(wait_until([&] { return ctx.callbacks.load() == total; }, ms(8000)))
      << ctx.callbacks.load() << " of " << total << " callbacks\n"
      << s.logs_text();
  EXPECT_TRUE(wait_until([&] { return ctx.done_calls.load() == total; }, ms(3000)));
  s.stop_and_join();
  {
    std::lock_guard<std::mutex> g(ctx.mu);
    for (auto &t : ctx.threads) t.join();
    ctx.threads.clear();
  }
  EXPECT_EQ(ctx.handler_calls.load(), total);
  EXPECT_EQ(ctx.callbacks.load(), total);
  EXPECT_EQ(ctx.wrong_thread.load(), 0) << "callbacks ran off the handler's loop thread";
  EXPECT_EQ(ctx.work_on_loop_thread.load(), 0) << "offloaded work ran on the loop thread";
  expect_statuses(ctx, gone ? ICAP_ECONNRESET : 0);
  std::lock_guard<std::mutex> g(ctx.mu);
  for (int st : ctx.cb_status)
    EXPECT_EQ(st, gone ? ICAP_ECANCELED : 0) << "callback status " << icap_err_name(st);
}

}  // namespace

TEST(CrossThread, PostFromOtherThreadRunsOnLoopThread) { run_cross_test(post_handler, false); }

TEST(CrossThread, OffloadDoneRunsOnLoopThread) { run_cross_test(offload_handler, false); }

TEST(CrossThread, PostAfterClientGoneIsCanceled) { run_cross_test(post_handler, true); }

TEST(CrossThread, OffloadAfterClientGoneIsCanceled) { run_cross_test(offload_handler, true); }
