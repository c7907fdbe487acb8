// SPDX-License-Identifier: MIT
// Tests of include/icap/icap.hpp (C++17): every accessor against known
// requests, the answer helpers, exceptions turned into 500, callbacks,
// offload/post thread affinity. Each test runs an icap::Server on
// 127.0.0.1:0 in a thread and talks raw ICAP to it over TCP.
#include "test_support.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <set>
#include <sstream>

using namespace cpptest;

namespace {

/* -------------------------------------------------------------- Headers --- */

TEST(Headers, CaseInsensitiveOrderedMultimap) {
  icap::Headers h;
  h.add("Host", "example.com").add("Cookie", "a=1").add("cookie", "b=2");
  EXPECT_EQ(h.size(), 3u);
  EXPECT_EQ(h["host"], "example.com");
  EXPECT_EQ(h["HOST"], "example.com");
  EXPECT_EQ(h["Missing"], "");
  EXPECT_FALSE(h.get("Missing").has_value());
  ASSERT_TRUE(h.get("COOKIE", 1).has_value());
  EXPECT_EQ(*h.get("COOKIE", 1), "b=2");
  EXPECT_FALSE(h.get("Cookie", 2).has_value());
  auto all = h.get_all("Cookie");
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0], "a=1");
  EXPECT_EQ(all[1], "b=2");
  EXPECT_EQ(h.count("cookie"), 2u);
  EXPECT_TRUE(h.contains("cOOkie"));
  EXPECT_EQ(h.names(), (std::vector<std::string>{"Host", "Cookie"}));

  std::vector<std::string> seen;
  for (const auto& [name, value] : h) seen.push_back(name + "=" + value);
  EXPECT_EQ(seen, (std::vector<std::string>{"Host=example.com", "Cookie=a=1", "cookie=b=2"}));

  h.set("COOKIE", "c=3");
  EXPECT_EQ(h.get_all("cookie"), (std::vector<std::string_view>{"c=3"}));
  EXPECT_EQ(h.at(1).name, "Cookie");  // keeps the first position
  EXPECT_EQ(h.erase("host"), 1u);
  EXPECT_EQ(h.size(), 1u);
  h.set("New", "1");
  EXPECT_EQ(h.at(1).name, "New");
  EXPECT_TRUE((icap::Headers{{"a", "1"}} == icap::Headers{{"A", "1"}}));
  EXPECT_TRUE(icap::iequals("Content-Type", "content-TYPE"));
  EXPECT_FALSE(icap::iequals("Content-Type", "Content-Typ"));
}

TEST(Error, CarriesCodeAndStrerror) {
  icap::Error e(ICAP_ECONNRESET, "read_chunk");
  EXPECT_EQ(e.code(), ICAP_ECONNRESET);
  EXPECT_STREQ(e.message(), icap_strerror(ICAP_ECONNRESET));
  EXPECT_STREQ(e.name(), "ICAP_ECONNRESET");
  std::string w = e.what();
  EXPECT_NE(w.find("read_chunk"), std::string::npos);
  EXPECT_NE(w.find(icap_strerror(ICAP_ECONNRESET)), std::string::npos);
}

TEST(Server, ErrorsBecomeExceptions) {
  icap::Server s;
  EXPECT_NE(s.native_handle(), nullptr);
  s.service("dup");
  // The same name gives the same Service back, not ICAP_EEXIST.
  EXPECT_EQ(&s.service("dup"), &s.service("dup"));
  EXPECT_EQ(s.service("dup").name(), "dup");
  try {
    s.listen("not an address", 1344);
    ADD_FAILURE() << "listen on a bad host did not throw";
  } catch (const icap::Error& e) {
    EXPECT_LT(e.code(), 0);
  }
  try {
    s.port(5);
    ADD_FAILURE() << "port(5) did not throw";
  } catch (const icap::Error& e) {
    EXPECT_LT(e.code(), 0);
  }
  EXPECT_THROW(s.limit(static_cast<icap_limit>(999), 1), icap::Error);
  s.limit(ICAP_LIMIT_HEADER_COUNT, 50);
  EXPECT_EQ(s.limit(ICAP_LIMIT_HEADER_COUNT), 50u);
  EXPECT_THROW(s.service("dup").istag("bad\"tag"), icap::Error);
}

