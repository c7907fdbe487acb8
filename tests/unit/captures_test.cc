// SPDX-License-Identifier: MIT
// Real-client captures (tests/data/captures, copied from the project's
// golden captures: Squid 5.7 and c-icap-client 0.5.10 talking to c-icap).
//
// For every capture, the request bytes are fed to the engine as the client
// would send them given OUR answers: a preview without ieof is followed by
// the rest of the body only once we answered 100 Continue (the feeding stops
// at request_preview_end until a 100 is in the output). Each stream is fed
// whole, split at every byte position (a bounded set for big ones) and one
// byte at a time, and every way must give the same result.
//
// Three behaviours of the service `echo`:
//  - echo:       icap_request_no_adaptation() at once (204 in a preview, so
//                the rest of a previewed body must not be needed);
//  - echo_no204: the same with "204" removed from the clients' Allow
//                headers, so that requests without a preview get a 200 echo
//                of the exact encapsulated head and body;
//  - read_all:   read the whole body with icap_request_read_chunk()
//                (icap_request_continue() after the preview when the capture
//                has the rest, else 204 after the preview) and echo it with
//                send_headers/send_chunk: the bodies must be byte-identical.
// In each, the handler's view of the request (method, URI, headers with
// repeats, Encapsulated, HTTP request line / status, preview, Allow) must
// match the manifest.
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "harness.hpp"
#include "mini_json.hpp"

using namespace icaptest;

namespace {

// ------------------------------------------------------------ test data ---

std::string read_file(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

const std::string kDir = std::string(ICAP_TEST_DATA_DIR) + "/captures/";

struct Txn {
  std::string method, uri;
  size_t a = 0, b = 0;    // request_range
  size_t pe = 0;          // request_preview_end (b when absent)
  size_t ra = 0, rb = 0;  // response_range
  int64_t preview = -1;
  bool continue_100 = false;
  int cicap_status = 0;
  std::vector<std::pair<std::string, std::string>> icap;  // request headers
  bool enc_present = false;
  std::string enc;
  std::vector<std::pair<std::string, std::string>> blocks;  // section, raw head
  bool ieof = false;
  bool allow204 = false, allow206 = false;
  bool has_body = false;

  const std::string *block(const std::string &sec) const {
    for (auto &b2 : blocks)
      if (b2.first == sec) return &b2.second;
    return nullptr;
  }
  bool options() const { return method == "OPTIONS"; }
  bool preview_without_ieof() const { return has_body && preview >= 0 && !ieof; }
};

struct Capture {
  std::string name;
  bool whole_connection = false;
  std::string req, resp;
  std::vector<Txn> txns;
};

std::vector<std::string> list_tokens(const std::string &v) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i <= v.size()) {
    size_t c = v.find(',', i);
    if (c == std::string::npos) c = v.size();
    std::string t = v.substr(i, c - i);
    while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.erase(0, 1);
    while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.pop_back();
    if (!t.empty()) out.push_back(t);
    i = c + 1;
  }
  return out;
}

