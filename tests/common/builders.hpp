// SPDX-License-Identifier: MIT
// The one set of request builders of the tests: chunked bodies, previews,
// ICAP requests with a computed Encapsulated header, encapsulated HTTP heads
// and deterministic body bytes. The unit tests and fuzz targets feed what
// they build to the engine; the integration, robustness and C++ tests send
// it over a socket. Written without the engine's code, from RFC 3507.
#ifndef ICAP_TESTS_COMMON_BUILDERS_HPP
#define ICAP_TESTS_COMMON_BUILDERS_HPP

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace icaptest {

// ---------------------------------------------------------------- chunks ---

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
  std::string authority = "icap.test:1344";  // of the URI, and the Host header
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
    std::string s = method + " icap://" + authority + "/" + svc + " " + version + "\r\n";
    s += "Host: " + authority + "\r\n";
    s += hdrs;
    if (!no_enc && (!entity.empty() || !enc_override.empty()))
      s += "Encapsulated: " + encapsulated() + "\r\n";
    s += "\r\n";
    return s + req + res + body;
  }
};

// REQMOD with an optional body (has_body=false gives null-body).
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
  Msg m = reqmod(std::move(svc), std::move(hdrs), std::move(req), has_body, std::move(body));
  m.method = "RESPMOD";
  m.res = std::move(res);
  if (has_body) m.entity = "res-body";
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

// The form the socket tests send: "icap://127.0.0.1/<svc>".
inline Msg on_loopback(Msg m) {
  m.authority = "127.0.0.1";
  return m;
}

// ---------------------------------------------------------- HTTP heads ---

// "GET <url>" with a Host line and `extra` header lines.
inline std::string http_get(const std::string &url, const std::string &host = "origin.example",
                            const std::string &extra = "Accept: */*\r\n") {
  return "GET " + url + " HTTP/1.1\r\nHost: " + host + "\r\n" + extra + "\r\n";
}

// "200 OK" with a Content-Type and a Content-Length.
inline std::string http_ok(uint64_t content_length, const std::string &type = "text/plain") {
  return "HTTP/1.1 200 OK\r\nContent-Type: " + type +
         "\r\nContent-Length: " + std::to_string(content_length) + "\r\n\r\n";
}

inline const std::string kReqGet = http_get("http://example.com/a?b=c", "example.com");

inline std::string req_post(size_t n) {
  return "POST http://example.com/upload HTTP/1.1\r\nHost: example.com\r\n"
         "Content-Type: application/octet-stream\r\nContent-Length: " +
         std::to_string(n) + "\r\n\r\n";
}

inline std::string res_200(size_t n) { return http_ok(n, "application/octet-stream"); }

// ----------------------------------------------------------- body bytes ---

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

// A deterministic byte pattern of any length, computed at any offset (for
// bodies too big to keep): byte i of stream `seed`.
inline char pattern_byte(uint64_t i, uint32_t seed) {
  uint64_t x = i * 0x9E3779B97F4A7C15ull + seed;
  x ^= x >> 29;
  return static_cast<char>('a' + (x % 26));
}
inline void fill_pattern(char *out, size_t n, uint64_t offset, uint32_t seed) {
  for (size_t i = 0; i < n; i++) out[i] = pattern_byte(offset + i, seed);
}

// Printable excerpt of binary data, for messages: CR and LF as \r \n, other
// control and high bytes as \xNN, and at most `max` bytes.
inline std::string show(std::string_view s, size_t max = 200) {
  std::string o;
  for (size_t i = 0; i < s.size() && i < max; i++) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '\r') {
      o += "\\r";
    } else if (c == '\n') {
      o += "\\n";
    } else if (c < 0x20 || c >= 0x7f) {
      char b[8];
      snprintf(b, sizeof b, "\\x%02x", c);
      o += b;
    } else {
      o += static_cast<char>(c);
    }
  }
  if (s.size() > max) o += "...";
  return o;
}

}  // namespace icaptest

#endif
