// SPDX-License-Identifier: MIT
// A handler that fails: the client gets 500 and a close, and the done
// callback says ICAP_EHANDLER (icap.h: "ICAP_EHANDLER after
// icap_request_abort() or a failed handler").
#include <gtest/gtest.h>

#include <mutex>

#include "harness.hpp"

using namespace itest;

namespace {

struct FailCtx {
  std::atomic<int> handler_calls{0};
  std::atomic<int> done_calls{0};
  std::atomic<int> abort_rc{1};
  std::mutex mu;
  std::vector<int> done_status;
};

void fail_done(icap_request *, int st, void *u) {
  auto *ctx = static_cast<FailCtx *>(u);
  std::lock_guard<std::mutex> g(ctx->mu);
  ctx->done_status.push_back(st);
  ctx->done_calls++;
}

// Returns an error from the handler itself.
int failing_handler(icap_request *req, void *user) {
  auto *ctx = static_cast<FailCtx *>(user);
  ctx->handler_calls++;
  EXPECT_EQ(icap_request_on_done(req, fail_done, ctx), 0);
  return ICAP_EIO;
}

void nop_work(void *) {}

// Aborts later, from the loop thread, outside the handler.
int aborting_handler(icap_request *req, void *user) {
  auto *ctx = static_cast<FailCtx *>(user);
  ctx->handler_calls++;
  EXPECT_EQ(icap_request_on_done(req, fail_done, ctx), 0);
  return icap_request_offload(
      req, nop_work,
      [](icap_request *r, int st, void *u) {
        auto *ctx = static_cast<FailCtx *>(u);
        if (st == 0) ctx->abort_rc = icap_request_abort(r, ICAP_EIO);
      },
      ctx);
}

void run_fail_test(icap_handler_cb handler, FailCtx &ctx, TestServer &s) {
  icap_service *svc = add_mod_service(s, "fail", handler, &ctx);
  ASSERT_NE(svc, nullptr);
  ASSERT_TRUE(s.start());
  std::vector<std::string> reqs = {reqmod_get("fail", "http://origin.example/"),
                                   respmod("fail", std::string(5000, 'f'), "", 1000)};
  for (size_t i = 0; i < reqs.size(); i++) {
    Client c;
    ASSERT_EQ(c.connect(s.port()), 0);
    ASSERT_TRUE(c.send_all(reqs[i]));
    Response r = c.read_response(ms(3000));
    ASSERT_TRUE(r.ok) << "request " << i << ": " << r.error;
    EXPECT_EQ(r.code, 500) << r.status_line;
    EXPECT_TRUE(r.conn_close());
    EXPECT_TRUE(c.wait_closed(ms(3000))) << "request " << i;
    EXPECT_TRUE(
        wait_until([&] { return ctx.done_calls.load() == static_cast<int>(i + 1); }, ms(2000)));
  }
  EXPECT_EQ(ctx.handler_calls.load(), 2);
  EXPECT_EQ(ctx.done_calls.load(), 2);
}

}  // namespace

TEST(Errors, HandlerReturningErrorGets500) {
  FailCtx ctx;
  TestServer s;
  run_fail_test(failing_handler, ctx, s);
  std::lock_guard<std::mutex> g(ctx.mu);
  for (int st : ctx.done_status) EXPECT_EQ(st, ICAP_EHANDLER) << icap_err_name(st);
}

TEST(Errors, AbortOutsideTheHandlerGets500) {
  FailCtx ctx;
  TestServer s;
  run_fail_test(aborting_handler, ctx, s);
  EXPECT_EQ(ctx.abort_rc.load(), 0);
  std::lock_guard<std::mutex> g(ctx.mu);
  ASSERT_FALSE(ctx.done_status.empty());
  for (int st : ctx.done_status) EXPECT_EQ(st, ICAP_EHANDLER) << icap_err_name(st);
}