TEST(Server, MoveKeepsServicesAndHandlers) {
  Recorder seen;
  icap::Server a;
  a.service("moved").reqmod([&](icap::Request& r) {
    seen.add("handled");
    r.send_error(403);
  });
  icap::Server b(std::move(a));
  EXPECT_EQ(a.native_handle(), nullptr);
  EXPECT_NO_THROW(a.stop());  // a moved-from server: stop is a no-op
  EXPECT_THROW(a.workers(1), icap::Error);

  b.workers(1);
  while_running(b, [](int port) { EXPECT_EQ(reqmod_status(port, "moved"), 403); });
  EXPECT_TRUE(seen.contains("handled"));
}

/* ------------------------------------------------------------ accessors --- */

struct Seen {
  std::string command, uri, version, service, client_ip;
  icap_method method = ICAP_METHOD_COUNT_;
  std::vector<std::string> enc_req;
  icap::Headers enc_req_headers, enc_res_headers, icap_headers;
  std::string res_version, res_reason;
  int res_code = 0;
  bool has_body = false, in_preview = false, ieof = false;
  std::optional<int64_t> preview;
  std::set<int> allow;
  std::map<std::string, int64_t> encapsulated;
  int code_before = -1, code_after = -1;
  std::string raw_req_hdr;
  std::optional<std::string> cookie2, x_client_ip, missing;
  unsigned worker = 99;
};

/* What the accessors return in a handler, before it answers. */
Seen accessors(icap::Request& req) {
  Seen s;
  // The ICAP request, and who sent it.
  s.command = req.command();
  s.method = req.method();
  s.uri = req.request_uri();
  s.version = req.version();
  s.service = req.servicename();
  if (auto v = req.icap_header("x-client-ip")) s.x_client_ip = std::string(*v);
  s.client_ip = req.client_ip();
  s.icap_headers = req.icap_headers();
  s.allow = req.allow();
  s.preview = req.preview();
  s.encapsulated = req.encapsulated();
  // The encapsulated HTTP request and response.
  auto r = req.enc_req();
  s.enc_req = {std::string(r[0]), std::string(r[1]), std::string(r[2])};
  EXPECT_EQ(r.method, r[0]);
  s.enc_req_headers = req.enc_req_headers();
  if (auto v = req.enc_req_header("cookie", 1)) s.cookie2 = std::string(*v);
  if (auto v = req.enc_req_header("X-Nope")) s.missing = std::string(*v);
  s.raw_req_hdr = std::string(req.raw_section(ICAP_SECTION_REQ_HDR));
  s.enc_res_headers = req.enc_res_headers();
  auto st = req.enc_res_status();
  s.res_version = st.version;
  s.res_code = st.code;
  s.res_reason = st.reason;
  // The body, the loop thread and the answer so far.
  s.has_body = req.has_body();
  s.in_preview = req.in_preview();
  s.ieof = req.ieof();
  s.worker = req.worker();
  s.code_before = req.icap_response_code();
  return s;
}

TEST(Request, AccessorsOnReqmodGet) {
  TestServer ts;
  Slot<Seen> slot;
  ts.srv.service("acc").reqmod([&](icap::Request& req) {
    Seen s = accessors(req);
    req.no_adaptation_required();
    s.code_after = req.icap_response_code();
    slot.set(s);
  });
  ts.start();

  Response r =
      response_to(ts.port, reqmod_request(ts.port, "acc?mode=x",
                                          "Allow: 204, trailers\r\nX-Client-IP: 10.1.2.3\r\n"
                                          "X-Multi: a\r\nX-Multi: b\r\n"));
  EXPECT_EQ(r.status, 204) << r.raw;

  auto s = slot.wait();
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->command, "REQMOD");
  EXPECT_EQ(s->method, ICAP_METHOD_REQMOD);
  EXPECT_EQ(s->uri, "icap://127.0.0.1:" + std::to_string(ts.port) + "/acc?mode=x");
  EXPECT_EQ(s->version, "ICAP/1.0");
  EXPECT_EQ(s->service, "acc");
  EXPECT_EQ(s->client_ip, "127.0.0.1");
  EXPECT_EQ(s->enc_req,
            (std::vector<std::string>{"GET", "http://example.com/path?q=1", "HTTP/1.1"}));
  EXPECT_EQ(s->enc_req_headers["Host"], "example.com");
  EXPECT_EQ(s->enc_req_headers.get_all("COOKIE"), (std::vector<std::string_view>{"a=1", "b=2"}));
  EXPECT_EQ(s->enc_req_headers.size(), 3u);
  EXPECT_TRUE(s->enc_res_headers.empty());
  EXPECT_EQ(s->res_code, -1);
  EXPECT_EQ(s->icap_headers.get_all("x-multi"), (std::vector<std::string_view>{"a", "b"}));
  EXPECT_EQ(s->icap_headers["Host"], "127.0.0.1:" + std::to_string(ts.port));
  EXPECT_FALSE(s->has_body);
  EXPECT_FALSE(s->in_preview);
  EXPECT_FALSE(s->ieof);
  EXPECT_FALSE(s->preview.has_value());
  EXPECT_EQ(s->allow, (std::set<int>{204}));
  EXPECT_EQ(s->encapsulated,
            (std::map<std::string, int64_t>{{"req-hdr", 0},
                                            {"null-body", static_cast<int64_t>(kReqHdr.size())}}));
  EXPECT_EQ(s->raw_req_hdr, kReqHdr);
  EXPECT_EQ(s->cookie2, std::optional<std::string>("b=2"));
  EXPECT_EQ(s->x_client_ip, std::optional<std::string>("10.1.2.3"));
  EXPECT_FALSE(s->missing.has_value());
  EXPECT_EQ(s->worker, 0u);
  EXPECT_EQ(s->code_before, 0);
  EXPECT_EQ(s->code_after, 204);
}

