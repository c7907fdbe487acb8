// SPDX-License-Identifier: MIT
// The "before run only" setters (icap.h): once icap_server_run() has
// started, each returns ICAP_ESTATE and changes nothing, so that worker
// threads never read a setting while it is written. icap_service_set_istag()
// is the one service setter documented to work while the server runs.
#include <gtest/gtest.h>

#include "harness.hpp"

namespace itest {
namespace {

// The value of a response header, or "" when it is absent.
template <class R>
std::string hv(const R &r, const char *name) {
  const std::string *v = r.header(name);
  return v ? *v : std::string();
}

TEST(BeforeRunOnly, SettersReturnEstateOnceTheServerRuns) {
  TestServer s;
  icap_service *svc = add_echo_service(s, "echo");
  ASSERT_NE(svc, nullptr);
  ASSERT_EQ(icap_service_set_preview(svc, 77), 0);  // allowed before run
  ASSERT_TRUE(s.start());
  // run() sets the state before it does anything else; an OPTIONS answer
  // shows that it has started.
  Client c;
  auto options = [&c] {
    return c.send_all(options_request("echo")) ? c.read_response() : Response{};
  };
  ASSERT_EQ(c.connect(s.port()), 0);
  Response before = options();
  ASSERT_TRUE(before.ok) << before.error;
  ASSERT_EQ(hv(before, "Preview"), "77");

  icap_server *srv = s.srv();
  EXPECT_EQ(icap_server_set_workers(srv, 3), ICAP_ESTATE);
  EXPECT_EQ(icap_server_set_limit(srv, ICAP_LIMIT_HEADER_COUNT, 5), ICAP_ESTATE);
  EXPECT_EQ(icap_server_get_limit(srv, ICAP_LIMIT_HEADER_COUNT), 100u);
  EXPECT_EQ(icap_server_set_server_header(srv, "other/1"), ICAP_ESTATE);
  EXPECT_EQ(icap_server_set_log(srv, ICAP_LOG_ERROR, nullptr, nullptr), ICAP_ESTATE);
  EXPECT_EQ(icap_server_listen(srv, "127.0.0.1", 0), ICAP_ESTATE);
  icap_service *other = nullptr;
  EXPECT_EQ(icap_server_add_service(srv, "other", &other), ICAP_ESTATE);
  EXPECT_EQ(other, nullptr);
  EXPECT_EQ(icap_service_set_handler(svc, ICAP_METHOD_REQMOD, nullptr, nullptr), ICAP_ESTATE);
  EXPECT_EQ(icap_service_set_preview(svc, 5), ICAP_ESTATE);
  EXPECT_EQ(icap_service_set_options_ttl(svc, 5), ICAP_ESTATE);
  EXPECT_EQ(icap_service_set_max_connections(svc, 5), ICAP_ESTATE);
  EXPECT_EQ(icap_service_set_allow(svc, 0, 1), ICAP_ESTATE);
  EXPECT_EQ(icap_service_set_transfer(svc, "a", "b", "c"), ICAP_ESTATE);
  EXPECT_EQ(icap_service_add_options_header(svc, "X-Late", "1"), ICAP_ESTATE);
  // Argument checks still come first.
  EXPECT_EQ(icap_service_set_preview(svc, -5), ICAP_EINVAL);
  EXPECT_EQ(icap_service_set_preview(nullptr, 5), ICAP_EINVAL);
  // The ISTag may change at any time.
  EXPECT_EQ(icap_service_set_istag(svc, "later-tag"), 0);

  // Nothing changed: the same OPTIONS answer (but the new ISTag), and the
  // REQMOD handler still answers.
  Response after = options();
  ASSERT_TRUE(after.ok) << after.error;
  EXPECT_EQ(hv(after, "Preview"), "77");
  EXPECT_EQ(hv(after, "Options-TTL"), hv(before, "Options-TTL"));
  EXPECT_EQ(hv(after, "Allow"), hv(before, "Allow"));
  EXPECT_EQ(hv(after, "Transfer-Preview"), hv(before, "Transfer-Preview"));
  EXPECT_EQ(hv(after, "Max-Connections"), hv(before, "Max-Connections"));
  EXPECT_EQ(hv(after, "Server"), hv(before, "Server"));
  EXPECT_FALSE((after.header("X-Late") != nullptr));
  EXPECT_EQ(hv(after, "ISTag"), "\"later-tag\"");
  Response r = round_trip(c, reqmod_get("echo", "http://origin.example/", "Allow: 204\r\n"));
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.code, 204);
  s.stop_and_join();
  // After run returned the server stays frozen: it runs once.
  EXPECT_EQ(icap_service_set_preview(svc, 5), ICAP_ESTATE);
  EXPECT_EQ(icap_server_set_workers(srv, 3), ICAP_ESTATE);
}

TEST(SectionName, NamesEverySectionAndNothingElse) {
  EXPECT_STREQ(icap_section_name(ICAP_SECTION_REQ_HDR), "req-hdr");
  EXPECT_STREQ(icap_section_name(ICAP_SECTION_RES_HDR), "res-hdr");
  EXPECT_STREQ(icap_section_name(ICAP_SECTION_REQ_BODY), "req-body");
  EXPECT_STREQ(icap_section_name(ICAP_SECTION_RES_BODY), "res-body");
  EXPECT_STREQ(icap_section_name(ICAP_SECTION_NULL_BODY), "null-body");
  EXPECT_STREQ(icap_section_name(ICAP_SECTION_OPT_BODY), "opt-body");
  EXPECT_EQ(icap_section_name(static_cast<icap_section>(6)), nullptr);
  EXPECT_EQ(icap_section_name(static_cast<icap_section>(-1)), nullptr);
}

}  // namespace
}  // namespace itest
