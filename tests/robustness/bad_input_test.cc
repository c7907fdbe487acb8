// SPDX-License-Identifier: MIT
// The bad-input table: raw bytes sent to a real server (in-process, over
// loopback) and the answer each must get - the ICAP status codes in order
// and whether the connection is then closed - as DESIGN.md and README.md
// ("Protocol behaviour") document. After every row a fresh connection must
// still get OPTIONS 200 and an echo, and every transaction a handler saw must
// have had its done callback. Rows whose right answer is blocked by a
// library bug say so (`bug`) and are skipped with "BUG: ..."; the table in
// tests/robustness/README.md lists every row.
//
// Services (robust_support.hpp): echo (no_adaptation), read (reads the
// whole body, then answers), reqonly (no RESPMOD handler).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "robust_support.hpp"

using namespace robust;

namespace {

// A string literal with its NUL bytes.
#define S(lit) std::string(lit, sizeof(lit) - 1)

struct Row {
  std::string name;
  std::string input;
  std::vector<int> codes;     // the responses expected, in order (empty: none)
  bool closed = true;         // the server closes the connection after them
  bool half_close = false;    // the client shuts down its sending side after the input
  bool truncated_ok = false;  // a response may be cut off by the close
  std::string bug;            // non-empty: the right answer is blocked by this bug
  std::string expect_body;    // non-empty: the first response's body must be this
  bool late_close = false;    // the close follows an answer that said keep-alive
                              // (the error came after the answer)
};

void PrintTo(const Row &r, std::ostream *os) { *os << r.name; }

std::string rq(const std::string &service, const std::string &extra,
               const std::vector<std::pair<std::string, std::string>> &secs,
               const std::string &kind, const std::string &body, const std::string &method = "") {
  std::string m = method;
  if (m.empty()) m = secs.size() && secs.back().first == "res-hdr" ? "RESPMOD" : "REQMOD";
  return raw_request(m, service, extra, secs, kind, body);
}

// A RESPMOD to `service` with the given raw chunked body bytes.
std::string resp_body(const std::string &service, const std::string &raw_body,
                      const std::string &extra = "") {
  return rq(service, extra, {{"res-hdr", http_res_head(5)}}, "res-body", raw_body, "RESPMOD");
}

// A REQMOD to echo whose req-hdr is the given raw block (null-body).
std::string req_head(const std::string &block, const std::string &extra = "Allow: 204\r\n") {
  return rq("echo", extra, {{"req-hdr", block}}, "null-body", "", "REQMOD");
}

// A RESPMOD to echo whose res-hdr is the given raw block (no body).
std::string res_head(const std::string &block) {
  return rq("echo", "Allow: 204\r\n", {{"res-hdr", block}}, "null-body", "", "RESPMOD");
}

std::string icap_head(const std::string &lines) {
  return "OPTIONS icap://127.0.0.1/echo ICAP/1.0\r\nHost: 127.0.0.1\r\n" + lines + "\r\n";
}

std::string many(const std::string &line, size_t n) {
  std::string o;
  o.reserve(line.size() * n);
  for (size_t i = 0; i < n; i++) o += line;
  return o;
}

std::vector<Row> rows() {
  const std::string opt = options("echo");
  const std::string hello = chunked("hello");
  const std::string hidden = "0\r\n\r\n" + opt;  // a request hidden in chunk data
  std::vector<Row> t;
  auto add = [&](Row r) { t.push_back(std::move(r)); };

  // ---- not ICAP at all, or cut short
  add({"garbage_binary", S("\x00\x01\x02\x03\xff garbage\r\n\r\n"), {400}});
  add({"garbage_text", "hello world\r\n\r\n", {400}});
  add({"tls_client_hello_then_close",
       S("\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03"),
       {},
       true,
       true});
  add({"truncated_request_line_then_close", "REQMOD icap://127.0.0.1/echo IC", {}, true, true});
  add({"truncated_head_then_close",
       "OPTIONS icap://127.0.0.1/echo ICAP/1.0\r\nHost: x\r\n",
       {},
       true,
       true});
  {
    std::string r = respmod("echo", "hello");
    add({"truncated_encapsulated_header_then_close",
         r.substr(0, r.find("HTTP/1.1 200") + 10),
         {},
         true,
         true});
  }
  add({"truncated_body_then_close", resp_body("read", "a\r\nhel"), {}, true, true});
  add({"body_shorter_than_declared_then_close",
       resp_body("read", "a\r\nhello\r\n0\r\n\r\n"),
       {},
       true,
       true});
  add({"empty_lines_then_close", "\r\n\r\n\r\n", {}, true, true});
  add({"bare_lf_head_then_close",
       "OPTIONS icap://127.0.0.1/echo ICAP/1.0\nHost: x\n\n",
       {},
       true,
       true});

  // ---- request line and version
  add({"version_icap_2_0", "OPTIONS icap://127.0.0.1/echo ICAP/2.0\r\n\r\n", {505}});
  add({"version_icap_1_1", "OPTIONS icap://127.0.0.1/echo ICAP/1.1\r\n\r\n", {505}});
  add({"version_http_1_1", "OPTIONS icap://127.0.0.1/echo HTTP/1.1\r\n\r\n", {400}});
  add({"version_lowercase", "OPTIONS icap://127.0.0.1/echo icap/1.0\r\n\r\n", {400}});
  add({"version_trailing_garbage", "OPTIONS icap://127.0.0.1/echo ICAP/1.0x\r\n\r\n", {400}});
  add({"method_unknown",
       "PURGE icap://127.0.0.1/echo ICAP/1.0\r\nEncapsulated: null-body=0\r\n\r\n",
       {501}});
  add({"method_lowercase", "options icap://127.0.0.1/echo ICAP/1.0\r\n\r\n", {501}});
  add({"service_unknown", options("nosuchservice"), {404}, false});
  add({"method_not_registered", respmod("reqonly", "hello"), {405}, false});
  add({"request_line_two_spaces", "OPTIONS  icap://127.0.0.1/echo ICAP/1.0\r\n\r\n", {400}});
  add({"request_line_no_uri", "OPTIONS ICAP/1.0\r\n\r\n", {400}});
  add({"request_line_nul_in_uri", S("OPTIONS icap://127.0.0.1/ec\0ho ICAP/1.0\r\n\r\n"), {400}});
  add({"request_line_cr_only", "OPTIONS icap://127.0.0.1/echo ICAP/1.0\rHost: x\r\r\n\r\n", {400}});
  add({"request_line_huge_uri",
       "OPTIONS icap://127.0.0.1/echo?" + std::string(20000, 'a') + " ICAP/1.0\r\n\r\n",
       {400}});

  // ---- ICAP headers
  add({"icap_header_nul_in_value", icap_head(S("X-A: a\0b\r\n")), {400}});
  add({"icap_header_ctl_in_value",
       icap_head("X-A: a\x01"
                 "b\r\n"),
       {400}});
  add({"icap_header_del_in_value",
       icap_head("X-A: a\x7f"
                 "b\r\n"),
       {400}});
  add({"icap_header_nul_in_name", icap_head(S("X-\0A: b\r\n")), {400}});
  add({"icap_header_without_colon", icap_head("NoColonHere\r\n"), {400}});
  add({"icap_header_empty_name", icap_head(": value\r\n"), {400}});
  add({"icap_header_space_before_colon", icap_head("Host : x\r\n"), {400}});
  add({"icap_header_obs_fold", icap_head("X-A: a\r\n  folded\r\n"), {400}});
  add({"icap_header_line_huge", icap_head("X-Big: " + std::string(20000, 'b') + "\r\n"), {400}});
  add({"icap_head_over_16k_in_90_headers",
       icap_head(many("X-Pad: " + std::string(200, 'p') + "\r\n", 90)),
       {400}});
  add({"icap_101_headers", icap_head(many("X: y\r\n", 101)), {400}});
  add({"icap_100000_headers", icap_head(many("X: y\r\n", 100000)), {400}});

  // ---- Encapsulated
  add({"reqmod_without_encapsulated",
       "REQMOD icap://127.0.0.1/echo ICAP/1.0\r\nHost: x\r\n\r\n" + http_req_head(),
       {400}});
  add({"respmod_without_encapsulated",
       "RESPMOD icap://127.0.0.1/echo ICAP/1.0\r\nHost: x\r\n\r\n",
       {400}});
  add({"encapsulated_twice",
       "REQMOD icap://127.0.0.1/echo ICAP/1.0\r\nEncapsulated: req-hdr=0, "
       "null-body=10\r\nEncapsulated: req-hdr=0, null-body=10\r\n\r\n0123456789",
       {400}});
  add({"encapsulated_offsets_decreasing",
       "RESPMOD icap://127.0.0.1/echo ICAP/1.0\r\nEncapsulated: req-hdr=0, res-hdr=60, "
       "res-body=30\r\n\r\n" +
           http_req_head() + http_res_head(0) + "0\r\n\r\n",
       {400}});
  add({"encapsulated_offsets_overlap",
       "REQMOD icap://127.0.0.1/echo ICAP/1.0\r\nEncapsulated: req-hdr=0, "
       "null-body=0\r\n\r\n" +
           http_req_head(),
       {400}});
  add({"encapsulated_not_starting_at_0",
       "REQMOD icap://127.0.0.1/echo ICAP/1.0\r\nEncapsulated: req-hdr=5, "
       "null-body=40\r\n\r\n" +
           http_req_head(),
       {400}});
  add({"encapsulated_unknown_entity",
       "REQMOD icap://127.0.0.1/echo ICAP/1.0\r\nEncapsulated: foo-hdr=0, "
       "null-body=10\r\n\r\n0123456789",
       {400}});
  add({"encapsulated_body_not_last",
       "REQMOD icap://127.0.0.1/echo ICAP/1.0\r\nEncapsulated: req-body=0, "
       "req-hdr=5\r\n\r\n",
       {400}});
  add({"encapsulated_no_body_entity",
       "REQMOD icap://127.0.0.1/echo ICAP/1.0\r\nEncapsulated: "
       "req-hdr=0\r\n\r\n" +
           http_req_head(),
       {400}});
  add({"encapsulated_wrong_for_method",
       rq("echo", "", {{"res-hdr", http_res_head(0)}}, "null-body", "", "REQMOD"),
       {400}});
  add({"encapsulated_offset_not_a_number",
       "REQMOD icap://127.0.0.1/echo ICAP/1.0\r\nEncapsulated: "
       "req-hdr=0, null-body=abc\r\n\r\n",
       {400}});
  add({"encapsulated_offset_huge",
       "REQMOD icap://127.0.0.1/echo ICAP/1.0\r\nEncapsulated: req-hdr=0, "
       "null-body=999999999999\r\n\r\n" +
           http_req_head(),
       {400}});
  {
    std::string h = http_req_head();
    add({"encapsulated_offset_cuts_http_head",
         "REQMOD icap://127.0.0.1/echo ICAP/1.0\r\nEncapsulated: req-hdr=0, null-body=" +
             std::to_string(h.size() - 10) + "\r\n\r\n" + h,
         {400}});
    add({"encapsulated_offset_past_http_head",
         "RESPMOD icap://127.0.0.1/read ICAP/1.0\r\nEncapsulated: res-hdr=0, res-body=" +
             std::to_string(http_res_head(5).size() + 5) + "\r\n\r\n" + http_res_head(5) + hello,
         {400}});
  }

  // ---- chunked body (the read service answers only at the end, so a
  // malformed body gets 400; the echo service has answered already, so the
  // connection is just closed)
  add({"chunk_size_not_hex", resp_body("read", "zz\r\nhello\r\n0\r\n\r\n"), {400}});
  add({"chunk_size_overflow_20_f",
       resp_body("read", "ffffffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
       {400}});
  add({"chunk_size_over_limit_16MiB", resp_body("read", "1000001\r\nhello\r\n"), {400}});
  add({"chunk_size_negative", resp_body("read", "-5\r\nhello\r\n0\r\n\r\n"), {400}});
  add({"chunk_size_0x_prefix", resp_body("read", "0x5\r\nhello\r\n0\r\n\r\n"), {400}});
  add({"chunk_size_leading_space", resp_body("read", " 5\r\nhello\r\n0\r\n\r\n"), {400}});
  add({"chunk_size_line_bare_lf", resp_body("read", "5\nhello\r\n0\r\n\r\n"), {400}});
  add({"chunk_missing_crlf_after_data", resp_body("read", "5\r\nhello0\r\n\r\n"), {400}});
  add({"body_longer_than_declared", resp_body("read", "5\r\nhelloEXTRA\r\n0\r\n\r\n"), {400}});
  add({"body_longer_than_declared_echo_started",
       resp_body("echo", "5\r\nhelloEXTRA\r\n0\r\n\r\n"),
       {},
       true,
       false,
       true});
  add({"chunk_extension_garbage", resp_body("read", "5 xyz\r\nhello\r\n0\r\n\r\n"), {400}});
  add({"chunk_extension_unterminated_quote",
       resp_body("read", "5;a=\"x\r\nhello\r\n0\r\n\r\n"),
       {400}});
  add({"chunk_extension_ctl_in_quoted_value",
       resp_body("read", "5;a=\"x\ry\"\r\nhello\r\n0\r\n\r\n"),
       {400},
       true,
       false,
       false,
       "chunk-ext-ctl"});
  add({"chunk_trailer_not_a_field",
       resp_body("read", hello.substr(0, hello.size() - 2) + "garbage\r\n\r\n"),
       {400}});
  add({"chunk_trailer_swallows_request",
       resp_body("read", "5\r\nhello\r\n0\r\n") + opt,
       {400},
       true,
       false,
       false,
       "chunk-trailer-lenient"});

  // ---- encapsulated HTTP headers
  add({"http_header_nul", req_head(S("GET / HTTP/1.1\r\nHost: a\0b\r\n\r\n")), {400}});
  add({"http_header_ctl_in_value",
       req_head("GET / HTTP/1.1\r\nHost: a\x01"
                "b\r\n\r\n"),
       {400}});
  add({"http_header_obs_fold",
       req_head("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n  folded\r\n\r\n"),
       {400},
       true,
       false,
       false,
       "http-head-obs-fold"});
  add({"http_header_space_before_colon", req_head("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), {400}});
  add({"http_header_empty_name",
       req_head("GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n"),
       {400},
       true,
       false,
       false,
       "http-head-empty-name"});
  add({"http_head_ends_cr_x",
       req_head("GET / HTTP/1.1\r\nHost: a\r\n\rX"),
       {400},
       true,
       false,
       false,
       "http-head-cr"});
  add({"http_status_line_bare_cr",
       res_head("HTTP/1.1 200\r0\r\n"),
       {400},
       true,
       false,
       false,
       "http-head-cr"});
  add({"http_request_line_http09",
       req_head("GET /\r\nHost: a\r\n\r\n"),
       {400},
       true,
       false,
       false,
       "http-head-start-line"});
  add({"http_request_target_with_tab",
       req_head("GET http://a/x\ty HTTP/1.1\r\nHost: a\r\n\r\n"),
       {400},
       true,
       false,
       false,
       "http-head-start-line"});
  add({"http_status_000",
       res_head("HTTP/1.1 000 OK\r\n\r\n"),
       {400},
       true,
       false,
       false,
       "http-head-start-line"});
  add({"http_request_line_garbage", req_head("NOT A REQUEST LINE AT ALL\r\n\r\n"), {400}});
  add({"http_content_length_conflict",
       req_head("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"),
       {400}});
  add({"http_content_length_duplicate_same",
       req_head("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"),
       {204},
       false});
  add({"http_content_length_and_transfer_encoding",
       req_head(
           "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"),
       {400}});
  add({"http_empty_transfer_encoding_and_content_length",
       req_head("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \r\nContent-Length: 5\r\n\r\n"),
       {400},
       true,
       false,
       false,
       "http-head-te-cl"});
  add({"http_reason_with_nul", res_head(S("HTTP/1.1 200 O\0K\r\n\r\n")), {400}});
  add({"http_201_headers", req_head("GET / HTTP/1.1\r\n" + many("X: y\r\n", 201) + "\r\n"), {400}});
  add({"http_100000_headers",
       req_head("GET / HTTP/1.1\r\n" + many("X: y\r\n", 100000) + "\r\n"),
       {400}});
  add({"http_header_line_70k",
       req_head("GET / HTTP/1.1\r\nX: " + std::string(70000, 'x') + "\r\n\r\n"),
       {400}});

  // ---- preview
  add({"preview_longer_than_announced", resp_body("read", hello, "Preview: 3\r\n"), {400}});
  {
    // The 204 is queued before the error is seen; it must still be written
    // (then the connection closes).
    Row r{"preview_longer_than_announced_after_204",
          resp_body("echo", hello, "Preview: 3\r\n"),
          {204}};
    r.late_close = true;
    r.bug = "dead-drops-queued-answers";
    add(r);
  }
  add({"preview_over_limit", resp_body("read", hello, "Preview: 100000\r\n"), {400}});
  add({"preview_not_a_number", resp_body("read", hello, "Preview: abc\r\n"), {400}});
  add({"preview_negative", resp_body("read", hello, "Preview: -1\r\n"), {400}});
  add({"preview_with_plus_sign", resp_body("read", hello, "Preview: +5\r\n"), {400}});
  add({"preview_twice", resp_body("read", hello, "Preview: 5\r\nPreview: 5\r\n"), {400}});
  add({"data_after_ieof",
       resp_body("echo", chunked("hello", 0, "0; ieof") + "5\r\nextra\r\n0\r\n\r\n",
                 "Preview: 5\r\n"),
       {204, 400}});

  // ---- smuggling between pipelined requests
  {
    Row r{"smuggle_request_hidden_in_chunk_data",
          resp_body("echo", chunked(hidden)) + opt,
          {200, 200},
          false};
    r.expect_body = hidden;
    add(r);
  }
  add({"smuggle_chunk_size_too_small", resp_body("read", "3\r\nhello\r\n0\r\n\r\n") + opt, {400}});
  add({"smuggle_after_bad_request", "BAD\r\n\r\n" + opt, {400}});
  {
    // A valid request, then one whose body turns bad after its answer
    // started: the first answer is complete and must reach the client.
    Row r{"pipelined_valid_then_bad_body_after_answer",
          opt + resp_body("echo", "5\r\nhelloEXTRA\r\n0\r\n\r\n"),
          {200}};
    r.late_close = true;
    r.truncated_ok = true;
    r.bug = "dead-drops-queued-answers";
    add(r);
  }
  add({"smuggle_request_in_encapsulated_header", req_head(http_req_head() + opt), {400}});
  add({"smuggle_via_http_content_length",
       req_head("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 40\r\n\r\n") + opt,
       {204, 200},
       false});

  // ---- legal but unusual: the connection stays usable
  add({"connection_close_from_client", options("echo", "Connection: close\r\n"), {200}});
  add({"pipelined_100_options", many(opt, 100), std::vector<int>(100, 200), false});
  add({"options_with_opt_body",
       "OPTIONS icap://127.0.0.1/echo ICAP/1.0\r\nEncapsulated: opt-body=0\r\n\r\n" + hello,
       {200},
       false});
  add({"preview_0_null_body",
       rq("echo", "Preview: 0\r\n", {{"req-hdr", http_req_head()}}, "null-body", "", "REQMOD"),
       {204},
       false});
  add({"ieof_without_preview", resp_body("echo", chunked("hello", 0, "0; ieof")), {200}, false});
  return t;
}

// Runs one row against `port`; failures are reported through gtest.
void run_row(const Row &row, int port) {
  SCOPED_TRACE("row " + row.name);
  Conn c(port);
  ASSERT_TRUE(c.ok());
  // The server may answer and close before all of a large input is sent.
  bool sent = c.send(row.input, ms(15000));
  if (!sent) {
    ASSERT_TRUE(row.closed) << "could not send the input";
  }
  if (row.half_close) c.shutdown_write();

  std::vector<icapwire::Response> got;
  for (size_t i = 0; i < row.codes.size(); i++) {
    icapwire::Response r;
    std::string why;
    Conn::Got g = c.read(r, ms(5000), &why);
    ASSERT_EQ(g, Conn::Got::kResponse)
        << "response #" << i << ": " << why << "; pending: " << c.pending().substr(0, 300);
    EXPECT_EQ(r.code, row.codes[i]) << "response #" << i << ": " << r.status_line;
    got.push_back(r);
  }
  if (!row.expect_body.empty()) {
    ASSERT_FALSE(got.empty());
    EXPECT_EQ(got[0].body, row.expect_body);
  }
  if (row.closed) {
    EXPECT_TRUE(c.wait_closed(ms(5000))) << "the connection stays open";
    if (!row.truncated_ok) {
      EXPECT_EQ(c.pending(), "") << "bytes after the expected answers";
    }
    if (!got.empty() && !row.half_close && !row.late_close) {
      EXPECT_TRUE(got.back().conn_close()) << "the answer before the close lacks Connection: close";
    }
  } else {
    for (size_t i = 0; i < got.size(); i++) {
      EXPECT_FALSE(got[i].conn_close()) << "response #" << i << " closes the connection";
    }
    // Still usable: the next request gets the OPTIONS answer (not a late
    // answer to something smuggled).
    ASSERT_TRUE(c.send(options("echo")));
    icapwire::Response r;
    std::string why;
    ASSERT_EQ(c.read(r, ms(5000), &why), Conn::Got::kResponse) << why;
    EXPECT_EQ(r.code, 200);
    EXPECT_NE(r.header("Methods"), nullptr) << "not the OPTIONS answer: " << r.status_line;
  }
  EXPECT_EQ(server_healthy(port), "");
}

// Two worker loops. A short drain timeout, so that a connection a row left
// lingering (the server drops input for up to 2 s after its last answer)
// does not make every stop wait.
ServerOptions table_server() { return with_limits({{ICAP_LIMIT_DRAIN_TIMEOUT_MS, 300}}, 2); }

class BadInput : public ::testing::TestWithParam<Row> {};

TEST_P(BadInput, Answer) {
  const Row &row = GetParam();
  if (!row.bug.empty() && !run_known_bugs())
    GTEST_SKIP() << "BUG: " << row.bug << " (see tests/robustness/README.md)";
  Server s(table_server());
  ASSERT_TRUE(s.start());
  run_row(row, s.port());
  ASSERT_GE(s.stop().count(), 0) << "the server did not stop";
  EXPECT_EQ(s.stats().dispatched.load(), s.stats().done.load())
      << "a transaction never got its done callback\n"
      << s.logs();
}

INSTANTIATE_TEST_SUITE_P(Table, BadInput, ::testing::ValuesIn(rows()),
                         [](const ::testing::TestParamInfo<Row> &i) { return i.param.name; });

// Every row, one after the other, against one server: bad input leaves no
// trace that a later request could trip on.
TEST(BadInputTable, AllRowsOneServer) {
  Server s(table_server());
  ASSERT_TRUE(s.start());
  size_t n = 0;
  for (const Row &row : rows()) {
    if (!row.bug.empty()) continue;
    run_row(row, s.port());
    n++;
  }
  EXPECT_GE(n, 40u);
  ASSERT_GE(s.stop().count(), 0);
  EXPECT_EQ(s.stats().dispatched.load(), s.stats().done.load());
}

TEST(BadInputTable, HasAtLeast40Rows) { EXPECT_GE(rows().size(), 40u); }

// Prints the table as Markdown for README.md:
//   icap_robustness_tests --gtest_also_run_disabled_tests
//     --gtest_filter='*PrintMarkdown*'
TEST(BadInputTable, DISABLED_PrintMarkdown) {
  // The first line and the last bytes (where the body or the odd header
  // usually is), escaped.
  auto esc = [](const std::string &in) {
    std::string o;
    for (size_t i = 0; i < in.size(); i++) {
      unsigned char c = static_cast<unsigned char>(in[i]);
      if (c == '\r')
        o += "\\r";
      else if (c == '\n')
        o += "\\n";
      else if (c == '|')
        o += "\\|";
      else if (c == '`')
        o += "'";
      else if (c < 0x20 || c >= 0x7f) {
        char b[8];
        snprintf(b, sizeof b, "\\x%02x", c);
        o += b;
      } else {
        o += static_cast<char>(c);
      }
    }
    return o;
  };
  auto show = [&](const std::string &in) {
    size_t eol = in.find("\r\n");
    size_t head = std::min<size_t>(eol == std::string::npos ? in.size() : eol + 2, 48);
    std::string o = esc(in.substr(0, head));
    if (in.size() > head) {
      size_t tail = std::min<size_t>(in.size() - head, 48);
      o += (in.size() - head > tail ? " ... " : "") + esc(in.substr(in.size() - tail));
    }
    return o + " (" + std::to_string(in.size()) + " B)";
  };
  printf("| # | row | input (start) | answer |\n|---|---|---|---|\n");
  int n = 0;
  for (const Row &r : rows()) {
    std::string ans;
    for (size_t i = 0; i < r.codes.size();) {
      size_t j = i;
      while (j < r.codes.size() && r.codes[j] == r.codes[i]) j++;
      if (!ans.empty()) ans += ", ";
      ans += std::to_string(r.codes[i]);
      if (j - i > 1) ans += " x" + std::to_string(j - i);
      i = j;
    }
    if (ans.empty()) ans = "no answer";
    if (r.truncated_ok) ans += " (a started answer may be cut off)";
    ans += r.closed ? ", then close" : ", connection stays usable";
    if (r.half_close) ans = "client half-closes: " + ans;
    if (!r.bug.empty()) ans += " **(BUG " + r.bug + ": skipped)**";
    printf("| %d | `%s` | `%s` | %s |\n", ++n, r.name.c_str(), show(r.input).c_str(), ans.c_str());
  }
}

}  // namespace
