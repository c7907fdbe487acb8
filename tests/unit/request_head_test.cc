// SPDX-License-Identifier: MIT
// The ICAP request line and header fields (protocol/request_head.hpp).
#include "protocol/request_head.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

using icap::detail::HeadResult;
using icap::detail::Limits;
using icap::detail::parse_request_head;
using icap::detail::RequestHead;

namespace {

struct Case {
  std::string name;
  std::string block;
  int status;  // 0 = accepted
  std::string method = "";
  std::string service = "";
  std::string uri = "";
  int nheaders = -1;
};

std::ostream &operator<<(std::ostream &o, const Case &c) { return o << c.name; }

const std::string kTail = "Host: icap.example.net\r\nEncapsulated: null-body=0\r\n\r\n";

std::string line(const std::string &l) { return l + "\r\n" + kTail; }

// A REQMOD head whose header fields (and what follows them) are `f`.
std::string fields(const std::string &f) { return "REQMOD icap://h/e ICAP/1.0\r\n" + f; }

std::vector<Case> cases() {
  return {
      // accepted
      {"reqmod_with_port", line("REQMOD icap://icap.example.net:1344/echo ICAP/1.0"), 0, "REQMOD",
       "echo", "icap://icap.example.net:1344/echo", 2},
      {"respmod", line("RESPMOD icap://h/echo ICAP/1.0"), 0, "RESPMOD", "echo"},
      {"options_no_port_cicap", line("OPTIONS icap://127.0.0.1/echo ICAP/1.0"), 0, "OPTIONS",
       "echo"},
      {"query_not_in_service", line("REQMOD icap://h:1344/av?mode=fast&x=1 ICAP/1.0"), 0, "REQMOD",
       "av"},
      {"fragment_not_in_service", line("REQMOD icap://h/av#frag ICAP/1.0"), 0, "REQMOD", "av"},
      {"service_with_slash", line("REQMOD icap://h/filters/av ICAP/1.0"), 0, "REQMOD",
       "filters/av"},
      {"origin_form", line("REQMOD /echo ICAP/1.0"), 0, "REQMOD", "echo"},
      {"no_path", line("OPTIONS icap://h ICAP/1.0"), 0, "OPTIONS", ""},
      {"root_path", line("OPTIONS icap://h:1344/ ICAP/1.0"), 0, "OPTIONS", ""},
      {"uppercase_scheme", line("REQMOD ICAP://H/echo ICAP/1.0"), 0, "REQMOD", "echo"},
      {"ipv6_authority", line("REQMOD icap://[::1]:1344/echo ICAP/1.0"), 0, "REQMOD", "echo"},
      {"no_headers", "OPTIONS icap://h/echo ICAP/1.0\r\n\r\n", 0, "OPTIONS", "echo", "", 0},
      // request line
      {"two_spaces", line("REQMOD  icap://h/echo ICAP/1.0"), 400},
      {"leading_space", line(" REQMOD icap://h/echo ICAP/1.0"), 400},
      {"trailing_space", line("REQMOD icap://h/echo ICAP/1.0 "), 400},
      {"tab_separator", line("REQMOD\ticap://h/echo ICAP/1.0"), 400},
      {"missing_version", line("REQMOD icap://h/echo"), 400},
      {"only_method", line("REQMOD"), 400},
      {"empty_line_first", "\r\n" + kTail, 400},
      {"control_char_in_uri", line("REQMOD icap://h/ec\x01ho ICAP/1.0"), 400},
      {"del_in_uri", line("REQMOD icap://h/ec\x7fho ICAP/1.0"), 400},
      {"bad_char_in_method", line("RE@MOD icap://h/echo ICAP/1.0"), 400},
      {"no_authority", line("REQMOD icap:///echo ICAP/1.0"), 400},
      {"relative_uri", line("REQMOD echo ICAP/1.0"), 400},
      {"http_scheme", line("REQMOD http://h/echo ICAP/1.0"), 400},
      // version
      {"version_11", line("REQMOD icap://h/echo ICAP/1.1"), 505},
      {"version_20", line("REQMOD icap://h/echo ICAP/2.0"), 505},
      {"version_09", line("REQMOD icap://h/echo ICAP/0.9"), 505},
      {"version_lowercase", line("REQMOD icap://h/echo icap/1.0"), 400},
      {"version_garbage_suffix", line("REQMOD icap://h/echo ICAP/1.0x"), 400},
      {"version_two_digits", line("REQMOD icap://h/echo ICAP/10"), 400},
      {"version_505_before_501", line("FOO icap://h/echo ICAP/2.0"), 505},
      // method
      {"unknown_method", line("FOO icap://h/echo ICAP/1.0"), 501},
      {"lowercase_method", line("reqmod icap://h/echo ICAP/1.0"), 501},
      {"http_method", line("GET icap://h/echo ICAP/1.0"), 501},
      {"unknown_method_with_bad_header", "FOO icap://h/echo ICAP/1.0\r\nBad Header: x\r\n\r\n",
       400},
      // header fields
      {"header_without_colon", fields("Host icap\r\n\r\n"), 400},
      {"header_empty_name", fields(": value\r\n\r\n"), 400},
      {"space_in_name", fields("X A: b\r\n\r\n"), 400},
      {"space_before_colon", fields("Host : h\r\n\r\n"), 400},
      {"obs_fold", fields("X-A: a\r\n b\r\n\r\n"), 400},
      {"obs_fold_tab", fields("X-A: a\r\n\tb\r\n\r\n"), 400},
      {"nul_in_value", fields("X-A: a") + std::string(1, '\0') + "b\r\n\r\n", 400},
      {"nul_in_name", fields("X") + std::string(1, '\0') + "A: b\r\n\r\n", 400},
      {"bare_cr_in_value", fields("X-A: a\rb\r\n\r\n"), 400},
      {"del_in_value", fields("X-A: a\x7f\r\n\r\n"), 400},
      {"bare_lf_in_head", fields("X-A: a\nX-B: b\r\n\r\n"), 400},
      {"no_final_empty_line", fields("Host: h\r\n"), 400},
      {"no_crlf_at_all", "REQMOD icap://h/e ICAP/1.0", 400},
  };
}

class RequestHeadTable : public ::testing::TestWithParam<Case> {};

TEST_P(RequestHeadTable, Parse) {
  const Case &c = GetParam();
  Limits lim;
  RequestHead h;
  HeadResult r = parse_request_head(c.block, lim, h);
  EXPECT_EQ(r.status, c.status) << r.reason;
  if (r.status) {
    EXPECT_FALSE(r.reason.empty());
    return;
  }
  EXPECT_EQ(h.method_name, c.method);
  EXPECT_TRUE(h.method_known);
  EXPECT_EQ(h.service, c.service);
  EXPECT_EQ(h.version, "ICAP/1.0");
  if (!c.uri.empty()) {
    EXPECT_EQ(h.uri, c.uri);
  }
  if (c.nheaders >= 0) {
    EXPECT_EQ(static_cast<int>(h.headers.size()), c.nheaders);
  }
}

INSTANTIATE_TEST_SUITE_P(Table, RequestHeadTable, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case> &i) { return i.param.name; });

