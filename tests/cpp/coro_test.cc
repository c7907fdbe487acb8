// SPDX-License-Identifier: MIT
// Tests of include/icap/coro.hpp (C++20): coroutine handlers reading
// multi-chunk bodies, previews, offload results applied on the loop thread,
// cancellation when the client disconnects, and exceptions.
#include <icap/coro.hpp>

#include "test_support.hpp"

#include <gtest/gtest.h>

static_assert(ICAP_HAS_COROUTINES, "coro_test needs C++20 coroutines");

using namespace cpptest;

namespace {

std::string this_thread_id() { return thread_id_string(std::this_thread::get_id()); }

/* Reads the whole body (through the preview, if any) into a string. */
icap::Task read_all(icap::Request req, std::string& out, Recorder& seen) {
  while (true) {
    icap::Chunk c = co_await req.read_chunk();
    if (!c.empty() && (c.end() || c.preview_end()))
      seen.add("data together with end");  // never: the wrapper splits them
    if (c.end()) {
      seen.add("end ieof=" + std::to_string(c.ieof()));
      co_return;
    }
    if (c.preview_end()) seen.add("preview_end");
    out += c.data();
  }
}

/* Each test: a server (one worker unless the test sets more) whose
 * service "co" the test registers, and what the handlers recorded. */
class Coro : public ::testing::Test {
 protected:
  icap::Service& co() { return ts.srv.service("co"); }

  Recorder seen;  // declared first: outlives the server's handlers
  TestServer ts;
};

TEST_F(Coro, ReadsMultiChunkBody) {
  co().respmod([&](icap::Request req) -> icap::Task {
    std::string body;
    co_await read_all(req, body, seen);  // a sub-Task
    seen.add("body=" + body);
    req.copy_http_head({"Content-Length"});
    req.send_headers(true);
    for (char& ch : body) ch = static_cast<char>(std::toupper(ch));
    req.send_chunk(std::move(body));
    req.end();
  });
  ts.start();
  std::string big(200000, 'z');
  Response r = response_to(ts.port, respmod_request(ts.port, "co", {"first-", "second-", big}));
  EXPECT_EQ(r.status, 200) << r.status_line;
  std::string big_up(200000, 'Z');
  EXPECT_EQ(r.body, "FIRST-SECOND-" + big_up);
  EXPECT_TRUE(seen.wait_for("body=first-second-zzz"));
  EXPECT_TRUE(seen.contains("end ieof=0"));
  EXPECT_FALSE(seen.contains("data together with end")) << seen.joined();
}

TEST_F(Coro, PreviewContinueAndIeof) {
  co().respmod([&](icap::Request req) -> icap::Task {
    std::string body;
    co_await read_all(req, body, seen);
    seen.add("body=" + body);
    req.set_enc_status("HTTP/1.1 200 OK");
    req.send_headers(true);
    req.send_chunk(body);
    req.end();
  });
  ts.start();
  {
    // Preview without ieof: the next read sends 100 Continue.
    Response r = respmod_after_continue(ts.port, "co", 3, {"abc"}, {"def", "g"});
    EXPECT_EQ(r.status, 200) << r.raw;
    EXPECT_EQ(r.body, "abcdefg");
    EXPECT_TRUE(seen.wait_for("body=abcdefg"));
    EXPECT_TRUE(seen.contains("preview_end"));
  }
  {
    // The preview holds the whole body: data first, then an empty end+ieof.
    Response r =
        response_to(ts.port, respmod_request(ts.port, "co", {"whole"}, "Preview: 10\r\n", kIeof));
    EXPECT_EQ(r.status, 200) << r.raw;
    EXPECT_EQ(r.body, "whole");
    EXPECT_TRUE(seen.wait_for("end ieof=1")) << seen.joined();
  }
  EXPECT_FALSE(seen.contains("data together with end")) << seen.joined();
}

TEST_F(Coro, OffloadResumesOnTheLoopThread) {
  ts.srv.workers(2);
  co().reqmod([&](icap::Request req) -> icap::Task {
    std::string loop = this_thread_id();
    std::string work_thread;
    int v = co_await req.offload([&] {
      work_thread = this_thread_id();
      std::this_thread::sleep_for(10ms);  // blocking is fine here
      return 20;
    });
    co_await req.offload([] {});  // void work
    auto p = co_await req.offload([] { return std::make_unique<int>(22); });
    seen.add(std::string("work off loop: ") + (work_thread != loop ? "yes" : "no"));
    seen.add(std::string("resumed on loop: ") + (this_thread_id() == loop ? "yes" : "no"));
    seen.add("sum=" + std::to_string(v + *p));
    req.send_error(403);
  });
  ts.start();
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(reqmod_status(ts.port, "co"), 403);
  }
  EXPECT_TRUE(seen.wait_for("sum=42"));
  expect_always(seen, "work off loop", "yes");
  expect_always(seen, "resumed on loop", "yes");
}

