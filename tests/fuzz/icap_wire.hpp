// A strict, independent reader of what an ICAP server writes: a sequence of
// ICAP responses (RFC 3507 section 4.3.3), each with its Encapsulated header
// sections and chunked body. The fuzz targets use it to check that the
// engine's output is well formed; the robustness tests use it to read the
// server's answers off a socket. It depends on nothing but the standard
// library, so that it never shares a bug with the code it checks.
#ifndef ICAP_TESTS_FUZZ_ICAP_WIRE_HPP
#define ICAP_TESTS_FUZZ_ICAP_WIRE_HPP

#include <cstdint>
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
  std::string body;            // decoded chunked body
  std::string last_chunk_ext;  // what follows "0" in the last-chunk line
  size_t wire_bytes = 0;       // bytes of the whole response on the wire

  // First value of `name` (case-insensitive) or nullptr.
  const std::string *header(std::string_view name) const;
  size_t header_count(std::string_view name) const;
  bool conn_close() const;
};

enum class Parse {
  kOk,       // one complete response was read
  kPartial,  // the bytes end inside a response (need more)
  kBad       // not a well-formed ICAP response; `why` says what
};

// Reads one response from the start of `in`. On kOk, out.wire_bytes is its
// length. Strict: CRLF line ends, one space after the version, three-digit
// status, token header names, no control characters in values, exactly one
// Encapsulated with offsets starting at 0 and increasing, header sections
// that end with an empty line, hex chunk sizes with CRLF after every chunk.
// `lenient_sections` skips the check that each encapsulated header section
// is one head ending with CRLF CRLF (the fuzz targets use it while a known
// bug lets such sections through, since the server echoes them as received).
Parse parse_response(std::string_view in, Response &out, std::string &why,
                     bool lenient_sections = false);

// Reads a whole stream: every response, and whether it ends in the middle of
// one (`partial_tail`). Returns false with `why` on a malformed response or
// on bytes after a response that said "Connection: close".
bool parse_stream(std::string_view in, std::vector<Response> &out, bool &partial_tail,
                  std::string &why, bool lenient_sections = false);

// ---------------------------------------------------------------------------