const std::vector<Capture> &captures() {
  static std::vector<Capture> caps = [] {
    std::vector<Capture> v;
    std::string text = read_file(kDir + "manifest.json");
    Json m;
    std::string err;
    if (!JsonReader(text).parse(m, err)) {
      ADD_FAILURE() << "manifest.json: " << err;
      return v;
    }
    for (const Json &c : m["captures"].arr) {
      Capture cap;
      cap.name = c["name"].str;
      cap.whole_connection = c["whole_connection"].b;
      cap.req = read_file(kDir + c["request_file"].str);
      cap.resp = read_file(kDir + c["response_file"].str);
      for (const Json &t : c["transactions"].arr) {
        Txn x;
        x.method = t["method"].str;
        x.uri = t["uri"].str;
        x.a = static_cast<size_t>(t["request_range"][0].i64());
        x.b = static_cast<size_t>(t["request_range"][1].i64());
        x.pe = t.has("request_preview_end") ? static_cast<size_t>(t["request_preview_end"].i64())
                                            : x.b;
        x.ra = static_cast<size_t>(t["response_range"][0].i64());
        x.rb = static_cast<size_t>(t["response_range"][1].i64());
        x.preview = t["preview"].is_null() ? -1 : std::stoll(t["preview"].str);
        x.continue_100 = t["continue_100"].b;
        x.cicap_status = static_cast<int>(t["status"].i64());
        const Json &rq = t["request"];
        for (const Json &h : rq["icap_headers"].arr) x.icap.emplace_back(h[0].str, h[1].str);
        x.enc_present = !rq["encapsulated"].is_null();
        x.enc = rq["encapsulated"].str;
        for (const Json &b : rq["http_header_blocks"].arr)
          x.blocks.emplace_back(b[0].str, b[1].str);
        x.ieof = rq["body"]["ieof"].b;
        for (auto &h : x.icap)
          if (icapwire::ieq(h.first, "Allow"))
            for (const std::string &tok : list_tokens(h.second)) {
              if (tok == "204") x.allow204 = true;
              if (tok == "206") x.allow206 = true;
            }
        x.has_body = x.enc.find("req-body") != std::string::npos ||
                     x.enc.find("res-body") != std::string::npos ||
                     x.enc.find("opt-body") != std::string::npos;
        cap.txns.push_back(std::move(x));
      }
      v.push_back(std::move(cap));
    }
    return v;
  }();
  return caps;
}

// Where the ICAP head of the transaction at `a` ends (after CRLF CRLF).
size_t head_end(const std::string &s, size_t a) { return s.find("\r\n\r\n", a) + 4; }

// The de-chunked request body as the capture holds it: the preview, and the
// rest when the client sent it.
std::string request_body(const Capture &c, const Txn &t, std::string &err) {
  std::vector<std::pair<std::string, uint64_t>> secs;
  if (!t.has_body || !icapwire::parse_enc_list(t.enc, secs)) return "";
  size_t p = head_end(c.req, t.a) + secs.back().second;
  std::string body, ext;
  std::string_view in(c.req.data(), t.b);
  if (dechunk(in, p, body, ext, err) != 1) {
    err = "preview/body does not de-chunk: " + err;
    return "";
  }
  if (p < t.b) {
    if (dechunk(in, p, body, ext, err) != 1) err = "rest of the body does not de-chunk: " + err;
    if (p != t.b && err.empty()) err = "bytes left after the body";
  }
  return body;
}

// The body c-icap echoed in its 200 (after an optional 100 Continue).
std::string cicap_body(const Capture &c, const Txn &t, std::string &err) {
  std::string_view in(c.resp.data(), t.rb);
  size_t p = t.ra;
  const std::string k100 = "ICAP/1.0 100 Continue\r\n\r\n";
  if (in.substr(p, k100.size()) == k100) p += k100.size();
  size_t he = in.find("\r\n\r\n", p);
  std::string head(in.substr(p, he - p));
  size_t e = head.find("Encapsulated: ");
  std::string enc = head.substr(e + 14, head.find("\r\n", e) - e - 14);
  std::vector<std::pair<std::string, uint64_t>> secs;
  icapwire::parse_enc_list(enc, secs);
  size_t q = he + 4 + secs.back().second;
  std::string body, ext;
  if (dechunk(in, q, body, ext, err) != 1) err = "c-icap's body does not de-chunk";
  return body;
}

// ------------------------------------------------------ handler's view ---

