// SPDX-License-Identifier: MIT
// Encapsulated HTTP header blocks, parsed with llhttp (http/http_head.hpp).
#include "http/http_head.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "parse_table.hpp"

using icap::detail::HttpHead;
using icap::detail::parse_http_head;

namespace {

const std::string NUL(1, '\0');

struct Case {
  std::string name;
  bool request;
  std::string block;
  bool ok;
  // For accepted blocks: "METHOD URI VERSION" or "VERSION STATUS REASON",
  // and the header fields as "name=value|...".
  std::string start = "";
  std::string fields = "";
};

std::ostream &operator<<(std::ostream &o, const Case &c) { return o << c.name; }

std::string start_of(const HttpHead &h, bool request) {
  if (request) return h.method + " " + h.uri + " " + h.version;
  return h.version + " " + std::to_string(h.status) + " " + h.reason;
}

std::string fields_of(const HttpHead &h) {
  std::string s;
  for (const auto &f : h.headers.items()) {
    if (!s.empty()) s += '|';
    s += f.name + "=" + f.value;
  }
  return s;
}

std::vector<Case> cases() {
  return {
      {"get_absolute_form", true,
       "GET http://example.com/a?b=c HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n", true,
       "GET http://example.com/a?b=c HTTP/1.1", "Host=example.com|Accept=*/*"},
      {"get_origin_form_http10", true, "GET /x HTTP/1.0\r\n\r\n", true, "GET /x HTTP/1.0", ""},
      {"post_with_length", true,
       "POST http://h/u HTTP/1.1\r\nContent-Length: 3000\r\nHost: h\r\n\r\n", true,
       "POST http://h/u HTTP/1.1", "Content-Length=3000|Host=h"},
      {"cicap_duplicate_identical_content_length", true,
       "GET http://www.example.com/cicap/reqmod-post HTTP/1.0\r\nDate: Thu Nov 26 01:46:41 2026\r\n"
       "Last-Modified: Thu Nov 26 01:46:41 2026\r\nContent-Length: 3000\r\n"
       "Content-Length: 3000\r\nUser-Agent: C-ICAP-Client/x.xx\r\n\r\n",
       true, "GET http://www.example.com/cicap/reqmod-post HTTP/1.0",
       "Date=Thu Nov 26 01:46:41 2026|Last-Modified=Thu Nov 26 01:46:41 2026|Content-Length=3000|"
       "Content-Length=3000|User-Agent=C-ICAP-Client/x.xx"},
      {"duplicate_identical_content_length_response", false,
       "HTTP/1.1 200 OK\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n", true, "HTTP/1.1 200 OK",
       "Content-Length=5|content-length=5"},
      {"conflicting_content_length", true,
       "POST http://h/ HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", false},
      {"conflicting_content_length_response", false,
       "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 50\r\n\r\n", false},
      {"content_length_not_a_number", true, "POST / HTTP/1.1\r\nContent-Length: 5x\r\n\r\n", false},
      {"connect", true, "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", true,
       "CONNECT example.com:443 HTTP/1.1", "Host=example.com:443"},
      {"upgrade_request", true,
       "GET /chat HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", true,
       "GET /chat HTTP/1.1", "Host=h|Connection=Upgrade|Upgrade=websocket"},
      {"switching_protocols_response", false,
       "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
       true, "HTTP/1.1 101 Switching Protocols", "Connection=Upgrade|Upgrade=websocket"},
      {"response_200", false,
       "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1024\r\n\r\n", true,
       "HTTP/1.1 200 OK", "Content-Type=text/plain|Content-Length=1024"},
      {"response_reason_with_spaces", false, "HTTP/1.0 404 Not Found Here\r\n\r\n", true,
       "HTTP/1.0 404 Not Found Here", ""},
      {"response_empty_reason", false, "HTTP/1.1 204 \r\nX: y\r\n\r\n", true, "HTTP/1.1 204 ",
       "X=y"},
      {"response_chunked", false, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", true,
       "HTTP/1.1 200 OK", "Transfer-Encoding=chunked"},
      {"response_304", false, "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n", true,
       "HTTP/1.1 304 Not Modified", "ETag=\"x\""},
      {"value_ows_trimmed", true, "GET / HTTP/1.1\r\nX-A: \t a b \t\r\nX-B:c\r\n\r\n", true,
       "GET / HTTP/1.1", "X-A=a b|X-B=c"},
      {"empty_value", true, "GET / HTTP/1.1\r\nX-Empty:\r\nX-B: c\r\n\r\n", true, "GET / HTTP/1.1",
       "X-Empty=|X-B=c"},
      // rejected
      {"nul_in_value", true, "GET / HTTP/1.1\r\nX-A: a" + NUL + "b\r\n\r\n", false},
      {"nul_in_name", true, "GET / HTTP/1.1\r\nX" + NUL + "A: b\r\n\r\n", false},
      {"nul_in_uri", true, "GET /a" + NUL + "b HTTP/1.1\r\n\r\n", false},
      {"nul_in_method", true, "GE" + NUL + "T / HTTP/1.1\r\n\r\n", false},
      {"nul_in_reason", false, "HTTP/1.1 200 O" + NUL + "K\r\n\r\n", false},
      {"space_before_colon", true, "GET / HTTP/1.1\r\nHost : h\r\n\r\n", false},
      {"space_in_name", true, "GET / HTTP/1.1\r\nX A: h\r\n\r\n", false},
      {"request_as_response", false, "GET / HTTP/1.1\r\n\r\n", false},
      {"response_as_request", true, "HTTP/1.1 200 OK\r\n\r\n", false},
      {"bad_status_code", false, "HTTP/1.1 2OO OK\r\n\r\n", false},
      {"bad_version", true, "GET / HTTP/x.y\r\n\r\n", false},
      {"not_http", true, "NOT AN HTTP HEAD\r\n\r\n", false},
      {"incomplete", true, "GET / HTTP/1.1\r\nHost: h\r\n", false},
      {"empty", true, "", false},
      {"bytes_after_head", true, "GET / HTTP/1.1\r\nHost: h\r\n\r\nREQMOD", false},
      // llhttp refuses Content-Length next to Transfer-Encoding (a smuggling
      // pattern); accepting c-icap-client's duplicate Content-Length must
      // not switch that check off.
      {"te_and_cl_in_request", true,
       "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", false},
      {"cl_and_te_in_request", true,
       "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", false},
      {"cl_and_te_in_response", false,
       "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", false},
      {"two_heads", true, "GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n", false},
  };
}

class HttpHeadTable : public ::testing::TestWithParam<Case> {};

TEST_P(HttpHeadTable, Parse) {
  const Case &c = GetParam();
  HttpHead h;
  auto parse = [&](std::string &why) { return parse_http_head(c.block, c.request, 200, h, why); };
  if (!icaptest::parsed_as_expected(c.ok, parse,
                                    [&] { return start_of(h, c.request) + " / " + fields_of(h); }))
    return;
  EXPECT_TRUE(h.present);
  EXPECT_EQ(h.raw, c.block) << "the raw block is kept for echoing";
  EXPECT_EQ(start_of(h, c.request), c.start);
  EXPECT_EQ(fields_of(h), c.fields);
  if (c.request) {
    EXPECT_EQ(h.status, -1);
  }
}

INSTANTIATE_TEST_SUITE_P(Table, HttpHeadTable, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case> &i) { return i.param.name; });

