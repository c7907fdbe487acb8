// SPDX-License-Identifier: MIT
// A strict, independent reader of what an ICAP server writes: a sequence of
// ICAP responses (RFC 3507 section 4.3.3), each with its Encapsulated header
// sections and chunked body. It is the one response parser of the tests: the
// unit tests and the fuzz targets check the engine's output with it, and the
// socket client (client.hpp) of the integration, robustness and C++ tests
// reads the server's answers with it. It depends on nothing but the standard
// library, so that it never shares a bug with the code it checks.
#ifndef ICAP_TESTS_COMMON_ICAP_WIRE_HPP
#define ICAP_TESTS_COMMON_ICAP_WIRE_HPP

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace icapwire {

struct Response {
  int code = 0;
  std::string status_line;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string encapsulated;  // the Encapsulated value ("" if absent)
  // Header sections in order: ("req-hdr" or "res-hdr", raw bytes).
  std::vector<std::pair<std::string, std::string>> sections;
  std::string body_kind;       // "req-body", "res-body", "opt-body", "null-body" or ""
  bool has_body = false;       // a chunked body follows the sections
  std::string body;            // decoded chunked body (unless a sink took it)
  uint64_t body_bytes = 0;     // decoded body length
  std::string last_chunk_ext;  // what follows "0" in the last-chunk line
  size_t wire_bytes = 0;       // bytes of the whole response on the wire

  // First value of `name` (case-insensitive) or nullptr.
  const std::string *header(std::string_view name) const;
  size_t header_count(std::string_view name) const;
  // First value of `name`, or `absent`.
  std::string value(std::string_view name, const std::string &absent = "<absent>") const;
  bool conn_close() const;
  // The raw bytes of section `name` ("req-hdr", "res-hdr"), or "".
  std::string section(std::string_view name) const;
  // All header sections, concatenated as they were on the wire.
  std::string http_head() const;
  // A form that ignores what legitimately changes between runs (Date), for
  // comparing two runs of the engine.
  std::string canonical() const;
};

enum class Parse {
  kOk,       // one complete response (or body) was read
  kPartial,  // the bytes end inside it (need more)
  kBad       // not well formed; `why` says what
};

bool ieq(std::string_view a, std::string_view b);

// Reads the head of one response from the start of `in`: status line, ICAP
// headers and the encapsulated header sections. On kOk, out.wire_bytes is
// the length of all that, and out.has_body says whether a chunked body
// follows. Strict: CRLF line ends, one space after the version, three-digit
// status, token header names, no control characters in values, exactly one
// Encapsulated with offsets starting at 0 and increasing, header sections
// that end with an empty line. `lenient_sections` skips the check that each
// encapsulated header section is one head ending with CRLF CRLF.
Parse parse_head(std::string_view in, Response &out, std::string &why,
                 bool lenient_sections = false);

// Decodes a chunked body incrementally: hex chunk sizes, CRLF after every
// chunk, extensions only on the last chunk, no trailers. A `lenient` reader
// (for what real clients sent, not for the server's output) also accepts
// blanks before ';', extensions on data chunks, and trailer lines.
class ChunkedReader {
 public:
  using Sink = std::function<void(const char *, size_t)>;
  explicit ChunkedReader(bool lenient = false) : lenient_(lenient) {}
  // Consumes what it can of `in` (`used` says how much), giving data to
  // `sink`. kOk once the last chunk and its empty line were read.
  Parse read(std::string_view in, size_t &used, std::string &why, const Sink &sink);
  const std::string &last_ext() const { return last_ext_; }

 private:
  enum class St { kSize, kData, kDataEnd, kTrailer, kDone };
  bool lenient_;
  St st_ = St::kSize;
  uint64_t left_ = 0;
  std::string last_ext_;
};

// Reads one whole response from the start of `in` (head and body). On kOk,
// out.wire_bytes is its length.
Parse parse_response(std::string_view in, Response &out, std::string &why,
                     bool lenient_sections = false);

// Reads a whole stream: every response, and whether it ends in the middle of
// one (`partial_tail`; `consumed`, when given, gets the bytes of the
// complete responses). Returns false with `why` on a malformed response or
// on bytes after a response that said "Connection: close".
bool parse_stream(std::string_view in, std::vector<Response> &out, bool &partial_tail,
                  std::string &why, bool lenient_sections = false, size_t *consumed = nullptr);

// Parses an Encapsulated value into (entity, offset) pairs; false if it is
// not a list of name=decimal items.
bool parse_enc_list(std::string_view v, std::vector<std::pair<std::string, uint64_t>> &out);

// ---------------------------------------------------------------------------

inline bool tchar(unsigned char c) {
  if ((c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')) return true;
  return c != 0 &&
         std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

inline bool ieq(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i++) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x + 32);
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y + 32);
    if (x != y) return false;
  }
  return true;
}