std::string view_string(icap_request *r) {
  std::string v;
  v += std::string("method=") + icap_request_method_name(r) + "\n";
  v += std::string("uri=") + icap_request_uri(r) + "\n";
  v += std::string("version=") + icap_request_version(r) + "\n";
  v += std::string("service=") + icap_request_service_name(r) + "\n";
  size_t n = icap_request_header_count(r, ICAP_HEADERS_ICAP);
  for (size_t i = 0; i < n; i++) {
    const char *name = nullptr, *value = nullptr;
    icap_request_header_at(r, ICAP_HEADERS_ICAP, i, &name, &value);
    v += std::string("icap: ") + name + ": " + value + "\n";
  }
  for (size_t i = 0; i < 4; i++) {
    const char *a = icap_request_header(r, ICAP_HEADERS_ICAP, "allow", i);
    if (!a) break;
    v += std::string("allow[") + std::to_string(i) + "]=" + a + "\n";
  }
  v += "enc=";
  for (int s = 0; s < ICAP_SECTION_COUNT_; s++)
    v += std::to_string(icap_request_encapsulated(r, static_cast<icap_section>(s))) + ",";
  v += "\n";
  v += std::string("http_req=") + icap_request_http_method(r) + " " + icap_request_http_uri(r) +
       " " + icap_request_http_req_version(r) + "\n";
  v += "http_res=" + std::string(icap_request_http_res_version(r)) + " " +
       std::to_string(icap_request_http_status(r)) + " " + icap_request_http_reason(r) + "\n";
  for (icap_section s : {ICAP_SECTION_REQ_HDR, ICAP_SECTION_RES_HDR}) {
    size_t len = 0;
    const char *raw = icap_request_raw_section(r, s, &len);
    if (raw)
      v += std::string(s == ICAP_SECTION_REQ_HDR ? "raw_req=" : "raw_res=") + std::string(raw, len);
  }
  for (icap_headers w : {ICAP_HEADERS_HTTP_REQ, ICAP_HEADERS_HTTP_RES}) {
    size_t k = icap_request_header_count(r, w);
    for (size_t i = 0; i < k; i++) {
      const char *name = nullptr, *value = nullptr;
      icap_request_header_at(r, w, i, &name, &value);
      v += std::string(w == ICAP_HEADERS_HTTP_REQ ? "hreq: " : "hres: ") + name + ": " + value +
           "\n";
    }
  }
  v += "preview=" + std::to_string(icap_request_preview(r)) + "\n";
  v += "has_body=" + std::to_string(icap_request_has_body(r)) + "\n";
  v += "allows=" + std::to_string(icap_request_allows(r, 204)) +
       std::to_string(icap_request_allows(r, 206)) + "\n";
  v += "in_preview=" + std::to_string(icap_request_in_preview(r)) + "\n";
  return v;
}

