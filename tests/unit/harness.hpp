// Test harness for the sans-IO engine: a SessionHost that records what the
// session asks for, a writer that takes output the way the server does, a
// strict client-side parser for ICAP responses, and builders for requests.
//
// Everything here is independent of the engine's own parsers, so a test that
// compares the engine's output with what this file parses checks the engine
// against a second implementation.
#ifndef ICAP_TESTS_UNIT_HARNESS_HPP
#define ICAP_TESTS_UNIT_HARNESS_HPP

#include <cstdint>
#include <cstdio>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "protocol/limits.hpp"
#include "protocol/output.hpp"
#include "protocol/service.hpp"
#include "protocol/session.hpp"

namespace icaptest {

using icap::detail::Limits;
using icap::detail::OutSeg;
using icap::detail::ServiceTable;
using icap::detail::Session;

// ------------------------------------------------------------------ host ---

class TestHost : public icap::detail::SessionHost {
 public:
  std::string server_header = "libicap-test/1.0";
  uint64_t connection_limit = 10000;
  bool draining = false;
  time_t now = 1764121555;  // Wed, 26 Nov 2025 01:45:55 GMT
  int output_calls = 0;
  std::vector<std::string> logs;

  void session_output() override { output_calls++; }
  void session_log(icap_log_level, const std::string &msg) override { logs.push_back(msg); }
  const std::string &session_server_header() override { return server_header; }
  uint64_t session_connection_limit() override { return connection_limit; }
  bool session_draining() override { return draining; }
  time_t session_time() override { return now; }
};

// Takes the queued output as the server's writer does: every segment, then
// out().taken(), then written(n) once "written". A dead session must not be
// written to any more (Session::dead()), so its output is left in the queue,
// exactly as Connection::flush() leaves it. Loops because written() may let
// a paused echo produce more. Returns the bytes taken.
inline size_t take_output(Session &s, std::string &out) {
  size_t total = 0;
  for (int guard = 0; guard < 1000000; guard++) {
    if (s.dead() || s.out().empty()) break;
    std::deque<OutSeg> segs;
    segs.swap(s.out().segments());
    s.out().taken();
    size_t n = 0;
    for (OutSeg &seg : segs) {
      out.append(seg.data(), seg.size());
      n += seg.size();
      seg.release_now();
    }
    total += n;
    s.written(n);
  }
  return total;
}

inline const char *wait_name(Session::Wait w) {
  switch (w) {
    case Session::Wait::kNone:
      return "none";
    case Session::Wait::kIdle:
      return "idle";
    case Session::Wait::kHead:
      return "head";
    case Session::Wait::kBody:
      return "body";
    case Session::Wait::kHandler:
      return "handler";
    case Session::Wait::kOutput:
      return "output";
  }
  return "?";
}

// ----------------------------------------------------------- body helpers ---

// Deterministic bytes with everything a framing bug trips over: CR, LF, NUL,
// "0\r\n\r\n", high bytes, and lowercase letters (so uppercasing shows).
inline std::string make_body(size_t n, unsigned seed = 1) {
  std::string s;
  s.reserve(n);
  uint32_t x = 2463534242u ^ (seed * 2654435761u);
  static const char kSpecial[] =
      "\r\n\0"
      "0\r\n\r\n;ieof\"";
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    unsigned k = x % 8;
    if (k < 4)
      s.push_back(static_cast<char>('a' + (x >> 8) % 26));
    else if (k < 6)
      s.push_back(kSpecial[(x >> 8) % (sizeof kSpecial - 1)]);
    else
      s.push_back(static_cast<char>((x >> 8) & 0xff));
  }
  return s;
}

// Branch-free so that it vectorises: bodies are random bytes.
inline std::string upper(std::string s) {
  for (char &c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    u = static_cast<unsigned char>(u - ((static_cast<unsigned char>(u - 'a') < 26) << 5));
    c = static_cast<char>(u);
  }
  return s;
}

inline std::string hex(size_t n) {
  char buf[32];
  snprintf(buf, sizeof buf, "%zx", n);
  return buf;
}

// One chunk: size line, data, CRLF.
inline std::string chunk(std::string_view data) {
  return hex(data.size()) + "\r\n" + std::string(data) + "\r\n";
}

// Data chunks of at most `piece` bytes (0: one chunk), no last chunk.
inline std::string chunks(std::string_view body, size_t piece = 0) {
  std::string s;
  if (piece == 0) piece = body.size() ? body.size() : 1;
  for (size_t i = 0; i < body.size(); i += piece) s += chunk(body.substr(i, piece));
  return s;
}

