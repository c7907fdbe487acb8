// SPDX-License-Identifier: MIT
// Flow control and client disappearance: a client that reads nothing must
// not make the server buffer without bound, and a client that vanishes
// mid-body must be reported to the handler.
#include <gtest/gtest.h>

#include <cstdio>
#include <mutex>

#include "harness.hpp"

using namespace itest;

namespace {

// Streams a chunked body of `total` bytes (pattern `seed`) in chunks of
// `chunk` bytes, keeping its position between calls.
class BodyStream {
 public:
  BodyStream(uint64_t total, size_t chunk, uint32_t seed)
      : total_(total), chunk_(chunk), seed_(seed) {}

  // Sends until done, `budget` passes, or no byte could be sent for
  // `stall` (then returns false with stalled() true). Returns true when the
  // whole body including the last chunk was sent.
  bool pump(Client &c, ms budget, ms stall) {
    auto end = Clock::now() + budget;
    stalled_ = false;
    while (!done()) {
      if (frame_pos_ == frame_.size()) next_frame();
      auto left = std::chrono::duration_cast<ms>(end - Clock::now());
      if (left.count() <= 0) return false;
      long n = c.send_some(frame_.data() + frame_pos_, frame_.size() - frame_pos_,
                           std::min(left, stall));
      if (n < 0) {
        error_ = true;
        return false;
      }
      if (n == 0) {
        stalled_ = true;
        return false;
      }
      frame_pos_ += static_cast<size_t>(n);
      wire_sent_ += static_cast<uint64_t>(n);
    }
    return true;
  }
  bool done() const { return last_queued_ && frame_pos_ == frame_.size(); }
  bool stalled() const { return stalled_; }
  bool error() const { return error_; }
  uint64_t body_queued() const { return body_pos_; }
  uint64_t wire_sent() const { return wire_sent_; }

 private:
  void next_frame() {
    frame_.clear();
    frame_pos_ = 0;
    if (body_pos_ == total_) {
      frame_ = "0\r\n\r\n";
      last_queued_ = true;
      return;
    }
    size_t n = static_cast<size_t>(std::min<uint64_t>(chunk_, total_ - body_pos_));
    char hex[32];
    snprintf(hex, sizeof hex, "%zx\r\n", n);
    frame_ = hex;
    size_t at = frame_.size();
    frame_.resize(at + n);
    fill_pattern(frame_.data() + at, n, body_pos_, seed_);
    frame_ += "\r\n";
    body_pos_ += n;
  }

  uint64_t total_;
  size_t chunk_;
  uint32_t seed_;
  uint64_t body_pos_ = 0;
  uint64_t wire_sent_ = 0;
  std::string frame_;
  size_t frame_pos_ = 0;
  bool last_queued_ = false;
  bool stalled_ = false;
  bool error_ = false;
};

constexpr uint64_t MiB = 1024 * 1024;

}  // namespace