// The same view computed from the manifest alone.
std::string expected_view(const Txn &t) {
  std::string v;
  v += "method=" + t.method + "\n";
  v += "uri=" + t.uri + "\n";
  v += "version=ICAP/1.0\n";
  v += "service=echo\n";
  for (auto &h : t.icap) v += "icap: " + h.first + ": " + h.second + "\n";
  size_t na = 0;
  for (auto &h : t.icap)
    if (icapwire::ieq(h.first, "Allow"))
      v += "allow[" + std::to_string(na++) + "]=" + h.second + "\n";
  // Sections in icap_section order; an OPTIONS without Encapsulated counts
  // as null-body=0.
  static const char *kNames[] = {"req-hdr",  "res-hdr",   "req-body",
                                 "res-body", "null-body", "opt-body"};
  std::vector<std::pair<std::string, uint64_t>> secs;
  if (t.enc_present)
    icapwire::parse_enc_list(t.enc, secs);
  else
    secs = {{"null-body", 0}};
  v += "enc=";
  for (const char *n : kNames) {
    int64_t off = -1;
    for (auto &s : secs)
      if (s.first == n) off = static_cast<int64_t>(s.second);
    v += std::to_string(off) + ",";
  }
  v += "\n";
  const std::string *rq = t.block("req-hdr");
  const std::string *rs = t.block("res-hdr");
  auto first_line = [](const std::string &b) { return b.substr(0, b.find("\r\n")); };
  std::string hm, hu, hv;
  if (rq) {
    std::string l = first_line(*rq);
    size_t s1 = l.find(' '), s2 = l.rfind(' ');
    hm = l.substr(0, s1);
    hu = l.substr(s1 + 1, s2 - s1 - 1);
    hv = l.substr(s2 + 1);
  }
  v += "http_req=" + hm + " " + hu + " " + hv + "\n";
  std::string rv, rc = "-1", rr;
  if (rs) {
    std::string l = first_line(*rs);
    size_t s1 = l.find(' ');
    size_t s2 = l.find(' ', s1 + 1);
    rv = l.substr(0, s1);
    rc = l.substr(s1 + 1, s2 - s1 - 1);
    rr = s2 == std::string::npos ? "" : l.substr(s2 + 1);
  }
  v += "http_res=" + rv + " " + rc + " " + rr + "\n";
  if (rq) v += "raw_req=" + *rq;
  if (rs) v += "raw_res=" + *rs;
  for (const std::string *b : {rq, rs}) {
    if (!b) continue;
    std::string rest = b->substr(b->find("\r\n") + 2);
    while (true) {
      size_t e = rest.find("\r\n");
      if (e == 0 || e == std::string::npos) break;
      std::string line = rest.substr(0, e);
      rest.erase(0, e + 2);
      size_t colon = line.find(':');
      std::string val = line.substr(colon + 1);
      while (!val.empty() && val.front() == ' ') val.erase(0, 1);
      v += std::string(b == rq ? "hreq: " : "hres: ") + line.substr(0, colon) + ": " + val + "\n";
    }
  }
  v += "preview=" + std::to_string(t.options() ? -1 : t.preview) + "\n";
  v += "has_body=" + std::to_string(t.has_body) + "\n";
  v += "allows=" + std::to_string(t.allow204) + std::to_string(t.allow206) + "\n";
  v += "in_preview=" + std::to_string(!t.options() && t.preview >= 0) + "\n";
  return v;
}

// ------------------------------------------------------------- services ---

enum class Variant { kEcho, kEchoNo204, kReadAll };

struct Plan {
  bool want_rest = false;  // read_all: continue after the preview
};

struct CapCtx {
  Variant variant = Variant::kEcho;
  const std::vector<Plan> *plans = nullptr;
  int calls = 0, done = 0;
  std::string trace;
  std::vector<std::string> views;
  std::vector<std::string> bodies;  // read_all: what the handler read, per body
  void ev(const std::string &s) {
    if (!trace.empty()) trace += ' ';
    trace += s;
  }
};

struct CapReq {
  CapCtx *ctx;
  Plan plan;
  std::string body;
};

void cap_done(icap_request *, int status, void *u) {
  auto *st = static_cast<CapReq *>(u);
  st->ctx->done++;
  st->ctx->ev("D" + std::to_string(status));
  delete st;
}

CapReq *cap_begin(icap_request *r, void *u) {
  auto *c = static_cast<CapCtx *>(u);
  auto *st = new CapReq{c, {}, {}};
  if (c->plans && static_cast<size_t>(c->calls) < c->plans->size())
    st->plan = (*c->plans)[c->calls];
  c->calls++;
  c->views.push_back(view_string(r));
  c->ev(std::string("H(") + icap_request_method_name(r) + ")");
  icap_request_on_done(r, cap_done, st);
  return st;
}

int cap_options(icap_request *r, void *u) {
  CapReq *st = cap_begin(r, u);
  int rc = icap_request_send_headers(r, 0);
  if (rc) st->ctx->ev("sh=" + std::to_string(rc));
  return 0;
}