// A whole chunked body ending with `last` (the last-chunk line) and CRLF.
inline std::string chunked(std::string_view body, size_t piece = 0, std::string_view last = "0") {
  return chunks(body, piece) + std::string(last) + "\r\n\r\n";
}

// A preview of n bytes. Without `rest`, only what the client sends before
// the server's answer to the preview. With it, also the remainder that a
// client sends after 100 Continue. If the preview holds the whole body it
// ends with ieof and there is no remainder.
inline std::string preview_body(std::string_view body, size_t n, bool rest, size_t piece = 0) {
  if (n >= body.size()) return chunked(body, piece, "0; ieof");
  std::string s = chunked(body.substr(0, n), piece, "0");
  if (rest) s += chunked(body.substr(n), piece);
  return s;
}

// ------------------------------------------------------- request builder ---

// One ICAP request. Encapsulated is computed from the parts unless
// `enc_override` is set; an empty `entity` means no Encapsulated header.
struct Msg {
  std::string method = "REQMOD";
  std::string svc = "echo";
  std::string version = "ICAP/1.0";
  std::string hdrs;      // extra ICAP header lines, each ending in CRLF
  std::string req, res;  // encapsulated HTTP heads
  std::string entity;    // "null-body", "req-body", "res-body", "opt-body", ""
  std::string body;      // bytes after the heads (already chunked)
  std::string enc_override;
  bool no_enc = false;

  std::string encapsulated() const {
    if (!enc_override.empty()) return enc_override;
    std::string e;
    size_t off = 0;
    if (!req.empty()) {
      e += "req-hdr=0";
      off += req.size();
    }
    if (!res.empty()) {
      if (!e.empty()) e += ", ";
      e += "res-hdr=" + std::to_string(off);
      off += res.size();
    }
    if (!e.empty()) e += ", ";
    e += entity + "=" + std::to_string(off);
    return e;
  }
  std::string str() const {
    std::string s = method + " icap://icap.test:1344/" + svc + " " + version + "\r\n";
    s += "Host: icap.test:1344\r\n";
    s += hdrs;
    if (!no_enc && (!entity.empty() || !enc_override.empty()))
      s += "Encapsulated: " + encapsulated() + "\r\n";
    s += "\r\n";
    return s + req + res + body;
  }
};

inline const std::string kReqGet =
    "GET http://example.com/a?b=c HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n";

inline std::string req_post(size_t n) {
  return "POST http://example.com/upload HTTP/1.1\r\nHost: example.com\r\n"
         "Content-Type: application/octet-stream\r\nContent-Length: " +
         std::to_string(n) + "\r\n\r\n";
}

inline std::string res_200(size_t n) {
  return "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: " +
         std::to_string(n) + "\r\n\r\n";
}

// REQMOD with an optional body (nullptr-like: has_body=false gives null-body).
inline Msg reqmod(std::string svc, std::string hdrs, std::string req, bool has_body,
                  std::string body = "") {
  Msg m;
  m.method = "REQMOD";
  m.svc = std::move(svc);
  m.hdrs = std::move(hdrs);
  m.req = std::move(req);
  m.entity = has_body ? "req-body" : "null-body";
  m.body = std::move(body);
  return m;
}

inline Msg respmod(std::string svc, std::string hdrs, std::string req, std::string res,
                   bool has_body, std::string body = "") {
  Msg m;
  m.method = "RESPMOD";
  m.svc = std::move(svc);
  m.hdrs = std::move(hdrs);
  m.req = std::move(req);
  m.res = std::move(res);
  m.entity = has_body ? "res-body" : "null-body";
  m.body = std::move(body);
  return m;
}

inline Msg options(std::string svc, std::string hdrs, std::string entity = "") {
  Msg m;
  m.method = "OPTIONS";
  m.svc = std::move(svc);
  m.hdrs = std::move(hdrs);
  m.entity = std::move(entity);
  return m;
}

// ------------------------------------------------------ response parsing ---