// A client streams a 64 MiB RESPMOD body (echo, no Allow: 204) and reads
// nothing. The server must stop reading once its buffers are full (so the
// client's sends stall), its memory must stay bounded, other clients must
// still be served, and once the client reads, the echo must be
// byte-identical.
TEST(Backpressure, NonReadingClientBoundsMemoryAndEchoIsExact) {
  std::atomic<int> calls{0};
  TestServer s;
  ASSERT_NE(add_echo_service(s, "echo", &calls), nullptr);
  ASSERT_TRUE(s.start());

  // Warm up (threads, allocator arenas) before taking the baseline.
  {
    Client w;
    ASSERT_EQ(w.connect(s.port()), 0);
    for (int i = 0; i < 20; i++) {
      Response r = round_trip(w, respmod("echo", std::string(100000, 'w')));
      ASSERT_TRUE(r.ok) << r.error;
    }
  }
  const uint64_t rss0 = rss_bytes();
  ASSERT_GT(rss0, 0u);

  const uint64_t kTotal = 64 * MiB;
  const uint32_t kSeed = 4242;
  Client big;
  // Small client buffers so that the kernel does not hide the backpressure.
  ASSERT_EQ(big.connect(s.port(), 64 * 1024, 64 * 1024), 0);
  ASSERT_TRUE(big.send_all(respmod_head("echo", kTotal)));
  BodyStream stream(kTotal, 64 * 1024, kSeed);

  // Phase 1: send until the server stops taking data (nothing sent for
  // 500 ms), bounded to 20 s.
  stream.pump(big, ms(20000), ms(500));
  ASSERT_FALSE(stream.error()) << "send failed\n" << s.logs_text();
  ASSERT_TRUE(stream.stalled())
      << "the whole 64 MiB body was accepted although the client read nothing ("
      << stream.wire_sent() / MiB << " MiB sent): no backpressure";
  const uint64_t rss1 = rss_bytes();
  const uint64_t stalled_at = stream.body_queued();

  // Keep pushing for a while: the server must not take more.
  stream.pump(big, ms(800), ms(800));
  ASSERT_FALSE(stream.error());
  const uint64_t rss2 = rss_bytes();
  EXPECT_LE(stream.body_queued() - stalled_at, 1 * MiB)
      << "the server kept reading while its output was blocked";

  // Another client is served meanwhile.
  {
    Client other;
    ASSERT_EQ(other.connect(s.port()), 0);
    Response r = round_trip(other, options_request("echo"), ms(3000));
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.code, 200);
    std::string body(200000, 'o');
    r = round_trip(other, respmod("echo", body), ms(3000));
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.code, 200);
    EXPECT_TRUE(r.body == body);
  }

  const int64_t grow1 = static_cast<int64_t>(rss1) - static_cast<int64_t>(rss0);
  const int64_t grow2 = static_cast<int64_t>(rss2) - static_cast<int64_t>(rss0);
  RecordProperty("rss_growth_kib", static_cast<int>(grow2 / 1024));
  RecordProperty("body_accepted_kib_while_blocked", static_cast<int>(stalled_at / 1024));
  EXPECT_LT(grow1, static_cast<int64_t>(32 * MiB)) << "RSS grew by " << grow1 / 1024 << " KiB with "
                                                   << stalled_at / 1024 << " KiB of body accepted";
  EXPECT_LT(grow2, static_cast<int64_t>(32 * MiB)) << "RSS grew by " << grow2 / 1024 << " KiB";

  // Phase 2: read everything (checking each byte) while sending the rest.
  std::atomic<uint64_t> mismatches{0}, first_bad{UINT64_MAX};
  uint64_t offset = 0;
  Response echo;
  std::thread reader([&] {
    echo = big.read_response(ms(40000), [&](const char *p, size_t n) {
      for (size_t i = 0; i < n; i++) {
        if (p[i] != pattern_byte(offset + i, kSeed)) {
          if (mismatches.fetch_add(1) == 0) first_bad = offset + i;
        }
      }
      offset += n;
    });
  });
  bool sent_all = stream.pump(big, ms(40000), ms(20000));
  reader.join();
  ASSERT_TRUE(sent_all) << "could not send the rest of the body\n" << s.logs_text();
  ASSERT_TRUE(echo.ok) << echo.error << "\n" << s.logs_text();
  EXPECT_EQ(echo.code, 200);
  EXPECT_EQ(echo.http_head(), http_response_head(kTotal));
  EXPECT_EQ(echo.body_bytes, kTotal);
  EXPECT_EQ(mismatches.load(), 0u) << "first differing byte at " << first_bad.load();
  EXPECT_EQ(calls.load(), 20 + 1 + 1);

  // The connection is still usable.
  Response r = round_trip(big, options_request("echo"));
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.code, 200);
}

// ---------------------------------------------------------- disconnect ---