TEST(Request, AccessorsOnRespmodWithPreview) {
  TestServer ts;
  Slot<Seen> slot;
  Recorder chunks;
  ts.srv.service("acc").respmod([&](icap::Request& req) {
    Seen s = accessors(req);
    EXPECT_EQ(req.encapsulated(ICAP_SECTION_RES_HDR), static_cast<int64_t>(kReqHdr.size()));
    EXPECT_EQ(req.encapsulated(ICAP_SECTION_REQ_BODY), -1);
    slot.set(s);
    // Read the whole preview (it ends with ieof), then answer.
    std::function<void(icap::Request&, const icap::ChunkView&)> on_chunk;
    auto read = std::make_shared<std::function<void(icap::Request&)>>();
    *read = [&chunks, read](icap::Request& r) {
      r.read_chunk([&chunks, read](icap::Request& r2, const icap::ChunkView& c) {
        chunks.add("data=" + std::string(c.data()) + " end=" + std::to_string(c.end()) +
                   " ieof=" + std::to_string(c.ieof()) + " req.ieof=" + std::to_string(r2.ieof()));
        if (c.end()) {
          r2.no_adaptation_required();
          *read = nullptr;  // break the cycle
        } else {
          (*read)(r2);
        }
      });
    };
    (*read)(req);
  });
  ts.start();

  Response r = response_to(
      ts.port,
      respmod_request(ts.port, "acc", {"hello"}, "Preview: 10\r\nAllow: trailers, 206\r\n", kIeof));
  EXPECT_EQ(r.status, 204) << r.raw;

  auto s = slot.wait();
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->command, "RESPMOD");
  EXPECT_EQ(s->method, ICAP_METHOD_RESPMOD);
  EXPECT_EQ(s->res_version, "HTTP/1.1");
  EXPECT_EQ(s->res_code, 200);
  EXPECT_EQ(s->res_reason, "OK");
  EXPECT_EQ(s->enc_req_headers["host"], "example.com");
  EXPECT_EQ(s->enc_res_headers["content-type"], "text/plain");
  EXPECT_EQ(s->enc_res_headers.size(), 3u);
  EXPECT_TRUE(s->has_body);
  EXPECT_EQ(s->preview, std::optional<int64_t>(10));
  EXPECT_TRUE(s->in_preview);
  EXPECT_EQ(s->allow, (std::set<int>{206}));
  EXPECT_EQ(s->encapsulated,
            (std::map<std::string, int64_t>{
                {"req-hdr", 0},
                {"res-hdr", static_cast<int64_t>(kReqHdr.size())},
                {"res-body", static_cast<int64_t>(kReqHdr.size() + kResHdr.size())}}));
  ASSERT_TRUE(chunks.wait_for("end=1"));
  // All the data arrived, and the final piece reported end + ieof.
  std::string all;
  for (const auto& i : chunks.items()) all += i + ";";
  EXPECT_NE(all.find("hello"), std::string::npos) << all;
  EXPECT_NE(all.find("end=1 ieof=1 req.ieof=1"), std::string::npos) << all;
}