TEST_F(Coro, OffloadExceptionIsRethrownInTheCoroutine) {
  co().reqmod([&](icap::Request req) -> icap::Task {
    try {
      co_await req.offload([]() -> int { throw std::runtime_error("pool boom"); });
    } catch (const std::runtime_error& e) {
      seen.add(std::string("caught ") + e.what());
    }
    req.send_error(404);
  });
  ts.start();
  EXPECT_EQ(reqmod_status(ts.port, "co"), 404);
  EXPECT_TRUE(seen.wait_for("caught pool boom"));
}

TEST_F(Coro, DisconnectResumesWithEconnreset) {
  co().respmod([&](icap::Request req) -> icap::Task {
    req.on_done([this](icap::Request&, int status) { seen.add("done=" + std::to_string(status)); });
    std::string body;
    try {
      while (true) {
        icap::Chunk c = co_await req.read_chunk();
        if (c.end()) break;
        body += c.data();
        seen.add("got " + std::string(c.data()));
      }
      seen.add("unexpected end");
    } catch (const icap::Error& e) {
      seen.add("error=" + std::to_string(e.code()));
    }
    // The request is still readable (the Task holds a reference)...
    seen.add("service after disconnect=" + std::string(req.servicename()));
    // ...and answering is safe: libicap either refuses (icap::Error) or
    // drops the answer, since the client is gone.
    try {
      req.send_error(500);
      seen.add("answer after disconnect: returned");
    } catch (const icap::Error& e) {
      seen.add("answer after disconnect: returned error");
    }
  });
  ts.start();
  {
    Client c(ts.port);
    c.send(respmod_request(ts.port, "co", {"part1"}, "", ""));
    ASSERT_TRUE(seen.wait_for("got part1"));
  }  // the client goes away mid-body
  EXPECT_TRUE(seen.wait_for("error=" + std::to_string(ICAP_ECONNRESET))) << seen.joined();
  EXPECT_TRUE(seen.wait_for("service after disconnect=co")) << seen.joined();
  EXPECT_TRUE(seen.wait_for("answer after disconnect: returned")) << seen.joined();
  EXPECT_TRUE(seen.wait_for("done=" + std::to_string(ICAP_ECONNRESET))) << seen.joined();
  EXPECT_FALSE(seen.contains("unexpected end"));
}