namespace {

struct DisconnectCtx : DoneLog {
  std::atomic<uint64_t> body_bytes{0};
  std::atomic<int> body_end{0};
  std::atomic<int> body_errors{0};
  std::atomic<int> body_after_error{0};
  std::atomic<int> live{0};  // per-request records not yet freed
  std::vector<int> body_error_status;
};

struct ReqRec {
  DisconnectCtx *ctx;
  bool errored = false;
  bool done = false;
};

void rec_done(icap_request *req, int status, void *user) {
  auto *rec = static_cast<ReqRec *>(user);
  DisconnectCtx *ctx = rec->ctx;
  if (rec->done) ADD_FAILURE() << "done callback called twice";
  rec->done = true;
  ctx->record(status);
  EXPECT_EQ(icap_request_get_data(req), rec);
  delete rec;
  ctx->live--;
}

void answer_blocked(icap_request *req) {
  EXPECT_EQ(icap_request_set_status(req, 200), 0);
  EXPECT_EQ(icap_request_set_http_status(req, "HTTP/1.1 403 Forbidden"), 0);
  EXPECT_EQ(icap_request_add_http_header(req, "Content-Length", "0"), 0);
  EXPECT_EQ(icap_request_send_headers(req, 0), 0);
}

// Counts one body callback of either delivery mode, and answers once the
// body ended. Returns true when more of the body is to come.
bool count_piece(icap_request *req, int status, size_t len, ReqRec *rec) {
  DisconnectCtx *ctx = rec->ctx;
  if (rec->errored) ctx->body_after_error++;
  if (status < 0) {
    rec->errored = true;
    ctx->body_errors++;
    std::lock_guard<std::mutex> g(ctx->mu);
    ctx->body_error_status.push_back(status);
    return false;
  }
  ctx->body_bytes += len;
  if (status & ICAP_BODY_END) {
    ctx->body_end++;
    answer_blocked(req);
    return false;
  }
  return true;
}

void push_body(icap_request *req, int status, const char *, size_t len, void *user) {
  count_piece(req, status, len, static_cast<ReqRec *>(user));
}

// What every handler here does first: count the call and track the request.
ReqRec *start_rec(icap_request *req, void *user) {
  auto *ctx = static_cast<DisconnectCtx *>(user);
  ctx->handler_calls++;
  auto *rec = new ReqRec{ctx};
  ctx->live++;
  icap_request_set_data(req, rec);
  EXPECT_EQ(icap_request_on_done(req, rec_done, rec), 0);
  return rec;
}

int push_handler(icap_request *req, void *user) {
  ReqRec *rec = start_rec(req, user);
  EXPECT_EQ(icap_request_set_body_cb(req, push_body, rec), 0);
  return 0;
}

// read_chunk variant: one read pending at a time.
void read_once(icap_request *req, int status, const char *, size_t len, void *user) {
  auto *rec = static_cast<ReqRec *>(user);
  if (count_piece(req, status, len, rec)) {
    EXPECT_EQ(icap_request_read_chunk(req, read_once, rec), 0);
  }
}

int read_handler(icap_request *req, void *user) {
  ReqRec *rec = start_rec(req, user);
  EXPECT_EQ(icap_request_read_chunk(req, read_once, rec), 0);
  return 0;
}

// Neither reads nor answers.
int waiting_handler(icap_request *req, void *user) {
  start_rec(req, user);
  return 0;
}

void run_disconnect_test(icap_handler_cb handler) {
  DisconnectCtx ctx;
  TestServer s;
  ASSERT_TRUE(start_with_handler(s, "sink", ICAP_METHOD_RESPMOD, handler, &ctx));

  // Control: a complete request reaches END and is answered; done gets 0.
  {
    Response r = round_trip(s.port(), respmod("sink", std::string(5000, 'x'), "", 1000));
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.code, 200);
    EXPECT_EQ(r.http_head().rfind("HTTP/1.1 403 Forbidden\r\n", 0), 0u) << r.http_head();
    ASSERT_TRUE(wait_until([&] { return ctx.done_calls.load() == 1; }, ms(3000)));
    std::lock_guard<std::mutex> g(ctx.mu);
    EXPECT_EQ(ctx.done_status.at(0), 0);
    ctx.done_status.clear();
  }
  const uint64_t control_bytes = ctx.body_bytes.load();
  EXPECT_EQ(control_bytes, 5000u);
  EXPECT_EQ(ctx.body_end.load(), 1);

  // Clients that send 3 chunks of a 1 MB body, then vanish: half with a FIN,
  // half with a reset.
  const int kClients = 8;
  std::vector<Client> clients(kClients);
  std::string head = respmod_head("sink", 1000000);
  std::string chunk = "3e8\r\n" + std::string(1000, 'y') + "\r\n";
  ASSERT_TRUE(
      connect_and_send(clients, s.port(), [&](int) { return head + chunk + chunk + chunk; }));
  ASSERT_TRUE(wait_until([&] { return ctx.body_bytes.load() == control_bytes + kClients * 3000u; },
                         ms(5000)))
      << "the handlers did not get the first chunks: " << ctx.body_bytes.load();
  EXPECT_EQ(ctx.done_calls.load(), 1);
  for (int i = 0; i < kClients; i++) vanish(clients[i], i);
  EXPECT_TRUE(wait_until([&] { return ctx.done_calls.load() == 1 + kClients; }, ms(5000)))
      << "done callbacks: " << ctx.done_calls.load() - 1 << " of " << kClients << "\n"
      << s.logs_text();
  std::this_thread::sleep_for(ms(50));  // late duplicate callbacks would show here