TEST(Request, OptionsHandlerOverridesGeneratedHeaders) {
  TestServer ts;
  ts.srv.service("opt")
      .preview(0)
      .istag("tag-1")
      .allow(true, true)
      .options_ttl(60)
      .options_header("X-Include", "X-Client-IP")
      .options([](icap::Request& req) {
        EXPECT_EQ(req.command(), "OPTIONS");
        req.set_icap_header("Service", "C++ test");
        req.send_headers(false);
      })
      .respmod([](icap::Request& req) { req.no_adaptation_required(); });
  ts.start();
  Response r = response_to(ts.port, "OPTIONS icap://127.0.0.1/opt ICAP/1.0\r\nHost: x\r\n\r\n");
  EXPECT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.headers["Service"], "C++ test");
  EXPECT_EQ(r.headers["ISTag"], "\"tag-1\"");
  EXPECT_EQ(r.headers["Preview"], "0");
  EXPECT_EQ(r.headers["Options-TTL"], "60");
  EXPECT_EQ(r.headers["X-Include"], "X-Client-IP");
  EXPECT_NE(r.headers["Methods"].find("RESPMOD"), std::string_view::npos);
  EXPECT_NE(r.headers["Allow"].find("206"), std::string_view::npos) << r.raw;
}

/* -------------------------------------------------------------- answers --- */

TEST(Request, BlockPageInReqmod) {
  TestServer ts;
  ts.srv.service("block").reqmod([](icap::Request& req) {
    req.set_icap_response(200);
    req.set_enc_status("HTTP/1.1 403 Forbidden");
    req.set_enc_header("Content-Type", "text/html");
    req.set_enc_header("Set-Cookie", "a=1");
    req.set_enc_header("Set-Cookie", "b=2");
    req.set_icap_header("X-Verdict", "blocked");
    req.send_headers(true);
    req.send_chunk("<h1>");
    req.send_chunk(std::string("blocked"));  // zero-copy overload
    std::string tail = "</h1>";
    req.send_chunk(tail);
    req.end();
  });
  ts.start();
  Response r = response_to(ts.port, reqmod_request(ts.port, "block"));
  EXPECT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.headers["X-Verdict"], "blocked");
  EXPECT_NE(r.headers["Encapsulated"].find("res-hdr=0"), std::string_view::npos);
  EXPECT_EQ(r.http_head.rfind("HTTP/1.1 403 Forbidden\r\n", 0), 0u) << r.http_head;
  EXPECT_NE(r.http_head.find("Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n"), std::string::npos);
  EXPECT_EQ(r.body, "<h1>blocked</h1>");
}

TEST(Request, SendErrorAndRequestLineRewrite) {
  TestServer ts;
  ts.srv.service("err").reqmod([](icap::Request& req) { req.send_error(403); });
  ts.srv.service("rewrite").reqmod([](icap::Request& req) {
    req.set_enc_request("GET http://example.org/other HTTP/1.1");
    req.set_enc_header("Host", "example.org");
    req.send_headers(false);
  });
  ts.start();
  EXPECT_EQ(reqmod_status(ts.port, "err"), 403);

  Response r = response_to(ts.port, reqmod_request(ts.port, "rewrite"));
  EXPECT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.http_head.rfind("GET http://example.org/other HTTP/1.1\r\n", 0), 0u) << r.http_head;
  EXPECT_NE(r.headers["Encapsulated"].find("req-hdr=0"), std::string_view::npos);
}

TEST(Request, CopyHttpHeadWithSkipList) {
  TestServer ts;
  ts.srv.service("hdr").respmod([](icap::Request& req) {
    req.copy_http_head({"server"});
    req.set_enc_header("X-Libicap", "rewritten");
    req.send_headers(false);
  });
  ts.start();
  Response r = response_to(ts.port, icap_head("RESPMOD", ts.port, "hdr", "", kReqHdr, kResHdr, ""));
  EXPECT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.http_head.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << r.http_head;
  EXPECT_EQ(r.http_head.find("Server:"), std::string::npos) << r.http_head;
  EXPECT_NE(r.http_head.find("X-Keep: yes"), std::string::npos);
  EXPECT_NE(r.http_head.find("X-Libicap: rewritten"), std::string::npos);
}