// obs-fold (RFC 9112 5.2): a recipient must either reject the message or
// replace each fold with spaces. Accepting it with CR or LF left inside a
// value would let a copied header (icap_request_copy_http_head) inject lines.
TEST(HttpHead, ObsFoldRejectedOrUnfolded) {
  for (const char *fold : {"\r\n ", "\r\n\t"}) {
    HttpHead h;
    std::string why;
    std::string block =
        std::string("GET / HTTP/1.1\r\nX-A: first") + fold + "second\r\nHost: h\r\n\r\n";
    if (!parse_http_head(block, true, 200, h, why)) continue;  // rejected: fine
    ASSERT_NE(h.headers.get("X-A"), nullptr);
    const std::string &v = *h.headers.get("X-A");
    EXPECT_EQ(v.find('\r'), std::string::npos) << "CR kept inside a folded value";
    EXPECT_EQ(v.find('\n'), std::string::npos) << "LF kept inside a folded value";
    EXPECT_NE(v.find("first"), std::string::npos);
    EXPECT_NE(v.find("second"), std::string::npos) << "the folded part was lost";
    ASSERT_NE(h.headers.get("Host"), nullptr);
    EXPECT_EQ(*h.headers.get("Host"), "h");
  }
}

TEST(HttpHead, FieldCountLimit) {
  HttpHead h;
  std::string why;
  std::string b = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
  EXPECT_TRUE(parse_http_head(b, true, 3, h, why)) << why;
  EXPECT_EQ(h.headers.size(), 3u);
  EXPECT_FALSE(parse_http_head(b, true, 2, h, why));
  EXPECT_FALSE(why.empty());
}

TEST(HttpHead, ReparseClearsEarlierResult) {
  HttpHead h;
  std::string why;
  ASSERT_TRUE(parse_http_head("HTTP/1.1 404 Not Found\r\nA: 1\r\n\r\n", false, 200, h, why));
  ASSERT_TRUE(parse_http_head("GET /x HTTP/1.0\r\n\r\n", true, 200, h, why));
  EXPECT_EQ(h.status, -1);
  EXPECT_EQ(h.reason, "");
  EXPECT_EQ(h.headers.size(), 0u);
  EXPECT_EQ(h.method, "GET");
}

// Many header fields, long values: all kept, in order.
TEST(HttpHead, LargeBlock) {
  std::string b = "GET /big HTTP/1.1\r\n";
  for (int i = 0; i < 150; i++)
    b += "X-F" + std::to_string(i) + ": " + std::string(100, 'a' + i % 26) + "\r\n";
  b += "\r\n";
  HttpHead h;
  std::string why;
  ASSERT_TRUE(parse_http_head(b, true, 200, h, why)) << why;
  ASSERT_EQ(h.headers.size(), 150u);
  EXPECT_EQ(h.headers.at(149).name, "X-F149");
  EXPECT_EQ(h.headers.at(149).value, std::string(100, 'a' + 149 % 26));
}

}  // namespace