  EXPECT_EQ(ctx.handler_calls.load(), 1 + kClients);
  EXPECT_EQ(ctx.done_calls.load(), 1 + kClients);
  EXPECT_EQ(ctx.body_end.load(), 1) << "a vanished client's body was reported complete";
  EXPECT_EQ(ctx.body_after_error.load(), 0);
  EXPECT_EQ(ctx.live.load(), 0);
  expect_statuses(ctx, ICAP_ECONNRESET);
  {
    std::lock_guard<std::mutex> g(ctx.mu);
    // The body callback was active, so it is told of the failure once.
    EXPECT_EQ(ctx.body_error_status.size(), static_cast<size_t>(kClients));
    for (int st : ctx.body_error_status)
      EXPECT_EQ(st, ICAP_ECONNRESET) << "body status " << icap_err_name(st);
  }

  // The server is still fine.
  Response r = round_trip(s.port(), options_request("sink"));
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.code, 200);
}

}  // namespace

TEST(Disconnect, MidBodyNotifiesPushHandler) { run_disconnect_test(push_handler); }

TEST(Disconnect, MidBodyFailsPendingReadChunk) { run_disconnect_test(read_handler); }

namespace {

int echo_with_done(icap_request *req, void *user) {
  EXPECT_EQ(static_cast<DoneLog *>(user)->track(req), 0);
  return icap_request_no_adaptation(req);
}

// Six clients send request(i) to `s`; once the handler has been called for
// each, `go_away` makes them vanish, and every done callback in `log` must
// then say ICAP_ECONNRESET.
void run_vanishing_clients(TestServer &s, DoneLog &log,
                           const std::function<std::string(int)> &request,
                           const std::function<void(std::vector<Client> &)> &go_away) {
  const int kClients = 6;
  std::vector<Client> clients(kClients);
  ASSERT_TRUE(connect_and_send(clients, s.port(), request));
  ASSERT_TRUE(wait_until([&] { return log.handler_calls.load() == kClients; }, ms(3000)));
  go_away(clients);
  expect_all_done(log, kClients, ICAP_ECONNRESET, s);
}

}  // namespace

// A client that vanishes while the handler has not touched the body and
// has not answered: the done callback still reports ECONNRESET.
TEST(Disconnect, BeforeAnswerNotifiesDoneCallback) {
  DisconnectCtx ctx;
  TestServer s;
  ASSERT_TRUE(start_with_handler(s, "wait", ICAP_METHOD_RESPMOD, waiting_handler, &ctx));
  run_vanishing_clients(
      s, ctx,
      [](int i) {
        // Half send the whole body, half only part of it.
        std::string req = respmod("wait", std::string(3000, 'z'), "", 1000);
        if (i % 2) req.resize(req.size() - 1500);
        return req;
      },
      [](std::vector<Client> &clients) {
        for (auto &c : clients) c.reset();
      });
  EXPECT_EQ(ctx.live.load(), 0);
}

// The handler answered (an echo that streams the body back) and the client
// vanishes halfway through its body: the done callback says ECONNRESET,
// never 0.
TEST(Disconnect, DuringEchoNotifiesDoneCallback) {
  DoneLog ctx;
  TestServer s;
  ASSERT_TRUE(start_with_handler(s, "echo", ICAP_METHOD_RESPMOD, echo_with_done, &ctx));
  std::string chunk = "400\r\n" + std::string(1024, 'e') + "\r\n";
  run_vanishing_clients(
      s, ctx, [&](int) { return respmod_head("echo", 100 * 1024) + chunk + chunk; },
      [](std::vector<Client> &clients) {
        // The echo has started: each client sees the 200 head and the first
        // data.
        for (auto &c : clients) {
          ASSERT_TRUE(wait_until([&] { return c.wait_closed(ms(1)) || c.pending().size() > 2048; },
                                 ms(3000)));
          EXPECT_EQ(c.pending().rfind("ICAP/1.0 200 ", 0), 0u);
        }
        for (size_t i = 0; i < clients.size(); i++) vanish(clients[i], static_cast<int>(i));
      });
}