TEST(Request, IllegalCallsThrowIcapError) {
  TestServer ts;
  Recorder seen;
  ts.srv.service("twice").reqmod([&](icap::Request& req) {
    req.send_error(403);
    try {
      req.send_error(404);
    } catch (const icap::Error& e) {
      seen.add("code=" + std::to_string(e.code()));
    }
    try {
      req.read_chunk([](icap::Request&, const icap::ChunkView&) {});
    } catch (const icap::Error& e) {
      seen.add("read=" + std::to_string(e.code()));
    }
  });
  ts.start();
  EXPECT_EQ(reqmod_status(ts.port, "twice"), 403);
  EXPECT_TRUE(seen.wait_for("code=" + std::to_string(ICAP_ESTATE)));
  EXPECT_TRUE(seen.wait_for("read=" + std::to_string(ICAP_ESTATE)));
}

/* --------------------------------------------------------- exceptions --- */

TEST(Exceptions, ThrowingHandlerGives500AndClose) {
  TestServer ts;
  ts.srv.service("boom").reqmod(
      [](icap::Request&) { throw std::runtime_error("handler exploded"); });
  ts.srv.service("boom2").reqmod([](icap::Request&) { throw 42; });
  ts.start();
  expect_500_and_close(ts.port, reqmod_request(ts.port, "boom"));
  EXPECT_TRUE(ts.log.wait_for("handler exploded")) << ts.log.joined();
  { EXPECT_EQ(reqmod_status(ts.port, "boom2"), 500); }
  EXPECT_TRUE(ts.log.wait_for("unknown exception")) << ts.log.joined();
  // The server is still fine.
  ts.srv.stop();
}

TEST(Exceptions, ThrowingBodyCallbackAborts) {
  TestServer ts;
  ts.srv.service("body").respmod([](icap::Request& req) {
    req.read_chunk(
        [](icap::Request&, const icap::ChunkView&) { throw std::logic_error("bad chunk"); });
  });
  ts.start();
  expect_500_and_close(ts.port, respmod_request(ts.port, "body", {"abc"}));
  EXPECT_TRUE(ts.log.wait_for("bad chunk")) << ts.log.joined();
}

TEST(Exceptions, ThrowingOffloadWorkAborts) {
  TestServer ts;
  ts.srv.service("work").reqmod([](icap::Request& req) {
    req.offload([]() -> int { throw std::runtime_error("work failed"); },
                [](icap::Request& r, int) { r.send_error(403); });
  });
  ts.start();
  EXPECT_EQ(reqmod_status(ts.port, "work"), 500);
  EXPECT_TRUE(ts.log.wait_for("work failed")) << ts.log.joined();
}

TEST(Exceptions, LogCallbackThatThrowsIsContained) {
  Recorder seen;
  icap::Server s;
  s.workers(1);
  s.log([](icap_log_level, std::string_view) { throw std::runtime_error("log"); }, ICAP_LOG_DEBUG);
  s.service("x").reqmod([&](icap::Request&) {
    seen.add("ok");
    throw std::runtime_error("reported to a throwing logger");
  });
  while_running(s, [](int port) { EXPECT_EQ(reqmod_status(port, "x"), 500); });
  EXPECT_TRUE(seen.contains("ok"));
}

/* ----------------------------------------------------------- streaming --- */

TEST(Streaming, PullReadEchoesMultiChunkBody) {
  TestServer ts;
  struct Pump {
    static void next(icap::Request& r) {
      r.read_chunk([](icap::Request& r2, const icap::ChunkView& c) {
        if (c.error()) return;
        if (!c.empty()) r2.send_chunk(c.data());
        if (c.end())
          r2.end();
        else
          next(r2);
      });
    }
  };
  ts.srv.service("copy").respmod([](icap::Request& req) {
    req.copy_http_head();
    req.send_headers(true);
    Pump::next(req);
  });
  ts.start();
  std::string big(100000, 'x');
  Response r =
      response_to(ts.port, respmod_request(ts.port, "copy", {"one,", "two,", big, "three"}));
  EXPECT_EQ(r.status, 200) << r.status_line;
  EXPECT_EQ(r.body, "one,two," + big + "three");
}

