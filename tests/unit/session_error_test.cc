// SPDX-License-Identifier: MIT
// Protocol errors are sticky data: the session keeps the first one with the
// status it calls for, the reason and the byte of the connection's input
// where it was found, and the log line says what was actually done (a 400,
// or only a close once a response had started).
#include <gtest/gtest.h>

#include <string>

#include "engine_run.hpp"

using namespace icaptest;

namespace {

// A RESPMOD whose body has one good chunk, then a chunk-size line that is
// not hexadecimal. Returns the request and, in *bad_at, the offset of the
// byte where the decoder stops: the LF that ends the bad line.
std::string bad_chunk_request(const std::string &svc, size_t *bad_at) {
  std::string good = chunk("hello");
  Msg m = respmod(svc, "", kReqGet, res_200(5), true, good + "zz\r\n");
  std::string s = m.str();
  *bad_at = s.size();  // after the LF: "zz" is rejected once its line is whole
  return s;
}

const std::string *log_with(const EngineDriver &h, const std::string &needle) {
  for (const std::string &l : h.logs)
    if (l.find(needle) != std::string::npos) return &l;
  return nullptr;
}

}  // namespace

TEST(SessionError, BadChunkBeforeAnyAnswerIs400WithItsOffset) {
  EngineRun run({}, false);
  size_t at = 0;
  std::string in = bad_chunk_request("upper", &at);  // reads the whole body first
  run.feed(in, {});
  const icap::detail::ProtocolError &e = run.s().error();
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.reason, "bad chunked body: bad chunk size");
  EXPECT_EQ(e.offset, at);
  EXPECT_TRUE(e.answered);
  EXPECT_NE(run.out().find("ICAP/1.0 400 "), std::string::npos) << run.out();
  const std::string want =
      "ICAP 400 to 192.0.2.1: bad chunked body: bad chunk size at byte " + std::to_string(at);
  EXPECT_NE(log_with(*run.d, want), nullptr) << ::testing::PrintToString(run.d->logs);
}

TEST(SessionError, BadChunkAfterTheEchoStartedOnlyCloses) {
  EngineRun run({}, false);
  size_t at = 0;
  std::string in = bad_chunk_request("echo", &at);  // answers 200 before the body
  run.feed(in, {});
  const icap::detail::ProtocolError &e = run.s().error();
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.offset, at);
  EXPECT_FALSE(e.answered);
  EXPECT_EQ(run.out().find("ICAP/1.0 400 "), std::string::npos) << run.out();
  EXPECT_TRUE(run.s().closing());
  EXPECT_EQ(log_with(*run.d, "ICAP 400"), nullptr) << ::testing::PrintToString(run.d->logs);
  EXPECT_NE(log_with(*run.d,
                     "closing the connection to 192.0.2.1: bad chunked body: bad chunk size at "
                     "byte " +
                         std::to_string(at) + ", after the response started"),
            nullptr)
      << ::testing::PrintToString(run.d->logs);
}

TEST(SessionError, OffsetCountsEarlierPipelinedRequests) {
  EngineRun run({}, false);
  Msg first = reqmod("echo", "", kReqGet, false);
  size_t at = 0;
  std::string bad = bad_chunk_request("upper", &at);
  std::string in = first.str() + bad;
  // Fed byte by byte, so the offset has to survive every buffer compaction.
  std::vector<size_t> cuts;
  for (size_t i = 1; i < in.size(); i++) cuts.push_back(i);
  run.feed(in, cuts);
  EXPECT_EQ(run.s().error().offset, first.str().size() + at);
  EXPECT_EQ(run.s().error().status, 400);
}

TEST(SessionError, FirstErrorSticks) {
  EngineRun run({}, false);
  Msg m = reqmod("echo", "", kReqGet, false);
  m.version = "ICAP/2.0";
  run.feed(m.str() + m.str(), {});
  EXPECT_EQ(run.s().error().status, 505);
  EXPECT_EQ(run.s().error().offset, 0u);
  EXPECT_EQ(run.s().error().reason, "unsupported ICAP version");
}