TEST_F(Coro, DisconnectDuringOffload) {
  std::atomic<bool> release{false};
  co().respmod([&](icap::Request req) -> icap::Task {
    try {
      co_await req.offload([&] {
        seen.add("working");
        for (int i = 0; i < 500 && !release.load(); ++i) std::this_thread::sleep_for(10ms);
        return 1;
      });
      seen.add("offload returned normally");
    } catch (const icap::Error& e) {
      seen.add("offload error=" + std::to_string(e.code()));
    }
    seen.add("uri still readable=" + std::to_string(!req.request_uri().empty()));
  });
  ts.start();
  {
    Client c(ts.port);
    c.send(respmod_request(ts.port, "co", {"x"}, "", ""));
    ASSERT_TRUE(seen.wait_for("working"));
  }
  std::this_thread::sleep_for(200ms);  // let the server see the close
  release = true;
  EXPECT_TRUE(seen.wait_for("uri still readable=1")) << seen.joined();
  // Either the transaction was seen to end (ECANCELED) or the loop had not
  // noticed the close yet; both must resume safely, never on freed memory.
  EXPECT_TRUE(seen.contains("offload error=" + std::to_string(ICAP_ECANCELED)) ||
              seen.contains("offload returned normally"))
      << seen.joined();
}

TEST_F(Coro, ExceptionAfterSuspensionGives500) {
  co().respmod([](icap::Request req) -> icap::Task {
    icap::Chunk c = co_await req.read_chunk();
    throw std::runtime_error("coroutine failed after " + std::string(c.data()));
  });
  ts.start();
  expect_500_and_close(ts.port, respmod_request(ts.port, "co", {"abc"}));
  EXPECT_TRUE(ts.log.wait_for("coroutine failed after abc")) << ts.log.joined();
}

TEST_F(Coro, ExceptionBeforeSuspensionGives500) {
  co().reqmod([](icap::Request req) -> icap::Task {
    if (req.has_body() == false) throw std::runtime_error("early failure");
    co_return;
  });
  ts.start();
  EXPECT_EQ(reqmod_status(ts.port, "co"), 500);
  EXPECT_TRUE(ts.log.wait_for("early failure")) << ts.log.joined();
}

TEST_F(Coro, ReadingWithoutBodyThrowsEstate) {
  co().reqmod([&](icap::Request req) -> icap::Task {
    try {
      co_await req.read_chunk();
    } catch (const icap::Error& e) {
      seen.add("code=" + std::to_string(e.code()));
    }
    req.no_adaptation_required();
  });
  ts.start();
  EXPECT_EQ(reqmod_status(ts.port, "co", "Allow: 204\r\n"), 204);
  EXPECT_TRUE(seen.wait_for("code=" + std::to_string(ICAP_ESTATE)));
}

struct MemberHandler {
  Recorder* seen;
  icap::Task handle(icap::Request req) {
    co_await req.offload([] {});
    seen->add("member coroutine ran");
    req.send_error(403);
  }
};

TEST_F(Coro, MemberFunctionCoroutineViaLambda) {
  MemberHandler h{&seen};
  co().reqmod([&h](icap::Request req) { return h.handle(req); });
  ts.start();
  EXPECT_EQ(reqmod_status(ts.port, "co"), 403);
  EXPECT_TRUE(seen.wait_for("member coroutine ran"));
}

TEST_F(Coro, ManyConcurrentCoroutines) {
  ts.srv.workers(2);
  co().respmod([](icap::Request req) -> icap::Task {
    std::string body;
    while (true) {
      icap::Chunk c = co_await req.read_chunk();
      if (c.end()) break;
      body += c.data();
    }
    std::size_t n = co_await req.offload([&] { return body.size(); });
    req.set_enc_status("HTTP/1.1 200 OK");
    req.send_headers(true);
    req.send_chunk(std::to_string(n));
    req.end();
  });
  ts.start();
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 20; ++i) {
    clients.push_back(std::make_unique<Client>(ts.port));
    std::string first(static_cast<std::size_t>(i + 1), 'a');
    clients.back()->send(respmod_request(ts.port, "co", {first}, "", ""));
  }
  for (int i = 0; i < 20; ++i) clients[i]->send(chunked_pieces({"bb"}));
  for (int i = 0; i < 20; ++i) {
    Response r = clients[i]->read_response();
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, std::to_string(i + 3));
  }
}

}  // namespace