inline bool tchar(unsigned char c) {
  if ((c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
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

inline bool Response::conn_close() const {
  const std::string *c = header("Connection");
  return c && ieq(*c, "close");
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

}  // namespace detail

inline Parse parse_response(std::string_view in, Response &out, std::string &why,
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
  for (size_t i = 13; i < sl.size(); i++) {
    unsigned char c = static_cast<unsigned char>(sl[i]);
    if ((c < 0x20 && c != '\t') || c == 0x7f)
      return why = "control character in reason", Parse::kBad;
  }
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
    std::string_view v = f.substr(colon + 1);
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    for (unsigned char c : v)
      if ((c < 0x20 && c != '\t') || c == 0x7f)
        return why = "control character in header value", Parse::kBad;
    out.headers.emplace_back(std::string(f.substr(0, colon)), std::string(v));
  }

  if (out.code == 100) {
    if (out.header_count("Encapsulated"))
      return why = "100 Continue with Encapsulated", Parse::kBad;
    out.wire_bytes = pos;
    return Parse::kOk;
  }
  if (out.header_count("Encapsulated") != 1)
    return why = "final response without exactly one Encapsulated header", Parse::kBad;
  out.encapsulated = *out.header("Encapsulated");

  // Encapsulated: name=offset, ...
  struct Ent {
    std::string name;
    uint64_t off;
  };
  std::vector<Ent> ents;
  {
    std::string_view v = out.encapsulated;
    while (true) {
      size_t comma = v.find(',');
      std::string_view item = v.substr(0, comma);
      while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
      while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
      size_t eq = item.find('=');
      if (eq == std::string_view::npos) return why = "Encapsulated item without '='", Parse::kBad;
      std::string_view name = item.substr(0, eq), num = item.substr(eq + 1);
      if (num.empty() || num.size() > 12) return why = "bad Encapsulated offset", Parse::kBad;
      uint64_t off = 0;
      for (char c : num) {
        if (c < '0' || c > '9') return why = "bad Encapsulated offset", Parse::kBad;
        off = off * 10 + static_cast<uint64_t>(c - '0');
      }
      if (name != "req-hdr" && name != "res-hdr" && name != "req-body" && name != "res-body" &&
          name != "null-body" && name != "opt-body")
        return why = "unknown Encapsulated entity", Parse::kBad;
      if (ents.empty() ? off != 0 : off <= ents.back().off)
        return why = "Encapsulated offsets do not increase: " + out.encapsulated, Parse::kBad;
      ents.push_back(Ent{std::string(name), off});
      if (comma == std::string_view::npos) break;
      v.remove_prefix(comma + 1);
    }
  }
  for (size_t i = 0; i + 1 < ents.size(); i++)
    if (ents[i].name.find("-hdr") == std::string::npos)
      return why = "body entity not last in Encapsulated", Parse::kBad;
  if (ents.back().name.find("-body") == std::string::npos)
    return why = "Encapsulated does not end with a body entity", Parse::kBad;
  out.body_kind = ents.back().name;
  if (out.code == 204 && (ents.size() != 1 || out.body_kind != "null-body"))
    return why = "204 with an encapsulated message", Parse::kBad;

  // The header sections.
  uint64_t hdr_total = ents.back().off;
  if (in.size() - pos < hdr_total) return Parse::kPartial;
  for (size_t i = 0; i + 1 < ents.size(); i++) {
    std::string_view sec = in.substr(pos + ents[i].off, ents[i + 1].off - ents[i].off);
    if (!lenient_sections && (sec.size() < 4 || sec.substr(sec.size() - 4) != "\r\n\r\n" ||
                              sec.find("\r\n\r\n") != sec.size() - 4))
      return why = ents[i].name + " is not one header block ending with CRLF CRLF", Parse::kBad;
    if (ents[i].name == "res-hdr" && sec.substr(0, 5) != "HTTP/")
      return why = "res-hdr does not start with a status line", Parse::kBad;
    out.sections.emplace_back(ents[i].name, std::string(sec));
  }
  pos += hdr_total;

  if (out.body_kind == "null-body") {
    out.wire_bytes = pos;
    return Parse::kOk;
  }
  // Chunked body.
  while (true) {
    e = line_end(in, pos, bad);
    if (bad) return why = "bare CR or LF in a chunk-size line", Parse::kBad;
    if (e == std::string_view::npos) {
      if (in.size() - pos > 4096) return why = "chunk-size line too long", Parse::kBad;
      return Parse::kPartial;
    }
    std::string_view line = in.substr(pos, e - pos);
    size_t i = 0;
    uint64_t size = 0;
    while (i < line.size() && detail::hexval(line[i]) >= 0) {
      if (size >> 56) return why = "chunk size overflow", Parse::kBad;
      size = size * 16 + static_cast<uint64_t>(detail::hexval(line[i]));
      i++;
    }
    if (i == 0) return why = "bad chunk size: " + std::string(line), Parse::kBad;
    std::string_view ext = line.substr(i);
    if (!ext.empty() && ext.front() != ';')
      return why = "bad chunk extension: " + std::string(line), Parse::kBad;
    pos = e + 2;
    if (size == 0) {
      // The last chunk: no trailers from our server, just the empty line.
      if (in.size() - pos < 2) {
        if (in.size() > pos && in[pos] != '\r')
          return why = "trailer after last chunk", Parse::kBad;
        return Parse::kPartial;
      }
      if (in.substr(pos, 2) != "\r\n")
        return why = "no empty line after the last chunk", Parse::kBad;
      pos += 2;
      out.last_chunk_ext.assign(ext);
      out.wire_bytes = pos;
      return Parse::kOk;
    }
    if (!ext.empty()) return why = "extension on a data chunk", Parse::kBad;
    if (in.size() - pos < size + 2) return Parse::kPartial;
    out.body.append(in.substr(pos, size));
    pos += size;
    if (in.substr(pos, 2) != "\r\n") return why = "chunk data longer than its size", Parse::kBad;
    pos += 2;
  }
}

inline bool parse_stream(std::string_view in, std::vector<Response> &out, bool &partial_tail,
                         std::string &why, bool lenient_sections) {
  partial_tail = false;
  size_t pos = 0;
  while (pos < in.size()) {
    if (!out.empty() && out.back().conn_close()) {
      why = "bytes after a response with Connection: close";
      return false;
    }
    Response r;
    Parse p = parse_response(in.substr(pos), r, why, lenient_sections);
    if (p == Parse::kBad) {
      why = "response #" + std::to_string(out.size()) + " at byte " + std::to_string(pos) + ": " +
            why;
      return false;
    }
    if (p == Parse::kPartial) {
      partial_tail = true;
      return true;
    }
    pos += r.wire_bytes;
    out.push_back(std::move(r));
  }
  return true;
}

}  // namespace icapwire

#endif