void read_all_cb(icap_request *r, int status, const char *d, size_t n, void *u) {
  auto *st = static_cast<CapReq *>(u);
  CapCtx *c = st->ctx;
  if (status < 0) {
    c->ev("ERR" + std::to_string(status));
    return;
  }
  st->body.append(d, n);
  if (!(status & ICAP_BODY_END)) {
    int rc = icap_request_read_chunk(r, read_all_cb, st);
    if (rc) c->ev("read=" + std::to_string(rc));
    return;
  }
  c->ev("END" + std::to_string(status) + ":" + std::to_string(st->body.size()) +
        " ieof=" + std::to_string(icap_request_ieof(r)));
  if (status & ICAP_BODY_PREVIEW_END) {
    if (st->plan.want_rest) {
      int rc = icap_request_continue(r);  // 100 Continue, once
      if (rc) c->ev("cont=" + std::to_string(rc));
      rc = icap_request_read_chunk(r, read_all_cb, st);
      if (rc) c->ev("read=" + std::to_string(rc));
    } else {
      c->bodies.push_back(st->body);
      c->ev("na=" + std::to_string(icap_request_no_adaptation(r)));
    }
    return;
  }
  c->bodies.push_back(st->body);
  int rc = icap_request_copy_http_head(r, nullptr);
  rc |= icap_request_send_headers(r, 1);
  for (size_t i = 0; i < st->body.size(); i += 4000)
    rc |= icap_request_send_chunk(r, st->body.data() + i,
                                  std::min<size_t>(4000, st->body.size() - i));
  rc |= icap_request_end(r);
  if (rc) c->ev("answer failed");
}

int cap_mod(icap_request *r, void *u) {
  CapReq *st = cap_begin(r, u);
  CapCtx *c = st->ctx;
  if (c->variant != Variant::kReadAll) {
    int rc = icap_request_no_adaptation(r);
    if (rc) c->ev("na=" + std::to_string(rc));
    return 0;
  }
  if (!icap_request_has_body(r)) {
    int rc = icap_request_copy_http_head(r, nullptr);
    rc |= icap_request_send_headers(r, 0);
    if (rc) c->ev("answer failed");
    return 0;
  }
  int rc = icap_request_read_chunk(r, read_all_cb, st);
  if (rc) c->ev("read=" + std::to_string(rc));
  return 0;
}

// ------------------------------------------------------------- the plan ---

struct Expect {
  int status;
  const Txn *t;
  std::string enc, req_hdr, res_hdr;
  bool has_body = false;
  std::string body;
};

struct Stream {
  std::string bytes;
  std::vector<size_t> gates;  // k-th gate: no byte past it before the k-th 100
  std::vector<Expect> exp;
  std::vector<Plan> plans;
  std::vector<std::string> views;   // expected views (empty for echo_no204)
  std::vector<std::string> bodies;  // read_all: expected bodies read
};

// Removes "204" from every Allow header of the ICAP head at the start of `s`.
std::string strip_allow_204(const std::string &s) {
  size_t he = s.find("\r\n\r\n") + 4;
  std::string head = s.substr(0, he), out;
  size_t p = 0;
  while (p < head.size()) {
    size_t e = head.find("\r\n", p) + 2;
    std::string line = head.substr(p, e - p);
    p = e;
    if (line.size() > 6 && icapwire::ieq(line.substr(0, 6), "Allow:")) {
      std::string keep;
      for (const std::string &tok : list_tokens(line.substr(6, line.size() - 8)))
        if (tok != "204") keep += (keep.empty() ? "" : ", ") + tok;
      if (keep.empty()) continue;
      line = "Allow: " + keep + "\r\n";
    }
    out += line;
  }
  return out + s.substr(he);
}