TEST(Streaming, PushModeWithPauseResume) {
  TestServer ts;
  Recorder seen;
  ts.srv.service("push").respmod([&](icap::Request& req) {
    auto body = std::make_shared<std::string>();
    req.on_body([&seen, body](icap::Request& r, const icap::ChunkView& c) {
      if (c.error()) return;
      body->append(c.data());
      // Exercise pause/resume from inside the callback.
      r.pause();
      r.resume();
      if (c.end()) {
        seen.add("body=" + *body);
        r.set_enc_status("HTTP/1.1 200 OK");
        r.send_headers(true);
        r.send_chunk(std::to_string(body->size()));
        r.end();
      }
    });
  });
  ts.start();
  Response r = response_to(ts.port, respmod_request(ts.port, "push", {"ab", "cd", "ef"}));
  EXPECT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body, "6");
  EXPECT_TRUE(seen.wait_for("body=abcdef"));
}

TEST(Streaming, PreviewThenContinue) {
  TestServer ts;
  Recorder seen;
  ts.srv.service("prev").respmod([&](icap::Request& req) {
    auto body = std::make_shared<std::string>();
    auto step = std::make_shared<std::function<void(icap::Request&)>>();
    *step = [&seen, body, step](icap::Request& r) {
      r.read_chunk([&seen, body, step](icap::Request& r2, const icap::ChunkView& c) {
        body->append(c.data());
        if (c.preview_end()) seen.add("preview_end in_preview=" + std::to_string(r2.in_preview()));
        if (c.end()) {
          seen.add("body=" + *body);
          r2.set_enc_status("HTTP/1.1 200 OK");
          r2.send_headers(true);
          r2.send_chunk(*body);
          r2.end();
          *step = nullptr;
          return;
        }
        (*step)(r2);  // after preview_end this sends 100 Continue
      });
    };
    (*step)(req);
  });
  ts.start();
  Response r = respmod_after_continue(ts.port, "prev", 4, {"abcd"}, {"efgh", "ij"});
  EXPECT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body, "abcdefghij");
  EXPECT_TRUE(seen.wait_for("preview_end in_preview=1")) << seen.joined();
}

/* ------------------------------------------- done, data, offload, post --- */

TEST(Callbacks, OnDoneAndUserData) {
  TestServer ts;
  Recorder seen;
  ts.srv.service("done").reqmod([&](icap::Request& req) {
    EXPECT_EQ(req.data(), nullptr);
    auto* mine = new std::string("per-request");
    req.set_data(mine);
    EXPECT_EQ(req.data_as<std::string>(), mine);
    req.on_done([&seen](icap::Request&, int) { seen.add("replaced"); });
    req.on_done([&seen](icap::Request& r, int status) {
      auto* p = r.data_as<std::string>();
      seen.add("done status=" + std::to_string(status) + " data=" + (p ? *p : std::string("null")));
      delete p;
      r.set_data(nullptr);
    });
    req.send_error(403);
  });
  ts.start();
  EXPECT_EQ(reqmod_status(ts.port, "done"), 403);
  EXPECT_TRUE(seen.wait_for("done status=0 data=per-request")) << seen.joined();
  EXPECT_FALSE(seen.contains("replaced"));
}

TEST(Callbacks, OnDoneReportsClientGone) {
  TestServer ts;
  Recorder seen;
  ts.srv.service("gone").respmod([&](icap::Request& req) {
    req.on_done(
        [&seen](icap::Request&, int status) { seen.add("done status=" + std::to_string(status)); });
    req.read_chunk([&seen](icap::Request&, const icap::ChunkView& c) {
      seen.add("read status=" + std::to_string(c.status()));
    });
  });
  ts.start();
  {
    Client c(ts.port);
    // The body never ends: the handler waits for data.
    c.send(icap_head("RESPMOD", ts.port, "gone", "", kReqHdr, kResHdr, "res-body"));
    std::this_thread::sleep_for(100ms);
  }  // closed
  EXPECT_TRUE(seen.wait_for("done status=" + std::to_string(ICAP_ECONNRESET))) << seen.joined();
  EXPECT_TRUE(seen.wait_for("read status=" + std::to_string(ICAP_ECONNRESET))) << seen.joined();
}