// ------------------------------------------------------- pause / resume ---

namespace {

struct PauseCtx {
  std::atomic<uint64_t> bytes{0};
  std::atomic<int> paused{0};
  std::atomic<int> ended{0};
  std::atomic<int> resume_posted{0};
  std::atomic<int> resume_rc{1};
  std::atomic<bool> release{false};
  std::thread resumer;
  uint32_t seed = 99;
  std::atomic<uint64_t> mismatches{0};
  // Declared before the server in the test, so the server is gone first.
  ~PauseCtx() {
    release = true;
    if (resumer.joinable()) resumer.join();
  }
};

void paused_body(icap_request *req, int status, const char *data, size_t len, void *user) {
  auto *ctx = static_cast<PauseCtx *>(user);
  if (status < 0) return;
  uint64_t off = ctx->bytes.load();
  for (size_t i = 0; i < len; i++)
    if (data[i] != pattern_byte(off + i, ctx->seed)) ctx->mismatches++;
  ctx->bytes += len;
  if (status & ICAP_BODY_END) {
    ctx->ended++;
    EXPECT_EQ(icap_request_send_error(req, 403), 0);
    return;
  }
  if (ctx->paused.load() == 0 && ctx->bytes.load() >= 1024 * 1024) {
    // Stop taking data; another thread resumes later through
    // icap_request_post (the only thread-safe entry point).
    EXPECT_EQ(icap_request_pause(req), 0);
    ctx->paused = 1;
    icap_request_ref(req);
    ctx->resumer = std::thread([req, ctx] {
      wait_until([&] { return ctx->release.load(); }, ms(20000));
      int rc = icap_request_post(
          req,
          [](icap_request *r, int st, void *u) {
            auto *ctx = static_cast<PauseCtx *>(u);
            ctx->resume_rc = st == 0 ? icap_request_resume(r) : st;
          },
          ctx);
      if (rc == 0) ctx->resume_posted = 1;
    });
  }
}

int pausing_handler(icap_request *req, void *user) {
  return icap_request_set_body_cb(req, paused_body, user);
}

}  // namespace

// A push-mode handler pauses the body after 1 MiB: the server stops reading
// (the client's sends stall, memory stays bounded), and after a resume
// posted from another thread the whole body arrives intact.
TEST(Backpressure, PausedPushBodyBoundsMemory) {
  PauseCtx ctx;
  TestServer s;
  ASSERT_TRUE(start_with_handler(s, "pause", ICAP_METHOD_RESPMOD, pausing_handler, &ctx));

  const uint64_t kTotal = 32 * MiB;
  Client c;
  ASSERT_EQ(c.connect(s.port(), 0, 64 * 1024), 0);
  const uint64_t rss0 = rss_bytes();
  ASSERT_TRUE(c.send_all(respmod_head("pause", kTotal)));
  BodyStream stream(kTotal, 64 * 1024, ctx.seed);
  stream.pump(c, ms(20000), ms(500));
  ASSERT_FALSE(stream.error());
  ASSERT_TRUE(stream.stalled()) << "the paused body was read entirely (" << stream.wire_sent() / MiB
                                << " MiB)";
  EXPECT_EQ(ctx.paused.load(), 1);
  const uint64_t at_pause = ctx.bytes.load();
  std::this_thread::sleep_for(ms(200));
  EXPECT_EQ(ctx.bytes.load(), at_pause) << "body delivered while paused";
  const int64_t grow = static_cast<int64_t>(rss_bytes()) - static_cast<int64_t>(rss0);
  EXPECT_LT(grow, static_cast<int64_t>(32 * MiB)) << "RSS grew by " << grow / 1024 << " KiB";

  ctx.release = true;
  ASSERT_TRUE(stream.pump(c, ms(30000), ms(20000))) << s.logs_text();
  Response r = c.read_response(ms(20000));
  if (ctx.resumer.joinable()) ctx.resumer.join();
  ASSERT_TRUE(r.ok) << r.error << "\n" << s.logs_text();
  EXPECT_EQ(r.code, 403);
  EXPECT_EQ(ctx.resume_posted.load(), 1);
  EXPECT_EQ(ctx.resume_rc.load(), 0);
  EXPECT_EQ(ctx.bytes.load(), kTotal);
  EXPECT_EQ(ctx.ended.load(), 1);
  EXPECT_EQ(ctx.mismatches.load(), 0u);
}