Stream make_stream(const Capture &c, Variant v, std::string &err) {
  Stream st;
  for (const Txn &t : c.txns) {
    std::string bytes = c.req.substr(t.a, t.b - t.a);
    bool allow204 = t.allow204 && v != Variant::kEchoNo204;
    if (v == Variant::kEchoNo204) bytes = strip_allow_204(bytes);
    std::string body = request_body(c, t, err);
    if (!err.empty()) return st;
    Expect e{200, &t, "", "", "", false, ""};
    Plan plan;
    bool req = t.method == "REQMOD";
    const std::string *blk = t.block(req ? "req-hdr" : "res-hdr");
    auto echo_200 = [&](const std::string &b) {
      e.status = 200;
      if (blk) (req ? e.req_hdr : e.res_hdr) = *blk;
      std::string kind = req ? "req" : "res";
      e.enc = kind + "-hdr=0, " + (t.has_body ? kind + "-body=" : std::string("null-body=")) +
              std::to_string(blk ? blk->size() : 0);
      e.has_body = t.has_body;
      e.body = b;
    };
    if (t.options()) {
      e.enc = "null-body=0";
    } else if (v != Variant::kReadAll) {
      if (t.preview >= 0 || allow204) {
        e.status = 204;
        e.enc = "null-body=0";
        // With our 204 in the preview, the client never sends the rest.
        if (t.preview_without_ieof()) bytes.resize(bytes.size() - (t.b - t.pe));
      } else {
        echo_200(body);
      }
    } else if (t.preview_without_ieof() && !t.continue_100) {
      // read_all reads the preview, then says 204 like c-icap did.
      e.status = 204;
      e.enc = "null-body=0";
      st.bodies.push_back(body);
    } else {
      if (t.preview_without_ieof()) {
        plan.want_rest = true;
        st.gates.push_back(st.bytes.size() + (t.pe - t.a));
        st.exp.push_back(Expect{100, &t, "", "", "", false, ""});
      }
      echo_200(body);
      if (t.has_body) st.bodies.push_back(body);
    }
    if (!t.options())
      st.plans.push_back(plan);
    else
      st.plans.push_back(Plan{});
    if (v != Variant::kEchoNo204) st.views.push_back(expected_view(t));
    st.exp.push_back(e);
    st.bytes += bytes;
  }
  return st;
}

// ---------------------------------------------------------------- a run ---

struct CapRun {
  Limits limits;
  ServiceTable services;
  CapCtx ctx;
  EngineDriver d{&services, &limits};
  std::string stuck;  // why feeding stopped early
  bool closing = false, dead = false;
  Session::Wait wait = Session::Wait::kNone;

  CapRun(Variant v, const std::vector<Plan> *plans) {
    ctx.variant = v;
    ctx.plans = plans;
    icap_service *svc = add_service(services, "echo", "capture-tag",
                                    {ICAP_METHOD_REQMOD, ICAP_METHOD_RESPMOD}, cap_mod, &ctx);
    svc->handler[ICAP_METHOD_OPTIONS] = cap_options;
    svc->handler_user[ICAP_METHOD_OPTIONS] = &ctx;
  }

  size_t continues() const {
    size_t n = 0, p = 0;
    const std::string k = "ICAP/1.0 100 Continue\r\n\r\n";
    while ((p = d.wire.find(k, p)) != std::string::npos) {
      n++;
      p += k.size();
    }
    return n;
  }

  // Feeds `in` cut at `cuts`, never past a gate before its 100 Continue.
  void feed(const Stream &st, const std::vector<size_t> &cuts) {
    const std::string &in = st.bytes;
    std::vector<size_t> stops;
    size_t g = 0, prev = 0;
    std::vector<size_t> ends = cuts;
    ends.push_back(in.size());
    for (size_t end : ends) {
      if (end <= prev || end > in.size()) continue;
      for (int guard = 0; prev < end && guard < 1000000; guard++) {
        size_t to = end;
        if (g < st.gates.size() && st.gates[g] < to) to = st.gates[g];
        if (to > prev) {
          d.feed(in.data() + prev, to - prev);
          d.drain();
          prev = to;
        }
        if (g < st.gates.size() && prev == st.gates[g] && prev < end) {
          if (continues() < g + 1) {
            stuck =
                "no 100 Continue after the preview ending at stream byte " + std::to_string(prev);
            return;
          }
          g++;
        }
      }
    }
  }

  void finish() {
    d.drain();
    closing = d.session().closing();
    dead = d.session().dead();
    wait = d.session().wait();
    d.close();
  }
};