// Strict chunked decoding, written independently of the engine's decoder.
// Returns 1 when a whole body (last chunk and trailer) was read from
// in[pos..], 0 when more bytes are needed, -1 on malformed input.
inline int dechunk(std::string_view in, size_t &pos, std::string &body, std::string &last_ext,
                   std::string &err) {
  size_t p = pos;
  std::string b;
  while (true) {
    size_t eol = in.find("\r\n", p);
    if (eol == std::string_view::npos) return 0;
    std::string_view line = in.substr(p, eol - p);
    size_t semi = line.find(';');
    std::string_view size_s = line.substr(0, semi);
    while (!size_s.empty() && (size_s.back() == ' ' || size_s.back() == '\t'))
      size_s.remove_suffix(1);
    if (size_s.empty() || size_s.size() > 15) {
      err = "bad chunk size line: " + std::string(line);
      return -1;
    }
    size_t n = 0;
    for (char c : size_s) {
      int v = (c >= '0' && c <= '9')   ? c - '0'
              : (c >= 'a' && c <= 'f') ? c - 'a' + 10
              : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                       : -1;
      if (v < 0) {
        err = "bad chunk size line: " + std::string(line);
        return -1;
      }
      n = n * 16 + static_cast<size_t>(v);
    }
    p = eol + 2;
    if (n == 0) {
      std::string ext;
      if (semi != std::string_view::npos) {
        std::string_view e = line.substr(semi + 1);
        while (!e.empty() && e.front() == ' ') e.remove_prefix(1);
        ext.assign(e);
      }
      // Trailer lines up to the empty line.
      while (true) {
        size_t t = in.find("\r\n", p);
        if (t == std::string_view::npos) return 0;
        bool empty = t == p;
        p = t + 2;
        if (empty) break;
      }
      body.append(b);
      last_ext = ext;
      pos = p;
      return 1;
    }
    if (in.size() - p < n + 2) return 0;
    if (in.substr(p + n, 2) != "\r\n") {
      err = "chunk data not followed by CRLF";
      return -1;
    }
    b.append(in.data() + p, n);
    p += n + 2;
  }
}

struct Resp {
  int status = 0;
  std::string start;  // status line
  std::vector<std::pair<std::string, std::string>> hdrs;
  std::string enc;  // Encapsulated value
  std::string req_hdr, res_hdr;
  bool has_body = false;
  std::string body;
  std::string last_ext;

  size_t count(std::string_view name) const {
    size_t n = 0;
    for (auto &h : hdrs) n += iequal(h.first, name);
    return n;
  }
  const std::string *get(std::string_view name) const {
    for (auto &h : hdrs)
      if (iequal(h.first, name)) return &h.second;
    return nullptr;
  }
  std::string value(std::string_view name) const {
    const std::string *v = get(name);
    return v ? *v : std::string("<absent>");
  }
  static bool iequal(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); i++) {
      char x = a[i], y = b[i];
      if (x >= 'A' && x <= 'Z') x = static_cast<char>(x + 32);
      if (y >= 'A' && y <= 'Z') y = static_cast<char>(y + 32);
      if (x != y) return false;
    }
    return true;
  }
  // A form that ignores what legitimately changes between runs (Date).
  std::string canonical() const {
    std::string s = start + "\n";
    for (auto &h : hdrs)
      if (!iequal(h.first, "Date")) s += h.first + ": " + h.second + "\n";
    s += "[req-hdr]" + req_hdr + "[res-hdr]" + res_hdr;
    if (has_body) s += "[body " + std::to_string(body.size()) + "]" + body + "[ext]" + last_ext;
    return s + "\n";
  }
};

// Parses the section list of an Encapsulated value: (name, offset) pairs.
inline bool parse_enc_list(std::string_view v, std::vector<std::pair<std::string, size_t>> &out) {
  out.clear();
  while (!v.empty()) {
    size_t comma = v.find(',');
    std::string_view item = v.substr(0, comma);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    size_t eq = item.find('=');
    if (eq == std::string_view::npos || eq + 1 == item.size()) return false;
    size_t off = 0;
    for (char c : item.substr(eq + 1)) {
      if (c < '0' || c > '9') return false;
      off = off * 10 + static_cast<size_t>(c - '0');
    }
    out.emplace_back(std::string(item.substr(0, eq)), off);
    if (comma == std::string_view::npos) break;
    v.remove_prefix(comma + 1);
  }
  return !out.empty();
}

