// SPDX-License-Identifier: MIT
// The response writer on its own: the head every response starts with, the
// Encapsulated offsets it computes, and the chunk framing, byte for byte,
// with the fixed clock a host gives it.
#include "protocol/response_writer.hpp"

#include <gtest/gtest.h>

#include <string>

using icap::detail::HeaderList;
using icap::detail::HttpKind;
using icap::detail::ResponseWriter;
using icap::detail::StatusFields;

namespace {

std::string take(ResponseWriter &w) {
  std::string s;
  for (auto &seg : w.queue().segments()) {
    s.append(seg.data(), seg.size());
    seg.release_now();
  }
  w.queue().segments().clear();
  w.queue().taken();
  return s;
}

StatusFields fields(bool close) {
  StatusFields sf;
  sf.istag = "tag1";
  sf.now = 1764121555;  // Wed, 26 Nov 2025 01:45:55 GMT
  sf.server = "libicap-test";
  sf.close = close;
  return sf;
}

}  // namespace

TEST(ResponseWriter, HeadWithHttpHeadAndBody) {
  ResponseWriter w;
  HeaderList f;
  f.add("X-Infected", "no");
  const std::string http = "HTTP/1.1 200 OK\r\nA: b\r\n\r\n";
  w.head(200, fields(false), f, HttpKind::kResponse, http, true);
  size_t queued = w.unwritten();
  std::string got = take(w);
  EXPECT_EQ(queued, got.size());  // counted until written()
  EXPECT_EQ(got,
            "ICAP/1.0 200 OK\r\nISTag: \"tag1\"\r\nDate: Wed, 26 Nov 2025 01:45:55 GMT\r\n"
            "Server: libicap-test\r\nConnection: keep-alive\r\nX-Infected: no\r\n"
            "Encapsulated: res-hdr=0, res-body=" +
                std::to_string(http.size()) + "\r\n\r\n" + http);
}

TEST(ResponseWriter, BodilessAnswerIsNullBodyZero) {
  ResponseWriter w;
  StatusFields sf = fields(true);
  sf.istag = {};  // the caller's own fields carry it
  w.head(404, sf, HeaderList(), HttpKind::kRequest, {}, false);
  EXPECT_EQ(take(w),
            "ICAP/1.0 404 ICAP Service Not Found\r\nDate: Wed, 26 Nov 2025 01:45:55 GMT\r\n"
            "Server: libicap-test\r\nConnection: close\r\nEncapsulated: null-body=0\r\n\r\n");
}

TEST(ResponseWriter, BodyWithoutHttpHeadStartsAtZero) {
  ResponseWriter w;
  w.head(200, fields(false), HeaderList(), HttpKind::kRequest, {}, true);
  std::string s = take(w);
  EXPECT_NE(s.find("\r\nEncapsulated: req-body=0\r\n\r\n"), std::string::npos) << s;
}

TEST(ResponseWriter, ChunkFraming) {
  ResponseWriter w;
  w.chunk(std::string(26, 'x'));
  w.chunk("");  // nothing: an empty chunk would end the body
  static const char zc[] = "abc";
  int released = 0;
  w.chunk_zc(
      zc, 3, [](const char *, size_t, void *u) { ++*static_cast<int *>(u); }, &released);
  w.last_chunk_use_original(1234);
  const std::string want =
      "1a\r\n" + std::string(26, 'x') + "\r\n3\r\nabc\r\n0; use-original-body=1234\r\n\r\n";
  EXPECT_EQ(w.unwritten(), want.size());
  EXPECT_EQ(take(w), want);
  EXPECT_EQ(released, 1);
  w.written(w.unwritten());
  EXPECT_EQ(w.unwritten(), 0u);
  w.continue_100();
  w.last_chunk();
  EXPECT_EQ(take(w), "ICAP/1.0 100 Continue\r\n\r\n0\r\n\r\n");
}

TEST(ResponseWriter, HttpHeadBytes) {
  HeaderList f;
  f.add("Host", "a.example");
  EXPECT_EQ(ResponseWriter::http_head_bytes("GET / HTTP/1.1", f),
            "GET / HTTP/1.1\r\nHost: a.example\r\n\r\n");
}
