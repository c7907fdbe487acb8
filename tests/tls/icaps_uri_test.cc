// SPDX-License-Identifier: MIT
// Squid sends the service URI it was configured with, so over TLS the
// request line says "icaps://host:port/name" (seen against icap-echo: Squid
// 5.7's OPTIONS got 400 before the engine accepted the scheme). The service
// must be found from it like from icap://.
#include <gtest/gtest.h>

#include "protocol/limits.hpp"
#include "protocol/request_head.hpp"

using namespace icap::detail;

TEST(IcapsUri, ServiceFromAnIcapsUri) {
  Limits limits;
  RequestHead h;
  HeadResult r = parse_request_head(
      "OPTIONS icaps://127.0.0.1:11344/echo?x=1 ICAP/1.0\r\nHost: 127.0.0.1\r\n\r\n", limits, h);
  EXPECT_EQ(r.status, 0) << r.reason;
  EXPECT_EQ(h.service, "echo");
  RequestHead u;
  r = parse_request_head("OPTIONS ICAPS://h/a/b ICAP/1.0\r\nHost: h\r\n\r\n", limits, u);
  EXPECT_EQ(r.status, 0) << r.reason;
  EXPECT_EQ(u.service, "a/b");
  RequestHead bad;
  r = parse_request_head("OPTIONS icapsx://h/echo ICAP/1.0\r\nHost: h\r\n\r\n", limits, bad);
  EXPECT_EQ(r.status, 400);
}