std::string run_summary(CapRun &run) {
  std::vector<Resp> resps;
  size_t rest = 0;
  std::string err;
  bool ok = parse_responses(run.d.wire, resps, rest, err);
  std::string s = ok ? "" : "PARSE ERROR " + err + "\n";
  for (const Resp &r : resps) s += r.canonical();
  s += "rest=" + std::to_string(rest) + " stuck=" + run.stuck +
       " closing=" + std::to_string(run.closing) + " dead=" + std::to_string(run.dead) +
       " wait=" + wait_name(run.wait) + "\ntrace: " + run.ctx.trace + "\n";
  for (auto &v : run.ctx.views) s += v;
  for (auto &b : run.ctx.bodies) s += "[read " + std::to_string(b.size()) + "]" + b;
  return s;
}

// ---------------------------------------------------------------- tests ---

struct Param {
  std::string capture;
  Variant variant;
};

const char *variant_name(Variant v) {
  return v == Variant::kEcho ? "echo" : v == Variant::kEchoNo204 ? "echo_no204" : "read_all";
}

void PrintTo(const Param &p, std::ostream *os) {
  *os << p.capture << "/" << variant_name(p.variant);
}

std::vector<Param> params() {
  std::vector<Param> v;
  for (const Capture &c : captures())
    for (Variant var : {Variant::kEcho, Variant::kEchoNo204, Variant::kReadAll})
      v.push_back({c.name, var});
  return v;
}

const Capture &find_capture(const std::string &name) {
  for (const Capture &c : captures())
    if (c.name == name) return c;
  static Capture none;
  return none;
}

class CaptureReplay : public ::testing::TestWithParam<Param> {};