// Parses one ICAP response at in[pos..]. Returns 1 (pos advanced), 0 (needs
// more bytes), -1 (malformed; err says why).
inline int parse_response(std::string_view in, size_t &pos, Resp &r, std::string &err) {
  size_t end = in.find("\r\n\r\n", pos);
  if (end == std::string_view::npos) return 0;
  std::string_view head = in.substr(pos, end + 2 - pos);
  size_t eol = head.find("\r\n");
  r = Resp();
  r.start.assign(head.substr(0, eol));
  if (r.start.size() < 12 || r.start.compare(0, 9, "ICAP/1.0 ") != 0 || r.start[12] != ' ') {
    err = "bad status line: " + r.start;
    return -1;
  }
  r.status = std::atoi(r.start.c_str() + 9);
  head.remove_prefix(eol + 2);
  while (!head.empty()) {
    eol = head.find("\r\n");
    std::string_view line = head.substr(0, eol);
    head.remove_prefix(eol + 2);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      err = "bad header line: " + std::string(line);
      return -1;
    }
    std::string_view v = line.substr(colon + 1);
    while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
    r.hdrs.emplace_back(std::string(line.substr(0, colon)), std::string(v));
  }
  size_t p = end + 4;
  if (r.status == 100) {
    if (!r.hdrs.empty()) {
      err = "100 Continue with headers";
      return -1;
    }
    pos = p;
    return 1;
  }
  if (r.count("Encapsulated") != 1) {
    err = "response without exactly one Encapsulated header";
    return -1;
  }
  r.enc = *r.get("Encapsulated");
  std::vector<std::pair<std::string, size_t>> secs;
  if (!parse_enc_list(r.enc, secs)) {
    err = "bad Encapsulated: " + r.enc;
    return -1;
  }
  size_t hb = secs.back().second;
  if (secs.front().second != 0) {
    err = "Encapsulated does not start at 0";
    return -1;
  }
  if (in.size() - p < hb) return 0;
  for (size_t i = 0; i + 1 < secs.size(); i++) {
    if (secs[i + 1].second <= secs[i].second) {
      err = "Encapsulated offsets do not increase";
      return -1;
    }
    std::string block(in.substr(p + secs[i].second, secs[i + 1].second - secs[i].second));
    if (block.size() < 4 || block.compare(block.size() - 4, 4, "\r\n\r\n") != 0 ||
        block.find("\r\n\r\n") != block.size() - 4) {
      err = "encapsulated header block does not end where the next section starts";
      return -1;
    }
    if (secs[i].first == "req-hdr")
      r.req_hdr = block;
    else if (secs[i].first == "res-hdr")
      r.res_hdr = block;
    else {
      err = "unexpected section " + secs[i].first;
      return -1;
    }
  }
  p += hb;
  const std::string &last = secs.back().first;
  if (last == "null-body") {
    pos = p;
    return 1;
  }
  if (last != "req-body" && last != "res-body" && last != "opt-body") {
    err = "Encapsulated does not end in a body entity: " + r.enc;
    return -1;
  }
  r.has_body = true;
  int rc = dechunk(in, p, r.body, r.last_ext, err);
  if (rc <= 0) return rc;
  pos = p;
  return 1;
}

// Parses all responses in `in`. `rest` gets the bytes of an incomplete last
// response (0 when everything parsed). Returns false on malformed output.
inline bool parse_responses(std::string_view in, std::vector<Resp> &out, size_t &rest,
                            std::string &err) {
  size_t pos = 0;
  out.clear();
  while (pos < in.size()) {
    Resp r;
    int rc = parse_response(in, pos, r, err);
    if (rc < 0) return false;
    if (rc == 0) break;
    out.push_back(std::move(r));
  }
  rest = in.size() - pos;
  return true;
}

// -------------------------------------------------------- split policies ---

// Positions at which to cut an input of n bytes into two pieces: every one
// for small inputs; for large ones every position near both ends and a
// spread in between, so that the run time stays bounded.
inline std::vector<size_t> split_positions(size_t n, size_t all_up_to = 20000, size_t head = 3000,
                                           size_t tail = 1500, size_t spread = 400) {
  std::vector<size_t> v;
  if (n < 2) return v;
  if (n <= all_up_to) {
    for (size_t i = 1; i < n; i++) v.push_back(i);
    return v;
  }
  for (size_t i = 1; i < head && i < n; i++) v.push_back(i);
  size_t lo = head, hi = n > tail ? n - tail : head;
  if (hi > lo)
    for (size_t k = 0; k < spread; k++) v.push_back(lo + (hi - lo) * k / spread);
  for (size_t i = hi; i < n; i++)
    if (i >= head) v.push_back(i);
  return v;
}

}  // namespace icaptest

#endif
