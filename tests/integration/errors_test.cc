// SPDX-License-Identifier: MIT
// A handler that fails: the client gets 500 and a close, and the done
// callback says ICAP_EHANDLER (icap.h: "ICAP_EHANDLER after
// icap_request_abort() or a failed handler").
#include <gtest/gtest.h>

#include <mutex>

#include "harness.hpp"

using namespace itest;

namespace {

struct FailCtx : DoneLog {
  std::atomic<int> abort_rc{1};
};

// Returns an error from the handler itself.
int failing_handler(icap_request *req, void *user) {
  EXPECT_EQ(static_cast<FailCtx *>(user)->track(req), 0);
  return ICAP_EIO;
}

void nop_work(void *) {}

// Aborts later, from the loop thread, outside the handler.
int aborting_handler(icap_request *req, void *user) {
  EXPECT_EQ(static_cast<FailCtx *>(user)->track(req), 0);
  return icap_request_offload(
      req, nop_work,
      [](icap_request *r, int st, void *u) {
        auto *ctx = static_cast<FailCtx *>(u);
        if (st == 0) ctx->abort_rc = icap_request_abort(r, ICAP_EIO);
      },
      user);
}

void run_fail_test(icap_handler_cb handler, FailCtx &ctx, TestServer &s) {
  ASSERT_TRUE(start_with_mod_service(s, "fail", handler, &ctx));
  std::vector<std::string> reqs = {reqmod_get("fail", "http://origin.example/"),
                                   respmod("fail", std::string(5000, 'f'), "", 1000)};
  for (size_t i = 0; i < reqs.size(); i++) {
    Client c;
    ASSERT_EQ(c.connect(s.port()), 0);
    Response r = round_trip(c, reqs[i], ms(3000));
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
  expect_statuses(ctx, ICAP_EHANDLER);
}

TEST(Errors, AbortOutsideTheHandlerGets500) {
  FailCtx ctx;
  TestServer s;
  run_fail_test(aborting_handler, ctx, s);
  EXPECT_EQ(ctx.abort_rc.load(), 0);
  ASSERT_FALSE(ctx.statuses().empty());
  expect_statuses(ctx, ICAP_EHANDLER);
}