TEST(RequestHead, MethodsMapToEnum) {
  Limits lim;
  for (auto [name, m] :
       {std::pair{"OPTIONS", ICAP_METHOD_OPTIONS}, std::pair{"REQMOD", ICAP_METHOD_REQMOD},
        std::pair{"RESPMOD", ICAP_METHOD_RESPMOD}}) {
    RequestHead h;
    ASSERT_EQ(parse_request_head(line(std::string(name) + " icap://h/s ICAP/1.0"), lim, h).status,
              0);
    EXPECT_EQ(h.method, m) << name;
  }
}

TEST(RequestHead, HeadersKeepOrderCaseAndRepeats) {
  Limits lim;
  RequestHead h;
  std::string b =
      "RESPMOD icap://127.0.0.1/echo ICAP/1.0\r\n"
      "Host: 127.0.0.1\r\n"
      "Allow: 204, 206\r\n"
      "X-Empty:\r\n"
      "X-Spaces: \t  inner  value \t \r\n"
      "Allow: 206\r\n"
      "X-Obs-Text: caf\xc3\xa9\r\n"
      "x-lower:v\r\n"
      "Encapsulated: res-hdr=0, res-body=115\r\n"
      "\r\n";
  ASSERT_EQ(parse_request_head(b, lim, h).status, 0);
  ASSERT_EQ(h.headers.size(), 8u);
  EXPECT_EQ(h.headers.count_of("allow"), 2u);
  ASSERT_NE(h.headers.get("ALLOW", 0), nullptr);
  EXPECT_EQ(*h.headers.get("ALLOW", 0), "204, 206");
  EXPECT_EQ(*h.headers.get("allow", 1), "206");
  EXPECT_EQ(h.headers.get("allow", 2), nullptr);
  EXPECT_EQ(*h.headers.get("x-empty"), "");
  EXPECT_EQ(*h.headers.get("X-SPACES"), "inner  value");
  EXPECT_EQ(*h.headers.get("x-obs-text"), "caf\xc3\xa9");
  EXPECT_EQ(*h.headers.get("X-Lower"), "v");
  EXPECT_EQ(h.headers.at(0).name, "Host");
  EXPECT_EQ(h.headers.at(5).name, "X-Obs-Text");
  EXPECT_EQ(h.headers.at(6).name, "x-lower") << "names keep their spelling";
  std::vector<std::string> allow;
  icap::detail::for_each_list_item(h.headers, "Allow",
                                   [&](std::string_view t) { allow.emplace_back(t); });
  EXPECT_EQ(allow, (std::vector<std::string>{"204", "206", "206"}));
}

TEST(RequestHead, HeaderCountLimit) {
  Limits lim;
  lim.v[ICAP_LIMIT_HEADER_COUNT] = 3;
  RequestHead ok, bad;
  EXPECT_EQ(
      parse_request_head("OPTIONS icap://h/s ICAP/1.0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", lim, ok)
          .status,
      0);
  EXPECT_EQ(parse_request_head(
                "OPTIONS icap://h/s ICAP/1.0\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", lim, bad)
                .status,
            400);
}

// Something that is not ICAP at all (an HTTP client on the ICAP port) gets a
// clear error; 400 or 505 are both honest answers.
TEST(RequestHead, HttpVersionIsRefused) {
  Limits lim;
  RequestHead h;
  int st = parse_request_head(line("REQMOD icap://h/echo HTTP/1.1"), lim, h).status;
  EXPECT_TRUE(st == 400 || st == 505) << st;
}

TEST(RequestHead, TcharTable) {
  std::string ok = "!#$%&'*+-.^_`|~09azAZ";
  for (char c : ok) EXPECT_TRUE(icap::detail::is_tchar(static_cast<unsigned char>(c))) << c;
  static const char kBad[] = "\"(),/:;<=>?@[\\]{} \t\x7f\x80\xff";
  std::string bad = std::string(kBad, sizeof kBad - 1) + std::string(1, '\0');
  for (char c : bad) EXPECT_FALSE(icap::detail::is_tchar(static_cast<unsigned char>(c))) << int(c);
}

}  // namespace