inline const std::string *Response::header(std::string_view name) const {
  for (const auto &h : headers)
    if (ieq(h.first, name)) return &h.second;
  return nullptr;
}

inline size_t Response::header_count(std::string_view name) const {
  size_t n = 0;
  for (const auto &h : headers) n += ieq(h.first, name);
  return n;
}

inline std::string Response::value(std::string_view name, const std::string &absent) const {
  const std::string *v = header(name);
  return v ? *v : absent;
}

inline bool Response::conn_close() const {
  const std::string *c = header("Connection");
  return c && ieq(*c, "close");
}

inline std::string Response::section(std::string_view name) const {
  for (const auto &s : sections)
    if (s.first == name) return s.second;
  return std::string();
}

inline std::string Response::http_head() const {
  std::string h;
  for (const auto &s : sections) h += s.second;
  return h;
}

inline std::string Response::canonical() const {
  std::string s = status_line + "\n";
  for (const auto &h : headers)
    if (!ieq(h.first, "Date")) s += h.first + ": " + h.second + "\n";
  s += "[req-hdr]" + section("req-hdr") + "[res-hdr]" + section("res-hdr");
  if (has_body) s += "[body " + std::to_string(body.size()) + "]" + body + "[ext]" + last_chunk_ext;
  return s + "\n";
}

namespace detail {

// Finds the next CRLF from `pos`; a bare LF or CR before it is an error.
// Returns npos when more bytes are needed, and sets `bad` on a bare LF/CR.
inline size_t line_end(std::string_view in, size_t pos, bool &bad) {
  for (size_t i = pos; i < in.size(); i++) {
    if (in[i] == '\n') {
      bad = true;
      return std::string_view::npos;
    }
    if (in[i] == '\r') {
      if (i + 1 == in.size()) return std::string_view::npos;
      if (in[i + 1] != '\n') {
        bad = true;
        return std::string_view::npos;
      }
      return i;
    }
  }
  return std::string_view::npos;
}

inline int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

inline bool ctl(unsigned char c) { return (c < 0x20 && c != '\t') || c == 0x7f; }

inline std::string_view trim(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return v;
}

}  // namespace detail

inline bool parse_enc_list(std::string_view v, std::vector<std::pair<std::string, uint64_t>> &out) {
  out.clear();
  while (true) {
    size_t comma = v.find(',');
    std::string_view item = detail::trim(v.substr(0, comma));
    size_t eq = item.find('=');
    if (eq == std::string_view::npos) return false;
    std::string_view num = item.substr(eq + 1);
    if (num.empty() || num.size() > 12) return false;
    uint64_t off = 0;
    for (char c : num) {
      if (c < '0' || c > '9') return false;
      off = off * 10 + static_cast<uint64_t>(c - '0');
    }
    out.emplace_back(std::string(item.substr(0, eq)), off);
    if (comma == std::string_view::npos) return true;
    v.remove_prefix(comma + 1);
  }
}