TEST_P(CaptureReplay, WholeSplitAndBytewise) {
  const Capture &c = find_capture(GetParam().capture);
  const Variant var = GetParam().variant;
  ASSERT_FALSE(c.txns.empty()) << "capture not loaded";
  ASSERT_FALSE(c.req.empty());
  std::string err;
  Stream st = make_stream(c, var, err);
  ASSERT_TRUE(err.empty()) << err;

  CapRun run(var, &st.plans);
  run.feed(st, {});
  run.finish();
  const std::string ref = run_summary(run);

  // Fed whole: the answers.
  EXPECT_EQ(run.stuck, "");
  std::vector<Resp> resps;
  size_t rest = 0;
  ASSERT_TRUE(parse_responses(run.d.wire, resps, rest, err)) << err;
  EXPECT_EQ(rest, 0u) << "an incomplete response at the end";
  std::string got, want;
  for (const Resp &r : resps) got += std::to_string(r.code) + " ";
  for (const Expect &e : st.exp) want += std::to_string(e.status) + " ";
  EXPECT_EQ(got, want) << "status lines in order";
  for (size_t i = 0; i < resps.size() && i < st.exp.size(); i++) {
    const Resp &r = resps[i];
    const Expect &e = st.exp[i];
    SCOPED_TRACE("response #" + std::to_string(i) + " " + r.status_line);
    if (r.code == 100) {
      EXPECT_TRUE(e.t->preview_without_ieof()) << "100 Continue without a preview to continue";
      continue;
    }
    if (r.code == 204) {
      bool allowed =
          (e.t->allow204 && var != Variant::kEchoNo204) || (e.t->preview >= 0 && !e.t->options());
      EXPECT_TRUE(allowed) << "204 although the client neither allowed it nor sent a preview";
    }
    EXPECT_EQ(r.value("Connection"), "keep-alive");
    EXPECT_EQ(r.value("ISTag"), "\"capture-tag\"");
    EXPECT_EQ(r.encapsulated, e.enc);
    EXPECT_EQ(r.section("req-hdr"), e.req_hdr);
    EXPECT_EQ(r.section("res-hdr"), e.res_hdr);
    EXPECT_EQ(r.has_body, e.has_body);
    EXPECT_EQ(r.body.size(), e.body.size());
    EXPECT_TRUE(r.body == e.body) << "echoed body differs from the request body";
    if (e.t->options()) {
      EXPECT_EQ(r.value("Methods"), "REQMOD, RESPMOD");
      EXPECT_EQ(r.value("Transfer-Preview"), "*");
    }
    // Where c-icap echoed too, its body and ours agree.
    if (r.code == 200 && e.t->has_body && e.t->cicap_status == 200) {
      std::string cerr;
      std::string cb = cicap_body(c, *e.t, cerr);
      EXPECT_TRUE(cerr.empty()) << cerr;
      EXPECT_TRUE(cb == r.body) << "our echo differs from c-icap's";
    }
  }
  EXPECT_FALSE(run.closing);
  EXPECT_FALSE(run.dead);
  EXPECT_STREQ(wait_name(run.wait), "idle") << "input left over or a transaction pending";
  EXPECT_EQ(run.ctx.calls, static_cast<int>(c.txns.size())) << "one handler call per transaction";
  EXPECT_EQ(run.ctx.done, run.ctx.calls);
  if (!st.views.empty()) {
    ASSERT_EQ(run.ctx.views.size(), st.views.size());
    for (size_t i = 0; i < st.views.size(); i++)
      EXPECT_EQ(run.ctx.views[i], st.views[i]) << "handler view of transaction #" << i;
  }
  if (var == Variant::kReadAll) {
    ASSERT_EQ(run.ctx.bodies.size(), st.bodies.size());
    for (size_t i = 0; i < st.bodies.size(); i++) {
      EXPECT_EQ(run.ctx.bodies[i].size(), st.bodies[i].size()) << "body #" << i;
      EXPECT_TRUE(run.ctx.bodies[i] == st.bodies[i]) << "body #" << i << " not byte-identical";
    }
  }

  // Split, then one byte at a time: the same result.
  const size_t n = st.bytes.size();
  std::vector<size_t> positions =
      n > 50000 ? split_positions(n, 0, 1600, 400, 120) : split_positions(n, 4000, 1800, 600, 250);
  for (size_t k : positions) {
    CapRun r(var, &st.plans);
    r.feed(st, {k});
    r.finish();
    std::string s = run_summary(r);
    if (s != ref) {
      ADD_FAILURE() << "differs when split at " << k << ":\n" << s.substr(0, 2000);
      return;
    }
  }
  std::vector<size_t> every;
  for (size_t k = 1; k < n; k++) every.push_back(k);
  CapRun r(var, &st.plans);
  r.feed(st, every);
  r.finish();
  EXPECT_EQ(run_summary(r), ref) << "differs when fed one byte at a time";
}

INSTANTIATE_TEST_SUITE_P(Captures, CaptureReplay, ::testing::ValuesIn(params()),
                         [](const ::testing::TestParamInfo<Param> &i) {
                           std::string s = i.param.capture + "_" + variant_name(i.param.variant);
                           for (char &ch : s)
                             if (ch == '-') ch = '_';
                           return s;
                         });

// The test data itself: every capture is there, its transactions tile the
// request file, and our de-chunking agrees with the manifest's body sizes.
TEST(CaptureData, ManifestMatchesFiles) {
  const auto &caps = captures();
  ASSERT_GE(caps.size(), 20u);
  for (const Capture &c : caps) {
    SCOPED_TRACE(c.name);
    ASSERT_FALSE(c.req.empty());
    size_t pos = 0;
    for (const Txn &t : c.txns) {
      EXPECT_EQ(t.a, pos) << "transactions do not tile the request file";
      EXPECT_LE(t.pe, t.b);
      pos = t.b;
      std::string err;
      std::string body = request_body(c, t, err);
      EXPECT_TRUE(err.empty()) << err;
      if (!t.has_body) {
        EXPECT_TRUE(body.empty());
      }
    }
    EXPECT_EQ(pos, c.req.size());
  }
}

}  // namespace