TEST(Callbacks, OffloadRunsOnPoolAndThenOnLoopThread) {
  TestServer ts(2);
  Recorder seen;
  ts.srv.service("off").reqmod([&](icap::Request& req) {
    std::string loop = thread_id_string(std::this_thread::get_id());
    req.offload(
        [&seen, loop] {
          std::string me = thread_id_string(std::this_thread::get_id());
          seen.add(std::string("work on loop thread: ") + (me == loop ? "yes" : "no"));
          return std::make_unique<int>(41);  // move-only result
        },
        [&seen, loop](icap::Request& r, std::unique_ptr<int> v) {
          std::string me = thread_id_string(std::this_thread::get_id());
          seen.add(std::string("then on loop thread: ") + (me == loop ? "yes" : "no"));
          seen.add("result=" + std::to_string(*v + 1));
          r.send_error(403);
        });
  });
  ts.srv.service("offvoid").reqmod(
      [&](icap::Request& req) { req.offload([] {}, [](icap::Request& r) { r.send_error(404); }); });
  ts.start();
  for (int i = 0; i < 4; ++i) {  // several connections: both loops
    EXPECT_EQ(reqmod_status(ts.port, "off"), 403);
  }
  EXPECT_TRUE(seen.wait_for("result=42"));
  expect_always(seen, "work on loop thread", "no");
  expect_always(seen, "then on loop thread", "yes");
  EXPECT_EQ(reqmod_status(ts.port, "offvoid"), 404);
}

TEST(Callbacks, PostFromAnotherThread) {
  TestServer ts(2);
  Recorder seen;
  std::vector<std::thread> helpers;
  std::mutex hm;
  ts.srv.service("post").reqmod([&](icap::Request& req) {
    std::string loop = thread_id_string(std::this_thread::get_id());
    icap::RequestRef ref = req.ref();
    std::lock_guard<std::mutex> lk(hm);
    helpers.emplace_back([&seen, loop, ref = std::move(ref)]() mutable {
      std::this_thread::sleep_for(20ms);
      std::move(ref).post([&seen, loop](icap::Request& r, int status) {
        std::string me = thread_id_string(std::this_thread::get_id());
        seen.add("post status=" + std::to_string(status) +
                 " same loop=" + (me == loop ? "yes" : "no"));
        r.send_error(403);
      });
      seen.add(std::string("ref released: ") + (ref ? "no" : "yes"));
    });
  });
  ts.start();
  EXPECT_EQ(reqmod_status(ts.port, "post"), 403);
  EXPECT_TRUE(seen.wait_for("post status=0 same loop=yes")) << seen.joined();
  EXPECT_TRUE(seen.wait_for("ref released: yes"));
  std::lock_guard<std::mutex> lk(hm);
  for (auto& t : helpers) t.join();
}

TEST(Callbacks, MemberFunctionHandlerViaLambdaAndStdFunction) {
  struct Policy {
    int code;
    void handle(icap::Request& req) { req.send_error(code); }
  };
  Policy p{403};
  std::function<void(icap::Request&)> fn = [](icap::Request& req) { req.send_error(404); };
  TestServer ts;
  ts.srv.service("member").reqmod([&p](icap::Request& req) { p.handle(req); });
  ts.srv.service("stdfn").reqmod(fn);
  // A move-only callable works too.
  auto owned = std::make_unique<int>(405);
  ts.srv.service("moveonly").reqmod([o = std::move(owned)](icap::Request& req) {
    req.send_error(*o);
  });
  ts.start();
  Client c(ts.port);
  c.send(reqmod_request(ts.port, "member"));
  EXPECT_EQ(c.read_response().status, 403);
  c.send(reqmod_request(ts.port, "stdfn"));
  EXPECT_EQ(c.read_response().status, 404);
  Client c2(ts.port);
  c2.send(reqmod_request(ts.port, "moveonly"));
  EXPECT_EQ(c2.read_response().status, 405);
}

}  // namespace

/* ----------------------------------------------------- inherited sockets --- */

// Server::listen_fd() adopts a listening socket (its port is reported) and
// turns a refusal into icap::Error, leaving the descriptor to the caller.
TEST(Server, ListenFdAdoptsAListeningSocket) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  icap::Server s;
  try {
    s.listen_fd(fd);  // bound but not listening
    ADD_FAILURE() << "listen_fd on a socket that does not listen did not throw";
  } catch (const icap::Error& e) {
    EXPECT_EQ(e.code(), ICAP_EINVAL);
  }
  ASSERT_EQ(::listen(fd, 16), 0);
  s.listen_fd(fd);  // the server owns fd now
  EXPECT_EQ(s.port(0), ntohs(a.sin_port));
}