inline Parse parse_head(std::string_view in, Response &out, std::string &why,
                        bool lenient_sections) {
  using detail::line_end;
  out = Response();
  bool bad = false;
  size_t pos = 0;
  size_t e = line_end(in, pos, bad);
  if (bad) return why = "bare CR or LF in the status line", Parse::kBad;
  if (e == std::string_view::npos) {
    // Check what there is so far, so that garbage is reported at once.
    std::string_view start = in.substr(0, 9);
    if (std::string_view("ICAP/1.0 ").substr(0, start.size()) != start)
      return why = "does not start with \"ICAP/1.0 \"", Parse::kBad;
    return Parse::kPartial;
  }
  std::string_view sl = in.substr(0, e);
  out.status_line.assign(sl);
  if (sl.size() < 14 || sl.substr(0, 9) != "ICAP/1.0 " || sl[12] != ' ')
    return why = "malformed status line: " + std::string(sl), Parse::kBad;
  for (int i = 9; i < 12; i++)
    if (sl[i] < '0' || sl[i] > '9') return why = "non-numeric status", Parse::kBad;
  out.code = (sl[9] - '0') * 100 + (sl[10] - '0') * 10 + (sl[11] - '0');
  if (out.code < 100) return why = "status below 100", Parse::kBad;
  for (size_t i = 13; i < sl.size(); i++)
    if (detail::ctl(static_cast<unsigned char>(sl[i])))
      return why = "control character in reason", Parse::kBad;
  pos = e + 2;

  // Header fields.
  while (true) {
    e = line_end(in, pos, bad);
    if (bad) return why = "bare CR or LF in an ICAP header", Parse::kBad;
    if (e == std::string_view::npos) return Parse::kPartial;
    std::string_view f = in.substr(pos, e - pos);
    pos = e + 2;
    if (f.empty()) break;
    size_t colon = f.find(':');
    if (colon == std::string_view::npos || colon == 0)
      return why = "header without a name: " + std::string(f), Parse::kBad;
    for (size_t i = 0; i < colon; i++)
      if (!tchar(static_cast<unsigned char>(f[i])))
        return why = "bad header name: " + std::string(f), Parse::kBad;
    std::string_view v = detail::trim(f.substr(colon + 1));
    for (unsigned char c : v)
      if (detail::ctl(c)) return why = "control character in header value", Parse::kBad;
    out.headers.emplace_back(std::string(f.substr(0, colon)), std::string(v));
  }

  if (out.code == 100) {
    // Our server's 100 Continue is the bare status line (RFC 3507 4.5).
    if (!out.headers.empty()) return why = "100 Continue with headers", Parse::kBad;
    out.wire_bytes = pos;
    return Parse::kOk;
  }
  if (out.header_count("Encapsulated") != 1)
    return why = "final response without exactly one Encapsulated header", Parse::kBad;
  out.encapsulated = *out.header("Encapsulated");

  std::vector<std::pair<std::string, uint64_t>> ents;
  if (!parse_enc_list(out.encapsulated, ents))
    return why = "bad Encapsulated: " + out.encapsulated, Parse::kBad;
  for (size_t i = 0; i < ents.size(); i++) {
    const std::string &name = ents[i].first;
    if (name != "req-hdr" && name != "res-hdr" && name != "req-body" && name != "res-body" &&
        name != "null-body" && name != "opt-body")
      return why = "unknown Encapsulated entity", Parse::kBad;
    if (i == 0 ? ents[i].second != 0 : ents[i].second <= ents[i - 1].second)
      return why = "Encapsulated offsets do not increase: " + out.encapsulated, Parse::kBad;
    if (i + 1 < ents.size() && name.find("-hdr") == std::string::npos)
      return why = "body entity not last in Encapsulated", Parse::kBad;
  }
  if (ents.back().first.find("-body") == std::string::npos)
    return why = "Encapsulated does not end with a body entity", Parse::kBad;
  out.body_kind = ents.back().first;
  out.has_body = out.body_kind != "null-body";
  if (out.code == 204 && (ents.size() != 1 || out.has_body))
    return why = "204 with an encapsulated message", Parse::kBad;

  // The header sections.
  uint64_t hdr_total = ents.back().second;
  if (in.size() - pos < hdr_total) return Parse::kPartial;
  for (size_t i = 0; i + 1 < ents.size(); i++) {
    std::string_view sec = in.substr(pos + ents[i].second, ents[i + 1].second - ents[i].second);
    if (!lenient_sections && (sec.size() < 4 || sec.substr(sec.size() - 4) != "\r\n\r\n" ||
                              sec.find("\r\n\r\n") != sec.size() - 4))
      return why = ents[i].first + " is not one header block ending with CRLF CRLF", Parse::kBad;
    if (ents[i].first == "res-hdr" && sec.substr(0, 5) != "HTTP/")
      return why = "res-hdr does not start with a status line", Parse::kBad;
    out.sections.emplace_back(ents[i].first, std::string(sec));
  }
  out.wire_bytes = pos + hdr_total;
  return Parse::kOk;
}

