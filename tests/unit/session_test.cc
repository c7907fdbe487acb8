// SPDX-License-Identifier: MIT
// The protocol engine, data-driven (STYLE rule 25): raw ICAP request bytes
// in, a handler behaviour (chosen by the service name, see
// engine_services.hpp), and the expected responses, session state and
// handler trace. Every case is fed whole, split in two at every byte
// position (a bounded set of positions for big inputs) and one byte at a
// time, and every way of feeding must give the same result.
#include <gtest/gtest.h>

#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "engine_run.hpp"

using namespace icaptest;

namespace {

// One expected response.
struct Exp {
  int status = 0;
  std::string conn;  // Connection value; "" = not checked
  std::string enc;   // exact Encapsulated value (final responses)
  std::string req_hdr, res_hdr;
  std::optional<std::string> body;                        // nullopt: no body entity
  std::string ext;                                        // extension of the last chunk
  std::vector<std::pair<std::string, std::string>> icap;  // headers that must be there once
};

Exp E100() {
  Exp e;
  e.status = 100;
  return e;
}
Exp Esimple(int status, std::string conn = "keep-alive") {
  Exp e;
  e.status = status;
  e.conn = std::move(conn);
  e.enc = "null-body=0";
  return e;
}
Exp E204(std::string conn = "keep-alive") { return Esimple(204, std::move(conn)); }
// A 200 carrying an HTTP request (REQMOD echo, `sec` "req") or response
// (RESPMOD echo, "res").
Exp Ehttp(const std::string &sec, const std::string &head, std::optional<std::string> body,
          std::string conn) {
  Exp e;
  e.status = 200;
  e.conn = std::move(conn);
  (sec == "req" ? e.req_hdr : e.res_hdr) = head;
  e.enc = sec + "-hdr=0, " + (body ? sec + "-body=" : std::string("null-body=")) +
          std::to_string(head.size());
  e.body = std::move(body);
  return e;
}
Exp Ereq(const std::string &head, std::optional<std::string> body,
         std::string conn = "keep-alive") {
  return Ehttp("req", head, std::move(body), std::move(conn));
}
Exp Eres(const std::string &head, std::optional<std::string> body,
         std::string conn = "keep-alive") {
  return Ehttp("res", head, std::move(body), std::move(conn));
}

struct Case {
  std::string name;
  std::string input;
  std::vector<Exp> exp;
  int closes = 0;  // 1: the session must be closing (or dead) at the end; -1: not checked
  bool dead = false;
  std::string trace;               // expected handler trace
  std::vector<std::string> views;  // expected handler views (checked when not empty)
  End end = End::kNone;
  std::vector<std::pair<icap_limit, uint64_t>> limits;
  bool draining = false;
  // The output legitimately depends on the split (the session dies after a
  // response started): only statuses are checked, as a prefix of `exp`.
  bool loose = false;
  std::string partial;               // status line of an expected incomplete last response
  std::string wait;                  // expected wait() at the end; "" = idle, or none when closing
  std::function<void(Case &)> lazy;  // fills input/exp/trace when the test runs
};

std::ostream &operator<<(std::ostream &o, const Case &c) { return o << c.name; }

// ------------------------------------------------------------------ cases ---

const std::string kA204 = "Allow: 204\r\n";

std::string next_echo() { return reqmod("echo", kA204, kReqGet, false).str(); }

// A case after which the session stays open, and one after which it must
// be closing.
Case kept(std::string name, std::string input, std::vector<Exp> exp, std::string trace) {
  return Case{std::move(name), std::move(input), std::move(exp), 0, false, std::move(trace)};
}
Case closing(std::string name, std::string input, std::vector<Exp> exp, std::string trace) {
  return Case{std::move(name), std::move(input), std::move(exp), 1, false, std::move(trace)};
}

// A request over the limit `which` set to `v`: 400, then close.
Case over_limit(std::string name, std::string input, icap_limit which, uint64_t v) {
  Case c = closing(std::move(name), std::move(input), {Esimple(400, "close")}, "");
  c.limits = {{which, v}};
  return c;
}

// A case that ends with the client's EOF or a timeout (`end`), after
// which the session must be closing (or, when `dead`, dead).
Case ending(End end, std::string name, std::string input, std::vector<Exp> exp, std::string trace,
            bool dead = false) {
  Case c{std::move(name), std::move(input), std::move(exp), 1, dead, std::move(trace)};
  c.end = end;
  return c;
}

void add_protocol_table(std::vector<Case> &v) {
  const std::string b100 = make_body(100, 7);
  const std::string b1k = make_body(1024, 8);

  // unknown service: 404, connection still usable
  v.push_back(kept("unknown_service_404_keeps_connection",
                   reqmod("nosuch", kA204, kReqGet, false).str() + next_echo(),
                   {Esimple(404), E204()}, "H(echo) D0"));
  v.push_back(
      kept("unknown_service_body_discarded_404",
           reqmod("nosuch", "", req_post(1024), true, chunked(b1k, 300)).str() + next_echo(),
           {Esimple(404), E204()}, "H(echo) D0"));
  v.push_back(kept("unknown_service_preview_404",
                   reqmod("nosuch", "Preview: 10\r\n" + kA204, req_post(100), true,
                          preview_body(b100, 10, false))
                           .str() +
                       next_echo(),
                   {Esimple(404), E204()}, "H(echo) D0"));
  v.push_back(kept("options_unknown_service_404", options("nosuch", "").str() + next_echo(),
                   {Esimple(404), E204()}, "H(echo) D0"));

  // method the service did not register: 405
  v.push_back(kept("method_not_registered_405",
                   respmod("reqonly", kA204, kReqGet, res_200(100), true, chunked(b100, 33)).str() +
                       reqmod("reqonly", kA204, kReqGet, false).str(),
                   {Esimple(405), E204()}, "H(reqonly) D0"));

  // method not OPTIONS/REQMOD/RESPMOD: 501
  v.push_back({"unknown_method_501",
               "FOO icap://icap.test/echo ICAP/1.0\r\nHost: icap.test\r\n"
               "Encapsulated: null-body=0\r\n\r\n",
               {Esimple(501, "")},
               -1,
               false,
               ""});
  v.push_back({"lowercase_method_501",
               "reqmod icap://icap.test/echo ICAP/1.0\r\nHost: icap.test\r\n"
               "Encapsulated: req-hdr=0, null-body=" +
                   std::to_string(kReqGet.size()) + "\r\n\r\n" + kReqGet,
               {Esimple(501, "")},
               -1,
               false,
               ""});

  // version other than ICAP/1.0: 505
  for (const char *ver : {"ICAP/1.1", "ICAP/2.0"}) {
    Msg m = reqmod("echo", kA204, kReqGet, false);
    m.version = ver;
    v.push_back({std::string("version_") + (ver[5] == '1' ? "11" : "20") + "_505",
                 m.str(),
                 {Esimple(505, "")},
                 -1,
                 false,
                 ""});
  }

  // REQMOD/RESPMOD without a valid Encapsulated: 400, then close (the
  // pipelined request after it is not answered)
  auto bad_enc = [&](const std::string &name, Msg m) {
    v.push_back(closing(name, m.str() + next_echo(), {Esimple(400, "close")}, ""));
  };
  {
    Msg m = reqmod("echo", kA204, kReqGet, false);
    m.no_enc = true;
    bad_enc("enc_missing_reqmod_400", m);
    Msg r = respmod("echo", kA204, kReqGet, res_200(0), false);
    r.no_enc = true;
    bad_enc("enc_missing_respmod_400", r);
  }
  const std::string L = std::to_string(kReqGet.size());
  const std::string R200 = res_200(100);
  const std::string LR = std::to_string(kReqGet.size() + R200.size());
  auto enc_case = [&](const std::string &name, const std::string &method, const std::string &enc,
                      const std::string &tail) {
    Msg m = method == "REQMOD" ? reqmod("echo", kA204, kReqGet, false)
                               : respmod("echo", kA204, kReqGet, R200, false);
    m.enc_override = enc;
    m.body = tail;
    bad_enc(name, m);
  };
  enc_case("enc_not_increasing_400", "REQMOD", "req-hdr=0, req-body=0", "");
  enc_case("enc_decreasing_400", "RESPMOD", "req-hdr=0, res-hdr=" + LR + ", res-body=" + L, "");
  enc_case("enc_overlapping_400", "RESPMOD", "req-hdr=0, res-hdr=" + L + ", res-body=" + L, "");
  enc_case("enc_not_at_zero_400", "REQMOD", "req-hdr=5, null-body=" + L, "");
  enc_case("enc_unknown_entity_400", "REQMOD", "req-hdr=0, foo-body=" + L, "");
  enc_case("enc_body_not_last_400", "RESPMOD", "req-hdr=0, null-body=" + L + ", res-hdr=" + LR, "");
  enc_case("enc_two_bodies_400", "REQMOD",
           "req-hdr=0, req-body=" + L + ", null-body=" + std::to_string(kReqGet.size() + 5),
           "0\r\n\r\n");
  enc_case("enc_missing_body_400", "REQMOD", "req-hdr=0", "");
  enc_case("enc_req_after_res_400", "RESPMOD",
           "res-hdr=0, req-hdr=" + std::to_string(R200.size()) + ", null-body=" + LR, "");
  enc_case("enc_garbage_number_400", "REQMOD", "req-hdr=0, null-body=7x", "");
  enc_case("enc_negative_number_400", "REQMOD", "req-hdr=0, null-body=-" + L, "");
  enc_case("enc_huge_number_400", "REQMOD", "req-hdr=0, null-body=99999999999999999999", "");
  enc_case("enc_wrong_entities_for_reqmod_400", "REQMOD", "res-hdr=0, null-body=" + L, "");
  enc_case("enc_wrong_entities_for_respmod_400", "RESPMOD", "req-hdr=0, req-body=" + L, "");
  enc_case("enc_trailing_comma_400", "REQMOD", "req-hdr=0, null-body=" + L + ",", "");
  enc_case("enc_offsets_cut_the_head_400", "REQMOD", "req-hdr=0, null-body=20", "");
  {
    Msg m = reqmod("echo", kA204, kReqGet, false);
    m.hdrs += "Encapsulated: req-hdr=0, null-body=" + L + "\r\n";
    bad_enc("enc_two_headers_400", m);
    Msg g = reqmod("echo", kA204, "NOT AN HTTP HEAD\r\n\r\n", false);
    bad_enc("enc_bad_http_head_400", g);
    Msg s = respmod("echo", kA204, kReqGet, "HTTP/1.1 2OO OK\r\n\r\n", false);
    bad_enc("enc_bad_http_status_400", s);
  }
  // An offset past the head: the "head" then holds bytes of the next request.
  {
    Msg m = reqmod("echo", kA204, kReqGet, false);
    m.enc_override = "req-hdr=0, null-body=" + std::to_string(kReqGet.size() + 10);
    bad_enc("enc_offset_past_the_head_400", m);
  }

  // bad chunked bodies: 400 if no response started, then close
  auto bad_body = [&](const std::string &name, const std::string &body,
                      std::vector<std::pair<icap_limit, uint64_t>> lims = {}) {
    Case c =
        closing(name, respmod("upper", kA204, kReqGet, res_200(5), true, body).str() + next_echo(),
                {Esimple(400, "close")}, "H(upper) ERR-12 D-12");
    c.limits = std::move(lims);
    v.push_back(c);
  };
  bad_body("chunk_bad_size_400", "zz\r\nhello\r\n0\r\n\r\n");
  bad_body("chunk_empty_size_400", "\r\nhello\r\n0\r\n\r\n");
  bad_body("chunk_size_0x_prefix_400", "0x5\r\nhello\r\n0\r\n\r\n");
  bad_body("chunk_size_overflow_400", "fffffffffffffffffffffffff\r\nhello\r\n0\r\n\r\n");
  bad_body("chunk_size_over_limit_400", "3e9\r\n" + std::string(1001, 'a') + "\r\n0\r\n\r\n",
           {{ICAP_LIMIT_CHUNK_SIZE, 1000}});
  bad_body("chunk_missing_crlf_after_data_400", "5\r\nhello0\r\n\r\n");
  bad_body("chunk_longer_than_declared_400", "3\r\nhello\r\n0\r\n\r\n");
  bad_body("chunk_missing_lf_after_data_400", "5\r\nhello\rX0\r\n\r\n");
  bad_body("chunk_bare_lf_size_line_400", "5\nhello\r\n0\r\n\r\n");
  bad_body("chunk_bare_lf_last_chunk_400", "5\r\nhello\r\n0\n\r\n");
  bad_body("chunk_bad_extension_400", "5 x\r\nhello\r\n0\r\n\r\n");
  bad_body("chunk_bad_trailer_400", "5\r\nhello\r\n0\r\nnot a trailer\r\n\r\n");
  bad_body("chunk_size_line_too_long_400",
           "5;" + std::string(5000, 'x') + "\r\nhello\r\n0\r\n\r\n");
  {
    Case c = closing("preview_longer_than_announced_400",
                     respmod("upper", "Preview: 4\r\n", kReqGet, res_200(10), true,
                             "a\r\n0123456789\r\n0\r\n\r\n")
                             .str() +
                         next_echo(),
                     {Esimple(400, "close")}, "H(upper) ERR-12 D-12");
    v.push_back(c);
  }
  {
    // The echo's 200 is already under way when the bad chunk arrives: no
    // 400 can follow it, the connection just dies.
    Case c = closing(
        "bad_chunk_after_echo_started_dies",
        respmod("echo", "", kReqGet, res_200(10), true, "5\r\nhello\r\nzz\r\n").str() + next_echo(),
        {Eres(res_200(10), "")}, "H(echo) D-12");
    c.loose = true;
    v.push_back(c);
  }

  // header line or block over its limit: 400, then close
  {
    Msg m = reqmod("echo", "X-Big: " + std::string(600, 'a') + "\r\n" + kA204, kReqGet, false);
    v.push_back(over_limit("icap_head_over_limit_400", m.str() + next_echo(),
                           ICAP_LIMIT_HEADER_BYTES, 512));
    v.push_back(
        over_limit("icap_head_unterminated_over_limit_400",
                   "REQMOD icap://icap.test/echo ICAP/1.0\r\nX-Big: " + std::string(1000, 'a'),
                   ICAP_LIMIT_HEADER_BYTES, 512));
    std::string h;
    for (int i = 0; i < 5; i++) h += "X-H" + std::to_string(i) + ": v\r\n";
    v.push_back(over_limit("icap_too_many_headers_400",
                           reqmod("echo", h, kReqGet, false).str() + next_echo(),
                           ICAP_LIMIT_HEADER_COUNT, 5));  // Host + 5 + Encapsulated
    v.push_back(over_limit("http_head_over_limit_400",
                           reqmod("echo", kA204, kReqGet, false).str() + next_echo(),
                           ICAP_LIMIT_HTTP_HEADER_BYTES, 64));
    v.push_back(over_limit("http_too_many_fields_400",
                           reqmod("echo", kA204, kReqGet, false).str() + next_echo(),
                           ICAP_LIMIT_HTTP_HEADER_COUNT, 1));
    v.push_back(over_limit(
        "preview_over_limit_400",
        reqmod("upper", "Preview: 101\r\n", req_post(100), true, preview_body(b100, 100, true))
                .str() +
            next_echo(),
        ICAP_LIMIT_PREVIEW_BYTES, 100));
    v.push_back(closing("preview_not_a_number_400",
                        reqmod("echo", "Preview: ten\r\n", kReqGet, false).str() + next_echo(),
                        {Esimple(400, "close")}, ""));
    v.push_back(
        closing("two_preview_headers_400",
                reqmod("echo", "Preview: 0\r\nPreview: 0\r\n", kReqGet, false).str() + next_echo(),
                {Esimple(400, "close")}, ""));
    v.push_back(closing(
        "icap_header_with_nul_400",
        reqmod("echo", std::string("X-A: a\0b\r\n", 10), kReqGet, false).str() + next_echo(),
        {Esimple(400, "close")}, ""));
    v.push_back(closing("icap_obs_fold_400",
                        reqmod("echo", "X-A: a\r\n b\r\n", kReqGet, false).str() + next_echo(),
                        {Esimple(400, "close")}, ""));
    v.push_back(closing(
        "icap_bare_lf_head_400",
        "REQMOD icap://icap.test/echo ICAP/1.0\nHost: x\r\nEncapsulated: null-body=0\r\n\r\n" +
            next_echo(),
        {Esimple(400, "close")}, ""));
  }

  // OPTIONS without an Encapsulated header (Squid): 200
  {
    Exp o = Esimple(200);
    o.icap = {{"Methods", "REQMOD, RESPMOD"},
              {"ISTag", "\"tag-echo\""},
              {"Service-ID", "echo"},
              {"Max-Connections", "8750"},
              {"Options-TTL", "3600"},
              {"Allow", "204"},
              {"Preview", "1024"},
              {"Transfer-Preview", "*"},
              {"Server", "libicap-test/1.0"}};
    v.push_back(kept("options_squid_without_encapsulated_200",
                     options("echo", "Allow: 206, trailers\r\n").str(), {o}, ""));
    v.push_back(
        kept("options_cicap_null_body_200",
             options("echo", "User-Agent: C-ICAP-Client-Library/0.5.10\r\n", "null-body").str(),
             {o}, ""));
    Msg ob = options("echo", "", "opt-body");
    ob.body = chunked("opt body data", 4);
    v.push_back(
        kept("options_opt_body_discarded_200", ob.str() + next_echo(), {o, E204()}, "H(echo) D0"));
    Exp ro = Esimple(200);
    ro.icap = {{"Methods", "REQMOD"}, {"ISTag", "\"tag-reqonly\""}};
    v.push_back(kept("options_reqonly_methods", options("reqonly", "").str(), {ro}, ""));
    Exp oh = Esimple(200);
    oh.icap = {{"Methods", "REQMOD, RESPMOD"},
               {"Preview", "0"},
               {"X-Include", "X-Client-IP"},
               {"ISTag", "\"opt-tag\""},
               {"Allow", "204"}};
    v.push_back(kept("options_handler_overrides_headers", options("opt", "").str() + next_echo(),
                     {oh, E204()}, "H(opt) date=-1 D0 H(echo) D0"));
  }

  // Preview: 0 with null-body: no chunk follows, answer at once
  v.push_back(kept("preview0_null_body_answered_at_once",
                   reqmod("echo", "Preview: 0\r\nAllow: 204, trailers\r\n", kReqGet, false).str(),
                   {E204()}, "H(echo) D0"));
  v.push_back(kept("preview0_null_body_no_allow_204_still_204",
                   reqmod("echo", "Preview: 0\r\n", kReqGet, false).str() + next_echo(),
                   {E204(), E204()}, "H(echo) D0 H(echo) D0"));
  v.push_back(kept("preview0_null_body_upper_answers_at_once",
                   reqmod("upper", "Preview: 0\r\n", kReqGet, false).str() + next_echo(),
                   {Ereq(kReqGet, std::nullopt), E204()}, "H(upper) read=-3 D0 H(echo) D0"));
  v.push_back(kept(
      "preview0_null_body_respmod",
      respmod("echo", "Preview: 0\r\nAllow: 204, trailers\r\n", kReqGet, res_200(0), false).str() +
          next_echo(),
      {E204(), E204()}, "H(echo) D0 H(echo) D0"));

  // response sent before the whole body arrived: the rest is discarded
  v.push_back(kept("early_403_rest_discarded_next_answered",
                   reqmod("deny", "", req_post(1024), true, chunked(b1k, 256)).str() + next_echo(),
                   {Esimple(403), E204()}, "H(deny) D0 H(echo) D0"));
  v.push_back(kept(
      "early_403_in_preview_no_rest",
      reqmod("deny", "Preview: 10\r\n", req_post(100), true, preview_body(b100, 10, false)).str() +
          next_echo(),
      {Esimple(403), E204()}, "H(deny) D0 H(echo) D0"));
  v.push_back(
      kept("early_403_preview_ieof",
           reqmod("deny", "Preview: 100\r\n", req_post(100), true, preview_body(b100, 100, false))
                   .str() +
               next_echo(),
           {Esimple(403), E204()}, "H(deny) D0 H(echo) D0"));
  v.push_back(kept("early_echo_body_streamed_next_answered",
                   reqmod("echo", "", req_post(1024), true, chunked(b1k, 100)).str() + next_echo(),
                   {Ereq(req_post(1024), b1k), E204()}, "H(echo) D0 H(echo) D0"));

  // 204 chosen but not allowed: the original message comes back as 200
  v.push_back(kept("s204_not_allowed_echo_200",
                   reqmod("s204", "", req_post(100), true, chunked(b100, 30)).str() + next_echo(),
                   {Ereq(req_post(100), b100), E204()}, "H(s204) D0 H(echo) D0"));
  v.push_back(kept("s204_not_allowed_null_body_echo_200",
                   respmod("s204", "", kReqGet, res_200(0), false).str(),
                   {Eres(res_200(0), std::nullopt)}, "H(s204) D0"));
  v.push_back(
      kept("s204_allowed_204_body_discarded",
           reqmod("s204", kA204, req_post(100), true, chunked(b100, 30)).str() + next_echo(),
           {E204(), E204()}, "H(s204) D0 H(echo) D0"));
  v.push_back(kept(
      "s204_in_preview_204",
      reqmod("s204", "Preview: 10\r\n", req_post(100), true, preview_body(b100, 10, false)).str() +
          next_echo(),
      {E204(), E204()}, "H(s204) D0 H(echo) D0"));
  v.push_back(kept(
      "echo_not_allowed_respmod_200",
      respmod("echo", "Allow: trailers\r\n", kReqGet, res_200(100), true, chunked(b100, 7)).str(),
      {Eres(res_200(100), b100)}, "H(echo) D0"));

  // 100 Continue after a preview that ended with ieof: never sent
  v.push_back(kept("no_100_after_ieof_cont",
                   respmod("cont", "Preview: 1024\r\n", kReqGet, res_200(100), true,
                           preview_body(b100, 1024, true))
                       .str(),
                   {Eres(res_200(100), b100)}, "H(cont) early=-3 END3:100 cont=-3 D0"));
  v.push_back(kept("no_100_after_ieof_upper",
                   respmod("upper", "Preview: 100\r\n", kReqGet, res_200(100), true,
                           preview_body(b100, 100, true))
                       .str(),
                   {Eres(res_200(100), upper(b100))}, "H(upper) END3:100 D0"));

  // handler fails: 500, then close
  v.push_back(closing("handler_error_500_close",
                      reqmod("fail", kA204, kReqGet, false).str() + next_echo(),
                      {Esimple(500, "close")}, "H(fail) D-16"));
  v.push_back(closing("handler_error_with_body_500_close",
                      reqmod("fail", "", req_post(100), true, chunked(b100)).str() + next_echo(),
                      {Esimple(500, "close")}, "H(fail) D-16"));
  v.push_back(closing("handler_throws_500_close",
                      reqmod("throw", kA204, kReqGet, false).str() + next_echo(),
                      {Esimple(500, "close")}, "H(throw) D-16"));
  // The handler answered completely, then returned an error: the answer is
  // already queued and stays; the connection closes after it.
  v.push_back(closing("handler_error_after_answer_keeps_answer_then_closes",
                      reqmod("failafter", kA204, kReqGet, false).str() + next_echo(), {E204()},
                      "H(failafter) D-16"));
  {
    // icap_request_abort(): "the connection is closed after what was
    // already queued" - the head and the first chunk reach the client.
    Case c = closing("abort_mid_stream_queued_bytes_delivered",
                     reqmod("abortmid", "", req_post(100), true, chunked(b100)).str() + next_echo(),
                     {}, "H(abortmid) D-16");
    c.partial = "ICAP/1.0 200 OK";
    v.push_back(c);
  }

  // Connection: close from the client: answer, then close
  v.push_back(
      closing("client_connection_close",
              reqmod("echo", kA204 + "Connection: close\r\n", kReqGet, false).str() + next_echo(),
              {E204("close")}, "H(echo) D0"));
  v.push_back(
      closing("client_connection_close_streamed_echo",
              reqmod("echo", "Connection: close\r\n", req_post(100), true, chunked(b100, 9)).str() +
                  next_echo(),
              {Ereq(req_post(100), b100, "close")}, "H(echo) D0"));
  v.push_back(closing(
      "client_connection_close_in_list",
      reqmod("echo", kA204 + "Connection: foo, Close\r\n", kReqGet, false).str() + next_echo(),
      {E204("close")}, "H(echo) D0"));

  // several requests pipelined on one connection: answered in order
  {
    const std::string b300 = make_body(300, 9), b50 = make_body(50, 10);
    Exp o = Esimple(200);
    std::string in = options("echo", "").str() + next_echo() +
                     respmod("upper", "", kReqGet, res_200(100), true, chunked(b100, 40)).str() +
                     reqmod("deny", "", req_post(1024), true, chunked(b1k, 500)).str() +
                     respmod("echo", "", kReqGet, res_200(300), true, chunked(b300, 64)).str() +
                     reqmod("push", "", req_post(50), true, chunked(b50, 10)).str() + "\r\n\r\n" +
                     next_echo();
    v.push_back(kept("pipelined_mixed_answered_in_order", in,
                     {o, E204(), Eres(res_200(100), upper(b100)), Esimple(403),
                      Eres(res_200(300), b300), Ereq(req_post(50), b50), E204()},
                     "H(echo) D0 H(upper) END1:100 D0 H(deny) D0 H(echo) D0 H(push) END1:50 D0 "
                     "H(echo) D0"));
    v.push_back(kept("deferred_answer_holds_the_pipeline",
                     reqmod("late", kA204, kReqGet, false).str() + next_echo(), {E204(), E204()},
                     "H(late) D0 H(echo) D0 late:na=0"));
    // An answer given later from outside any callback (a post or offload
    // callback) that aborts: 500, close, and the done callback says
    // ICAP_EHANDLER.
    v.push_back(closing("deferred_abort_500_close",
                        reqmod("lateabort", kA204, kReqGet, false).str() + next_echo(),
                        {Esimple(500, "close")}, "H(lateabort) D-16 late:abort=0"));
  }

  // REQMOD answered with an HTTP response (block page) or a new request
  {
    Exp blk;
    blk.status = 200;
    blk.conn = "keep-alive";
    blk.res_hdr = "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 7\r\n\r\n";
    blk.enc = "res-hdr=0, res-body=" + std::to_string(blk.res_hdr.size());
    blk.body = "blocked";
    v.push_back(
        kept("reqmod_block_page_body_discarded",
             reqmod("block", "", req_post(1024), true, chunked(b1k, 200)).str() + next_echo(),
             {blk, E204()}, "H(block) inj=-1 D0 H(echo) D0"));
    v.push_back(
        kept("reqmod_block_page_in_preview",
             reqmod("block", "Preview: 10\r\n", req_post(100), true, preview_body(b100, 10, false))
                     .str() +
                 next_echo(),
             {blk, E204()}, "H(block) inj=-1 D0 H(echo) D0"));
    const std::string rw =
        "GET http://example.com/rewritten HTTP/1.1\r\nHost: example.com\r\nX-Rewritten: 1\r\n\r\n";
    Exp blk0 = blk;
    blk0.res_hdr = "HTTP/1.1 403 Forbidden\r\n\r\n";
    blk0.enc = "res-hdr=0, null-body=" + std::to_string(blk0.res_hdr.size());
    blk0.body = std::nullopt;
    v.push_back(
        kept("pending_read_cancelled_by_complete_answer",
             reqmod("readanswer", "", req_post(1024), true, chunked(b1k, 200)).str() + next_echo(),
             {blk0, E204()}, "H(readanswer) ERR-11 D0 H(echo) D0"));
    v.push_back(kept("reqmod_rewritten_request",
                     reqmod("rewrite", "", kReqGet, false).str() + next_echo(),
                     {Ereq(rw, std::nullopt), E204()}, "H(rewrite) D0 H(echo) D0"));
    v.push_back(kept("respmod_cannot_set_http_request",
                     respmod("rewrite", kA204, kReqGet, res_200(0), false).str(), {E204()},
                     "H(rewrite) req=-1 D0"));
  }

  // client EOF
  v.push_back(ending(End::kEof, "eof_after_complete_request", next_echo(), {E204()}, "H(echo) D0"));
  // After a half-close, what was completely received is still answered (the
  // first answer cannot say close: a pipelined request may follow), then the
  // session closes.
  v.push_back(ending(End::kEof, "eof_before_deferred_answer",
                     reqmod("late", kA204, kReqGet, false).str(), {E204()},
                     "H(late) D0 late:na=0"));
  v.push_back(ending(End::kEof, "eof_after_pipelined_requests_answers_all",
                     reqmod("late", kA204, kReqGet, false).str() + next_echo() +
                         respmod("upper", "", kReqGet, res_200(100), true, chunked(b100, 50)).str(),
                     {E204(), E204(), Eres(res_200(100), upper(b100))},
                     "H(late) D0 H(echo) D0 H(upper) END1:100 D0 late:na=0"));
  v.push_back(ending(End::kEof, "eof_after_pipelined_then_partial_request_dies",
                     reqmod("late", kA204, kReqGet, false).str() + next_echo() +
                         respmod("upper", "", kReqGet, res_200(100), true, "64\r\nabc").str(),
                     {E204(), E204()}, "H(late) D0 H(echo) D0 H(upper) ERR-9 D-9 late:na=0"));
  v.push_back(ending(End::kEof, "eof_mid_body_dies",
                     respmod("upper", "", kReqGet, res_200(100), true, "64\r\nabc").str(), {},
                     "H(upper) ERR-9 D-9"));
  v.push_back(ending(End::kEof, "eof_mid_head_dies",
                     "REQMOD icap://icap.test/echo ICAP/1.0\r\nHost: x\r\n", {}, "", true));
  v.push_back(ending(End::kEof, "eof_mid_encapsulated_head_dies",
                     next_echo().substr(0, next_echo().find("\r\n\r\n") + 14), {}, ""));

  // timeouts (the server's timers call timed_out(wait()))
  v.push_back(ending(End::kTimeout, "timeout_partial_head_408",
                     "REQMOD icap://icap.test/echo ICAP/1.0\r\nHost: x\r\n",
                     {Esimple(408, "close")}, ""));
  v.push_back(ending(End::kTimeout, "timeout_partial_body_408",
                     respmod("upper", "", kReqGet, res_200(100), true, "64\r\nabc").str(),
                     {Esimple(408, "close")}, "H(upper) ERR-10 D-10"));
  v.push_back(ending(End::kTimeout, "timeout_handler_500",
                     reqmod("silent", kA204, kReqGet, false).str(), {Esimple(500, "close")},
                     "H(silent) D-10"));
  v.push_back(ending(End::kTimeout, "timeout_deferred_handler_500",
                     reqmod("late", kA204, kReqGet, false).str(), {Esimple(500, "close")},
                     "H(late) D-10 late:na=-3"));
  v.push_back(ending(End::kTimeout, "timeout_idle_closes_silently", next_echo(), {E204()},
                     "H(echo) D0", true));

  // the server is draining: responses say Connection: close
  {
    Case c =
        closing("draining_says_close", next_echo() + next_echo(), {E204("close")}, "H(echo) D0");
    c.draining = true;
    v.push_back(c);
  }
}

// Every valid Encapsulated combination through echo, upper and push, with
// the handler's view of the request.
void add_encapsulated_combinations(std::vector<Case> &v) {
  const std::string b = make_body(100, 11);
  const std::string res = res_200(100), res0 = res_200(0);
  const std::string req = req_post(100);
  const std::string G = std::to_string(kReqGet.size());
  const std::string getv = " req=GET http://example.com/a?b=c HTTP/1.1";
  const std::string resv = " res=HTTP/1.1 200 OK";
  struct Combo {
    std::string name;
    Msg m;
    Exp echo;       // what echo answers
    Exp upper_exp;  // what upper answers
    std::string view;
    bool body;
  };
  std::vector<Combo> combos;
  combos.push_back({"reqmod_reqhdr_nullbody", reqmod("X", "", kReqGet, false),
                    Ereq(kReqGet, std::nullopt), Ereq(kReqGet, std::nullopt),
                    "REQMOD enc=0,-1,-1,-1," + G + ",-1 pv=-1 body=0 allow=00" + getv, false});
  combos.push_back(
      {"reqmod_reqhdr_reqbody", reqmod("X", "", req, true, chunked(b, 30)), Ereq(req, b),
       Ereq(req, upper(b)),
       "REQMOD enc=0,-1," + std::to_string(req.size()) +
           ",-1,-1,-1 pv=-1 body=1 allow=00 req=POST http://example.com/upload HTTP/1.1",
       true});
  combos.push_back({"respmod_reqhdr_reshdr_resbody",
                    respmod("X", "", kReqGet, res, true, chunked(b, 30)), Eres(res, b),
                    Eres(res, upper(b)),
                    "RESPMOD enc=0," + G + ",-1," + std::to_string(kReqGet.size() + res.size()) +
                        ",-1,-1 pv=-1 body=1 allow=00" + getv + resv,
                    true});
  combos.push_back({"respmod_reqhdr_reshdr_nullbody", respmod("X", "", kReqGet, res0, false),
                    Eres(res0, std::nullopt), Eres(res0, std::nullopt),
                    "RESPMOD enc=0," + G + ",-1,-1," +
                        std::to_string(kReqGet.size() + res0.size()) + ",-1 pv=-1 body=0 allow=00" +
                        getv + resv,
                    false});
  combos.push_back(
      {"respmod_reshdr_resbody", respmod("X", "", "", res, true, chunked(b, 30)), Eres(res, b),
       Eres(res, upper(b)),
       "RESPMOD enc=-1,0,-1," + std::to_string(res.size()) + ",-1,-1 pv=-1 body=1 allow=00" + resv,
       true});
  combos.push_back(
      {"respmod_reshdr_nullbody", respmod("X", "", "", res0, false), Eres(res0, std::nullopt),
       Eres(res0, std::nullopt),
       "RESPMOD enc=-1,0,-1,-1," + std::to_string(res0.size()) + ",-1 pv=-1 body=0 allow=00" + resv,
       false});
  for (Combo &c : combos) {
    for (const char *svc : {"echo", "upper", "push"}) {
      Msg m = c.m;
      m.svc = svc;
      std::string s = svc;
      Exp e = s == "echo" ? c.echo : s == "upper" ? c.upper_exp : c.echo;
      std::string trace = "H(" + s + ")";
      if (s == "upper") trace += c.body ? " END1:100" : " read=-3";
      if (s == "push" && c.body) trace += " END1:100";
      trace += " D0";
      Case k = kept("enc_" + c.name + "_" + s, m.str() + next_echo(), {e, E204()},
                    trace + " H(echo) D0");
      k.views = {c.view, "REQMOD enc=0,-1,-1,-1," + G + ",-1 pv=-1 body=0 allow=10" + getv};
      v.push_back(k);
    }
  }
  // OPTIONS: none, null-body, opt-body (the "opt" service has a handler).
  Exp o = Esimple(200);
  o.icap = {{"Preview", "0"}, {"ISTag", "\"opt-tag\""}};
  Msg on = options("opt", "");
  Msg onb = options("opt", "", "null-body");
  Msg oob = options("opt", "", "opt-body");
  oob.body = chunked("some options body", 5);
  v.push_back({"enc_options_none",
               on.str(),
               {o},
               0,
               false,
               "H(opt) date=-1 D0",
               {"OPTIONS enc=-1,-1,-1,-1,0,-1 pv=-1 body=0 allow=00"}});
  v.push_back({"enc_options_nullbody",
               onb.str(),
               {o},
               0,
               false,
               "H(opt) date=-1 D0",
               {"OPTIONS enc=-1,-1,-1,-1,0,-1 pv=-1 body=0 allow=00"}});
  v.push_back({"enc_options_optbody",
               oob.str() + options("opt", "").str(),
               {o, o},
               0,
               false,
               "H(opt) date=-1 D0 H(opt) date=-1 D0",
               {"OPTIONS enc=-1,-1,-1,-1,-1,0 pv=-1 body=1 allow=00",
                "OPTIONS enc=-1,-1,-1,-1,0,-1 pv=-1 body=0 allow=00"}});
}

// Bodies of 0 bytes, 1 byte, 1 KiB, 64 KiB and 8 MiB.
void add_body_sizes(std::vector<Case> &v) {
  struct Size {
    const char *name;
    size_t n, piece;
  };
  // Built when the test runs, not when the tests are registered: every
  // ctest entry starts the executable anew, and 8 MiB bodies are not free.
  for (Size z : {Size{"0b", 0, 0}, Size{"1b", 1, 0}, Size{"1k", 1024, 300},
                 Size{"64k", 65536, 4000}, Size{"8m", 8u << 20, 65535}}) {
    for (int kind = 0; kind < 4; kind++) {
      static const char *const kKinds[] = {"_echo_reqmod", "_upper_respmod", "_push_respmod",
                                           "_contna_preview"};
      Case c;
      c.name = std::string("body_") + z.name + kKinds[kind];
      c.lazy = [z, kind](Case &k) {
        std::string b = make_body(z.n, static_cast<unsigned>(z.n) + 3);
        std::string n = std::to_string(z.n);
        switch (kind) {
          case 0:
            k.input =
                reqmod("echo", "", req_post(z.n), true, chunked(b, z.piece)).str() + next_echo();
            k.exp = {Ereq(req_post(z.n), b), E204()};
            k.trace = "H(echo) D0 H(echo) D0";
            break;
          case 1:
            k.input = respmod("upper", "", kReqGet, res_200(z.n), true, chunked(b, z.piece)).str() +
                      next_echo();
            k.exp = {Eres(res_200(z.n), upper(b)), E204()};
            k.trace = "H(upper) END1:" + n + " D0 H(echo) D0";
            break;
          case 2:
            k.input = respmod("push", "", kReqGet, res_200(z.n), true, chunked(b, z.piece)).str() +
                      next_echo();
            k.exp = {Eres(res_200(z.n), b), E204()};
            k.trace = "H(push) END1:" + n + " D0 H(echo) D0";
            break;
          default:
            // With a 1024-byte preview and, for bigger bodies, 100 Continue.
            k.input = respmod("contna", "Preview: 1024\r\n", kReqGet, res_200(z.n), true,
                              preview_body(b, 1024, true, z.piece))
                          .str() +
                      next_echo();
            k.exp = z.n > 1024 ? std::vector<Exp>{E100(), Eres(res_200(z.n), b), E204()}
                               : std::vector<Exp>{E204(), E204()};
            k.trace = std::string("H(contna) END") + (z.n > 1024 ? "5:1024" : "3:" + n) +
                      " na=0 D0 H(echo) D0";
        }
      };
      v.push_back(c);
    }
  }
}

// Preview flows.
void add_previews(std::vector<Case> &v) {
  const std::string b = make_body(100, 12);
  const std::string res = res_200(100);
  auto rm = [&](const std::string &svc, const std::string &hdrs, const std::string &body) {
    return respmod(svc, hdrs, kReqGet, res, true, body).str();
  };
  const std::string P10 = "Preview: 10\r\n";
  v.push_back(kept("pv10_of_100_upper_100_continue", rm("upper", P10, preview_body(b, 10, true, 4)),
                   {E100(), Eres(res, upper(b))}, "H(upper) END5:10 END1:100 D0"));
  v.push_back(kept("pv10_of_100_echo_204_rest_not_needed",
                   rm("echo", P10, preview_body(b, 10, false)) + next_echo(), {E204(), E204()},
                   "H(echo) D0 H(echo) D0"));
  v.push_back(kept("pv10_of_100_p204_after_preview_rest_not_needed",
                   rm("p204", P10, preview_body(b, 10, false)) + next_echo(), {E204(), E204()},
                   "H(p204) END5:10 inpv=1 na=0 D0 H(echo) D0"));
  v.push_back(kept("pv100_of_100_ieof_upper",
                   rm("upper", "Preview: 100\r\n", preview_body(b, 100, true)),
                   {Eres(res, upper(b))}, "H(upper) END3:100 D0"));
  v.push_back(kept("pv200_of_100_ieof_upper",
                   rm("upper", "Preview: 200\r\n", preview_body(b, 200, true)),
                   {Eres(res, upper(b))}, "H(upper) END3:100 D0"));
  v.push_back(kept("pv100_of_100_ieof_p204",
                   rm("p204", "Preview: 100\r\n", preview_body(b, 100, true)), {E204()},
                   "H(p204) END3:100 inpv=1 na=0 D0"));
  v.push_back(kept("pv0_with_body_upper_100_continue",
                   rm("upper", "Preview: 0\r\n", preview_body(b, 0, true, 25)),
                   {E100(), Eres(res, upper(b))}, "H(upper) END5:0 END1:100 D0"));
  v.push_back(kept("pv0_with_body_echo_204",
                   rm("echo", "Preview: 0\r\n", preview_body(b, 0, false)) + next_echo(),
                   {E204(), E204()}, "H(echo) D0 H(echo) D0"));
  v.push_back(
      kept("pv0_ieof_empty_body_upper",
           respmod("upper", "Preview: 0\r\n", kReqGet, res_200(0), true, "0; ieof\r\n\r\n").str(),
           {Eres(res_200(0), "")}, "H(upper) END3:0 D0"));
  v.push_back(kept("pv10_cont_explicit_then_read", rm("cont", P10, preview_body(b, 10, true, 3)),
                   {E100(), Eres(res, b)}, "H(cont) early=-3 END5:10 cont=0 cont2=-3 END1:100 D0"));
  v.push_back(kept("pv10_contna_echo_200_after_continue",
                   rm("contna", P10, preview_body(b, 10, true, 6)) + next_echo(),
                   {E100(), Eres(res, b), E204()}, "H(contna) END5:10 na=0 D0 H(echo) D0"));
  v.push_back(kept("pv10_contna_allow204_rest_discarded",
                   rm("contna", P10 + kA204, preview_body(b, 10, true, 6)) + next_echo(),
                   {E100(), E204(), E204()}, "H(contna) END5:10 na=0 D0 H(echo) D0"));
  v.push_back(kept("pv100_ieof_contna_204",
                   rm("contna", "Preview: 100\r\n", preview_body(b, 100, true)), {E204()},
                   "H(contna) END3:100 na=0 D0"));
  v.push_back(kept("pv10_push_pause_resume", rm("push", P10, preview_body(b, 10, true, 7)),
                   {E100(), Eres(res, b)}, "H(push) END5:10 cont=0 END1:100 D0"));
  v.push_back(kept(
      "pv_two_preview_chunks_upper",
      rm("upper", P10,
         chunk(b.substr(0, 4)) + chunk(b.substr(4, 6)) + "0\r\n\r\n" + chunked(b.substr(10), 30)),
      {E100(), Eres(res, upper(b))}, "H(upper) END5:10 END1:100 D0"));
  for (const char *last :
       {"0;ieof", "0; foo=bar; ieof", "0 ; ieof", "0;ieof;x=\"a;b\"", "0; x=\"q\\\"uote\"; ieof"}) {
    v.push_back(kept(std::string("pv_ieof_spelling_") + std::to_string(v.size()),
                     rm("upper", "Preview: 100\r\n", chunked(b, 50, last)), {Eres(res, upper(b))},
                     "H(upper) END3:100 D0"));
  }
  v.push_back(kept("pv_ieofx_is_not_ieof",
                   rm("upper", "Preview: 100\r\n", chunked(b, 50, "0; ieofx") + "0\r\n\r\n"),
                   {E100(), Eres(res, upper(b))}, "H(upper) END5:100 END1:100 D0"));
  v.push_back(kept("pv_ieof_value_is_not_ieof",
                   rm("upper", "Preview: 100\r\n", chunked(b, 50, "0; foo=ieof") + "0\r\n\r\n"),
                   {E100(), Eres(res, upper(b))}, "H(upper) END5:100 END1:100 D0"));
  {
    Exp e206;
    e206.status = 206;
    e206.conn = "keep-alive";
    e206.res_hdr = res;
    e206.enc = "res-hdr=0, res-body=" + std::to_string(res.size());
    e206.body = "X-";
    e206.ext = "use-original-body=0";
    v.push_back(
        kept("pv10_s206_use_original_body",
             rm("s206", P10 + "Allow: 204, 206\r\n", preview_body(b, 10, false)) + next_echo(),
             {e206, E204()}, "H(s206) D0 H(echo) D0"));
    v.push_back(kept("s206_no_preview_body_discarded",
                     rm("s206", "Allow: 206\r\n", chunked(b, 10)) + next_echo(), {e206, E204()},
                     "H(s206) D0 H(echo) D0"));
    v.push_back(kept("pv10_s206_not_allowed_falls_back_204",
                     rm("s206", P10, preview_body(b, 10, false)) + next_echo(), {E204(), E204()},
                     "H(s206) sh=-1 na=0 D0 H(echo) D0"));
  }
  v.push_back(kept("pv10_reqmod_upper",
                   reqmod("upper", P10, req_post(100), true, preview_body(b, 10, true, 5)).str(),
                   {E100(), Ereq(req_post(100), upper(b))}, "H(upper) END5:10 END1:100 D0"));
}

std::vector<Case> all_cases() {
  std::vector<Case> v;
  add_protocol_table(v);
  add_encapsulated_combinations(v);
  add_body_sizes(v);
  add_previews(v);
  return v;
}

// --------------------------------------------------------------- checking ---

void check_response(const Case &c, size_t i, const Resp &got, const Exp &e) {
  SCOPED_TRACE(c.name + ": response #" + std::to_string(i) + " (" + got.status_line + ")");
  EXPECT_EQ(got.code, e.status);
  if (got.code == 100) {
    EXPECT_EQ(got.status_line, "ICAP/1.0 100 Continue");
    return;
  }
  // Headers every final response carries, once each.
  for (const char *h : {"ISTag", "Date", "Server", "Connection", "Encapsulated"})
    EXPECT_EQ(got.header_count(h), 1u) << h;
  // Date is an IMF-fixdate: "Thu, 26 Nov 2026 01:45:55 GMT".
  const std::string date = got.value("Date");
  EXPECT_TRUE(date.size() == 29 && date[3] == ',' && date[4] == ' ' && date[7] == ' ' &&
              date[11] == ' ' && date[16] == ' ' && date[19] == ':' && date[22] == ':' &&
              date.compare(25, 4, " GMT") == 0)
      << "Date " << date;
  const std::string istag = got.value("ISTag");
  EXPECT_TRUE(istag.size() >= 2 && istag.size() <= 32 && istag.front() == '"' &&
              istag.back() == '"')
      << "ISTag " << istag;
  if (!e.conn.empty()) {
    EXPECT_EQ(got.value("Connection"), e.conn);
  }
  EXPECT_EQ(got.encapsulated, e.enc);
  EXPECT_EQ(got.section("req-hdr"), e.req_hdr);
  EXPECT_EQ(got.section("res-hdr"), e.res_hdr);
  EXPECT_EQ(got.has_body, e.body.has_value());
  if (e.body && got.has_body) {
    EXPECT_EQ(got.body.size(), e.body->size());
    EXPECT_TRUE(got.body == *e.body) << "body bytes differ";
    EXPECT_EQ(got.last_chunk_ext, e.ext);
  }
  for (auto &h : e.icap) {
    EXPECT_EQ(got.header_count(h.first), 1u) << h.first;
    EXPECT_EQ(got.value(h.first), h.second) << h.first;
  }
}

void check_expectations(const Case &c, const EngineRun &run, const Parsed &p) {
  SCOPED_TRACE(c.name + " fed whole");
  ASSERT_TRUE(p.ok) << p.err;
  std::string statuses;
  for (const Resp &r : p.resps) statuses += std::to_string(r.code) + " ";
  std::string want;
  for (const Exp &e : c.exp) want += std::to_string(e.status) + " ";
  if (c.loose) {
    EXPECT_LE(p.resps.size(), c.exp.size()) << statuses;
    for (size_t i = 0; i < p.resps.size() && i < c.exp.size(); i++)
      EXPECT_EQ(p.resps[i].code, c.exp[i].status) << statuses;
  } else {
    EXPECT_EQ(statuses, want) << "status lines in order";
    for (size_t i = 0; i < p.resps.size() && i < c.exp.size(); i++)
      check_response(c, i, p.resps[i], c.exp[i]);
    EXPECT_EQ(p.partial_start, c.partial) << "incomplete last response";
    if (c.partial.empty()) {
      EXPECT_EQ(p.rest, 0u) << "bytes of an incomplete response at the end";
    }
  }
  // Nothing follows an answer that said Connection: close.
  for (size_t i = 0; i + 1 < p.resps.size(); i++)
    if (p.resps[i].code != 100) {
      EXPECT_NE(p.resps[i].value("Connection"), "close") << "a response after Connection: close";
    }
  if (c.closes >= 0) {
    EXPECT_EQ(run.closing || run.dead, c.closes == 1)
        << "closing=" << run.closing << " dead=" << run.dead;
  }
  EXPECT_EQ(run.dead, c.dead);
  std::string want_wait = c.wait.empty() ? (run.closing || run.dead ? "none" : "idle") : c.wait;
  EXPECT_EQ(std::string(wait_name(run.wait)), want_wait);
  EXPECT_EQ(run.ctx.trace, c.trace);
  EXPECT_EQ(run.ctx.done_calls, run.ctx.handler_calls) << "every transaction ends once";
  if (!c.views.empty()) {
    EXPECT_EQ(run.ctx.views, c.views);
  }
}

std::string run_summary(const Case &c, const std::function<void(EngineRun &)> &feed) {
  EngineRun run(c.limits, c.draining);
  feed(run);
  run.finish(c.end);
  Parsed p = parse_output(run.out());
  if (c.loose) {
    // Only what cannot depend on the split.
    std::string s = "closing=" + std::to_string(run.closing) + " dead=" + std::to_string(run.dead) +
                    " trace: " + run.ctx.trace;
    for (const Resp &r : p.resps) s += " " + std::to_string(r.code);
    return s;
  }
  return summary(run, p);
}

class EngineCase : public ::testing::TestWithParam<Case> {};

TEST_P(EngineCase, WholeSplitAndBytewise) {
  Case c = GetParam();
  if (c.lazy) c.lazy(c);
  // Fed whole, checked against the table.
  std::string ref;
  {
    EngineRun run(c.limits, c.draining);
    run.feed(c.input, {});
    run.finish(c.end);
    Parsed p = parse_output(run.out());
    check_expectations(c, run, p);
    ref = run_summary(c, [&](EngineRun &r) { r.feed(c.input, {}); });
  }
  const size_t n = c.input.size();
  auto same = [&](const std::string &how, const std::function<void(EngineRun &)> &feed) {
    std::string s = run_summary(c, feed);
    if (s == ref) return true;
    ADD_FAILURE() << c.name << ": result differs when fed " << how << "\n"
                  << first_difference(ref, s);
    return false;
  };
  if (n > (1u << 20)) {
    // Huge: a few split points and fixed-size pieces.
    size_t head = c.input.find("\r\n\r\n") + 4;
    for (size_t k : {size_t{1}, size_t{37}, head - 1, head, head + 1, head + 200, n / 3, n / 2,
                     n - 4096, n - 7, n - 1}) {
      if (!same("split at " + std::to_string(k), [&](EngineRun &r) { r.feed(c.input, {k}); }))
        return;
    }
    for (size_t piece : {size_t{65536}, size_t{4093}})
      if (!same("in pieces of " + std::to_string(piece),
                [&](EngineRun &r) { r.feed_pieces(c.input, piece); }))
        return;
    return;
  }
  for (size_t k : split_positions(n, 70000, 3000, 1500, 300)) {
    if (!same("split at " + std::to_string(k), [&](EngineRun &r) { r.feed(c.input, {k}); })) return;
  }
  same("one byte at a time", [&](EngineRun &r) { r.feed_pieces(c.input, 1); });
  if (n > 3000) same("in pieces of 1000", [&](EngineRun &r) { r.feed_pieces(c.input, 1000); });
}

std::string case_name(const ::testing::TestParamInfo<Case> &info) { return info.param.name; }

INSTANTIATE_TEST_SUITE_P(Table, EngineCase, ::testing::ValuesIn(all_cases()), case_name);

TEST(EngineTable, NamesAreUniqueAndEveryCaseHasInput) {
  std::vector<Case> v = all_cases();
  std::set<std::string> names;
  for (const Case &c : v) {
    EXPECT_TRUE(names.insert(c.name).second) << c.name;
    EXPECT_TRUE(!c.input.empty() || c.lazy) << c.name;
  }
  EXPECT_GE(v.size(), 100u);
}

// ------------------------------------------------- non-table engine tests ---

// A handler that answers later, from outside any callback, still gets its
// pipelined successor dispatched only after its own answer.
TEST(Engine, PipelinedRequestWaitsForTheDeferredAnswer) {
  EngineRun run({}, false);
  std::string in = reqmod("late", kA204, kReqGet, false).str() + next_echo();
  run.feed(in, {});
  EXPECT_EQ(run.ctx.handler_calls, 1);
  EXPECT_EQ(run.out(), "");
  EXPECT_EQ(std::string(wait_name(run.s().wait())), "handler");
  ASSERT_EQ(run.ctx.deferred.size(), 1u);
  icap_request *r = run.ctx.deferred.front();
  run.ctx.deferred.clear();
  EXPECT_EQ(icap_request_no_adaptation(r), 0);
  EXPECT_EQ(icap_request_no_adaptation(r), ICAP_ESTATE);  // answered once only
  icap_request_unref(r);
  run.pump();
  EXPECT_EQ(run.ctx.handler_calls, 2);
  Parsed p = parse_output(run.out());
  ASSERT_EQ(p.resps.size(), 2u);
  EXPECT_EQ(p.resps[0].code, 204);
  EXPECT_EQ(p.resps[1].code, 204);
}

// Preview: 0 with null-body: the answer is out after the head alone.
TEST(Engine, PreviewZeroNullBodyDoesNotWaitForAChunk) {
  EngineRun run({}, false);
  run.feed(reqmod("upper", "Preview: 0\r\nAllow: 204, trailers\r\n", kReqGet, false).str(), {});
  Parsed p = parse_output(run.out());
  ASSERT_EQ(p.resps.size(), 1u);
  EXPECT_EQ(p.resps[0].code, 200);
  EXPECT_EQ(std::string(wait_name(run.s().wait())), "idle");
}

// While the preview waits for the handler's decision, the session waits for
// the handler, not for the client (no read timeout may fire).
TEST(Engine, WaitsForHandlerAfterPreviewWithout100) {
  EngineRun run({}, false);
  const std::string b = make_body(100, 3);
  run.feed(
      respmod("late", "Preview: 10\r\n", kReqGet, res_200(100), true, preview_body(b, 10, false))
          .str(),
      {});
  EXPECT_EQ(std::string(wait_name(run.s().wait())), "handler");
}

// Echo flow control: the echo stops producing output above
// ICAP_LIMIT_BUFFER_BYTES until the writer reports bytes written.
TEST(Engine, EchoStopsAtTheBufferLimitUntilWritten) {
  EngineRun run({{ICAP_LIMIT_BUFFER_BYTES, 8192}}, false);
  const std::string b = make_body(200000, 5);
  std::string in = reqmod("echo", "", req_post(b.size()), true, chunked(b, 1000)).str();
  run.d->feed(in);
  size_t queued = run.s().out().bytes();
  EXPECT_GT(queued, 0u);
  EXPECT_LT(queued, 8192u + 2000u) << "the echo did not stop at the buffer limit";
  EXPECT_EQ(std::string(wait_name(run.s().wait())), "output");
  run.pump();
  Parsed p = parse_output(run.out());
  ASSERT_EQ(p.resps.size(), 1u);
  EXPECT_TRUE(p.resps[0].body == b);
}

// Zero-copy chunks are released exactly once, whether written or dropped.
TEST(Engine, ZeroCopyChunkReleasedOnce) {
  struct Z {
    static int h(icap_request *r, void *u) {
      icap_request_send_headers(r, 1);
      static const char data[] = "zero-copy";
      int rc = icap_request_send_chunk_zc(
          r, data, 9, [](const char *, size_t, void *u2) { ++*static_cast<int *>(u2); }, u);
      EXPECT_EQ(rc, 0);
      icap_request_end(r);
      return 0;
    }
  };
  for (bool write : {true, false}) {
    int released = 0;
    EngineRun run({}, false);
    run.services["echo"]->handler[ICAP_METHOD_REQMOD] = Z::h;
    run.services["echo"]->handler_user[ICAP_METHOD_REQMOD] = &released;
    std::string in = reqmod("echo", "", kReqGet, false).str();
    run.d->feed(in);
    EXPECT_EQ(released, 0);
    if (write) {
      run.pump();
      EXPECT_EQ(released, 1);
      Parsed p = parse_output(run.out());
      ASSERT_EQ(p.resps.size(), 1u);
      EXPECT_EQ(p.resps[0].body, "zero-copy");
    }
    run.close();
    EXPECT_EQ(released, 1) << (write ? "written" : "dropped");
  }
}

}  // namespace