inline Parse ChunkedReader::read(std::string_view in, size_t &used, std::string &why,
                                 const Sink &sink) {
  using detail::line_end;
  size_t pos = 0;
  bool bad = false;
  Parse rc = Parse::kPartial;
  while (rc == Parse::kPartial) {
    if (st_ == St::kData) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(left_, in.size() - pos));
      if (n == 0) break;
      sink(in.data() + pos, n);
      pos += n;
      left_ -= n;
      if (left_ == 0) st_ = St::kDataEnd;
      continue;
    }
    if (st_ == St::kDataEnd) {
      if (in.size() - pos < 2) break;
      if (in.substr(pos, 2) != "\r\n") return why = "chunk data longer than its size", Parse::kBad;
      pos += 2;
      st_ = St::kSize;
      continue;
    }
    size_t e = line_end(in, pos, bad);
    if (bad) return why = "bare CR or LF in a chunk-size or trailer line", Parse::kBad;
    if (e == std::string_view::npos) {
      if (in.size() - pos > 4096) return why = "chunk-size line too long", Parse::kBad;
      // The empty line after the last chunk: report a stray byte at once.
      if (st_ == St::kTrailer && !lenient_ && pos < in.size() && in[pos] != '\r')
        return why = "trailer after last chunk", Parse::kBad;
      break;
    }
    std::string_view line = in.substr(pos, e - pos);
    pos = e + 2;
    if (st_ == St::kTrailer) {
      if (line.empty()) {
        st_ = St::kDone;
        rc = Parse::kOk;
      } else if (!lenient_) {
        return why = "no empty line after the last chunk", Parse::kBad;
      }
      continue;
    }
    size_t i = 0;
    uint64_t size = 0;
    while (i < line.size() && detail::hexval(line[i]) >= 0) {
      if (size >> 56) return why = "chunk size overflow", Parse::kBad;
      size = size * 16 + static_cast<uint64_t>(detail::hexval(line[i]));
      i++;
    }
    std::string_view ext = line.substr(i);
    if (lenient_) ext = detail::trim(ext);
    if (i == 0 || (!ext.empty() && ext.front() != ';'))
      return why = "bad chunk size line: " + std::string(line), Parse::kBad;
    if (size == 0) {
      ext.remove_prefix(ext.empty() ? 0 : 1);
      while (!ext.empty() && ext.front() == ' ') ext.remove_prefix(1);
      last_ext_.assign(ext);
      st_ = St::kTrailer;
      continue;
    }
    if (!ext.empty() && !lenient_) return why = "extension on a data chunk", Parse::kBad;
    left_ = size;
    st_ = St::kData;
  }
  used = pos;
  return rc;
}

inline Parse parse_response(std::string_view in, Response &out, std::string &why,
                            bool lenient_sections) {
  Parse p = parse_head(in, out, why, lenient_sections);
  if (p != Parse::kOk || !out.has_body) return p;
  ChunkedReader body;
  size_t used = 0;
  p = body.read(in.substr(out.wire_bytes), used, why, [&out](const char *d, size_t n) {
    out.body.append(d, n);
    out.body_bytes += n;
  });
  if (p != Parse::kOk) return p;
  out.last_chunk_ext = body.last_ext();
  out.wire_bytes += used;
  return Parse::kOk;
}

inline bool parse_stream(std::string_view in, std::vector<Response> &out, bool &partial_tail,
                         std::string &why, bool lenient_sections, size_t *consumed) {
  partial_tail = false;
  size_t pos = 0;
  bool ok = true;
  while (pos < in.size()) {
    if (!out.empty() && out.back().conn_close()) {
      why = "bytes after a response with Connection: close";
      ok = false;
      break;
    }
    Response r;
    Parse p = parse_response(in.substr(pos), r, why, lenient_sections);
    if (p == Parse::kBad) {
      why = "response #" + std::to_string(out.size()) + " at byte " + std::to_string(pos) + ": " +
            why;
      ok = false;
      break;
    }
    if (p == Parse::kPartial) {
      partial_tail = true;
      break;
    }
    pos += r.wire_bytes;
    out.push_back(std::move(r));
  }
  if (consumed) *consumed = pos;
  return ok;
}

}  // namespace icapwire

#endif
