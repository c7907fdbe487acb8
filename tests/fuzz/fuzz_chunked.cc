// SPDX-License-Identifier: MIT
// Fuzz target (b): the chunked body decoder, alone and inside a session with
// a preview.
//
// Input: byte 0 selects the mode and the chunk-size limit, byte 1 a split
// pattern (decoder mode) or the preview size (session mode: 0..199 as is,
// 200..254 mean (b-200)*64, 255 no preview); the rest is the chunked body.
//
// Decoder mode checks ChunkDecoder against a small strict reference decoder
// written here from RFC 9112 section 7.1: both must accept or reject the
// same input, yield the same data, stop at the same byte and agree on ieof;
// and the decoder must give the same result however the input is split
// (whole, one byte at a time, or in the pieces byte 1 selects). It also
// checks the decoder's own contract: kNeedMore consumes everything, kData is
// a non-empty span inside the input, errors are sticky.
//
// Session mode sends a RESPMOD head with "Preview: P" followed by the fuzzed
// body to a Session whose handler reads with read_chunk() and, at the end of
// the preview, answers or asks for the rest as byte 0 says. It checks that
// at most P bytes are delivered as preview, that the flags make sense (IEOF
// and PREVIEW_END only after a preview, END last, nothing after END), that
// the done callback runs once, and that the output is well-formed ICAP with
// no 100 Continue after an ieof.
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_common.hpp"
#include "protocol/chunked.hpp"
#include "protocol/request_head.hpp"
#include "fuzz_engine.hpp"

using namespace icap::detail;

namespace {

enum class Res { kNeedMore, kEnd, kError, kUnknown };

struct Decoded {
  Res res = Res::kNeedMore;
  std::string data;
  size_t stop = 0;  // bytes consumed up to the end / error
  bool ieof = false;
};

const char *name(Res r) {
  switch (r) {
    case Res::kNeedMore:
      return "need-more";
    case Res::kEnd:
      return "end";
    case Res::kError:
      return "error";
    case Res::kUnknown:
      return "unknown";
  }
  return "?";
}

// ---- the reference: RFC 9112 7.1 chunked-body, strict, plus the decoder's
// documented limits (a line, CR included, of at most 4096 bytes; chunk sizes
// up to max_chunk).
constexpr size_t kMaxLine = 4096;

// The token check of the independent response reader, not the engine's.
bool ref_tchar(unsigned char c) { return icapwire::tchar(c); }

// Skips blanks (SP, HTAB) from i.
size_t ref_blanks(std::string_view s, size_t i) {
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) i++;
  return i;
}

// The token at s[i..] ("" if none); i moves past it.
std::string_view ref_token(std::string_view s, size_t &i) {
  size_t start = i;
  while (i < s.size() && ref_tchar(static_cast<unsigned char>(s[i]))) i++;
  return s.substr(start, i - start);
}

// Parses a chunk-size line (without CRLF). Returns -1 bad, 0 ok, 1 when the
// line holds a control character inside a quoted extension value, where
// the reference does not judge (see the report: the decoder accepts those).
int ref_size_line(std::string_view s, uint64_t max_chunk, uint64_t &size, bool &ieof) {
  size_t i = 0;
  size = 0;
  bool overflow = false;
  while (i < s.size() && isxdigit(static_cast<unsigned char>(s[i]))) {
    unsigned v = static_cast<unsigned>(
        isdigit(static_cast<unsigned char>(s[i])) ? s[i] - '0' : (s[i] | 0x20) - 'a' + 10);
    if (size > (UINT64_MAX - v) / 16)
      overflow = true;
    else
      size = size * 16 + v;
    i++;
  }
  if (i == 0 || overflow || size > max_chunk) return -1;
  ieof = false;
  bool ctl_in_quote = false;
  for (i = ref_blanks(s, i); i < s.size(); i = ref_blanks(s, i)) {
    if (s[i] != ';') return -1;
    i = ref_blanks(s, i + 1);
    std::string_view nm = ref_token(s, i);
    if (nm.empty()) return -1;
    i = ref_blanks(s, i);
    if (i < s.size() && s[i] == '=') {
      i = ref_blanks(s, i + 1);
      if (i < s.size() && s[i] == '"') {
        i++;
        bool closed = false;
        while (i < s.size()) {
          unsigned char c = static_cast<unsigned char>(s[i]);
          if (c == '"') {
            closed = true;
            i++;
            break;
          }
          if (c == '\\') {
            i++;
            if (i >= s.size()) return -1;
            c = static_cast<unsigned char>(s[i]);
          }
          if ((c < 0x20 && c != '\t') || c == 0x7f) ctl_in_quote = true;
          i++;
        }
        if (!closed) return -1;
      } else if (ref_token(s, i).empty()) {
        return -1;
      }
    }
    if (nm.size() == 4 && (nm[0] | 0x20) == 'i' && (nm[1] | 0x20) == 'e' && (nm[2] | 0x20) == 'o' &&
        (nm[3] | 0x20) == 'f')
      ieof = true;
  }
  return ctl_in_quote ? 1 : 0;
}

Decoded reference(std::string_view in, uint64_t max_chunk) {
  Decoded d;
  size_t pos = 0;
  auto line = [&](std::string_view &out) -> int {  // 1 ok, 0 need more, -1 error
    size_t lf = in.find('\n', pos);
    size_t len = (lf == std::string_view::npos ? in.size() : lf) - pos;
    if (len > kMaxLine) return -1;
    if (lf == std::string_view::npos) return 0;
    if (len == 0 || in[lf - 1] != '\r') return -1;
    out = in.substr(pos, len - 1);
    pos = lf + 1;
    return 1;
  };
  while (true) {
    std::string_view l;
    int r = line(l);
    if (r <= 0) {
      d.res = r == 0 ? Res::kNeedMore : Res::kError;
      d.stop = pos;
      return d;
    }
    uint64_t size;
    bool ieof;
    int sr = ref_size_line(l, max_chunk, size, ieof);
    if (sr < 0) {
      d.res = Res::kError;
      return d;
    }
    if (sr > 0) {
      d.res = Res::kUnknown;
      return d;
    }
    if (size == 0) {
      d.ieof = ieof;
      while (true) {
        std::string_view t;
        int tr = line(t);
        if (tr <= 0) {
          d.res = tr == 0 ? Res::kNeedMore : Res::kError;
          return d;
        }
        if (t.empty()) {
          d.res = Res::kEnd;
          d.stop = pos;
          return d;
        }
        if (t.find(':') == std::string_view::npos) {
          d.res = Res::kError;
          return d;
        }
      }
    }
    if (in.size() - pos < size) {
      d.data.append(in.substr(pos));
      d.res = Res::kNeedMore;
      return d;
    }
    d.data.append(in.substr(pos, size));
    pos += size;
    if (pos < in.size() && in[pos] != '\r') return d.res = Res::kError, d;
    if (pos + 1 < in.size() && in[pos + 1] != '\n') return d.res = Res::kError, d;
    if (in.size() - pos < 2) return d.res = Res::kNeedMore, d;
    pos += 2;
  }
}

// ---- the decoder, fed in pieces.
Decoded decode(std::string_view in, uint64_t max_chunk, const std::vector<size_t> &pieces) {
  ChunkDecoder dec(max_chunk);
  Decoded d;
  size_t pos = 0, pi = 0;
  while (true) {
    size_t plen = pieces.empty() ? in.size() - pos : pieces[pi++ % pieces.size()];
    if (plen == 0) plen = 1;
    if (plen > in.size() - pos) plen = in.size() - pos;
    const char *p = in.data() + pos;
    size_t n = plen, off = 0;
    while (true) {
      size_t used = 0, len = 0;
      const char *data = nullptr;
      ChunkDecoder::Event ev = dec.next(p + off, n - off, &used, &data, &len);
      FUZZ_CHECK(used <= n - off, "used past the input");
      off += used;
      if (ev == ChunkDecoder::kData) {
        FUZZ_CHECK(len > 0 && used > 0, "empty data event");
        FUZZ_CHECK(data >= p && data + len <= p + off, "data span outside the consumed input");
        d.data.append(data, len);
        continue;
      }
      if (ev == ChunkDecoder::kNeedMore) {
        FUZZ_CHECK(off == n, "kNeedMore left input unconsumed");
        break;
      }
      d.stop = pos + off;
      if (ev == ChunkDecoder::kEnd) {
        d.res = Res::kEnd;
        d.ieof = dec.ieof();
        // Sticky: asking again reports the end without consuming.
        size_t u2 = 99;
        FUZZ_CHECK(dec.next(p + off, n - off, &u2, &data, &len) == ChunkDecoder::kEnd && u2 == 0,
                   "end is not sticky");
        return d;
      }
      FUZZ_CHECK(ev == ChunkDecoder::kError, "unknown event");
      FUZZ_CHECK(!dec.error().empty() && dec.in_error(), "error without a reason");
      size_t u2 = 99;
      FUZZ_CHECK(dec.next(p + off, n - off, &u2, &data, &len) == ChunkDecoder::kError && u2 == 0,
                 "error is not sticky");
      d.res = Res::kError;
      return d;
    }
    pos += plen;
    if (pos >= in.size()) {
      d.res = Res::kNeedMore;
      d.stop = pos;
      return d;
    }
  }
}

void decoder_mode(std::string_view body, uint64_t max_chunk, uint8_t split) {
  Decoded whole = decode(body, max_chunk, {});
  Decoded bytes = decode(body, max_chunk, {1});
  std::vector<size_t> pieces;
  for (unsigned k = 0; k < 5; k++) pieces.push_back(1 + ((split * (k + 3)) % 37));
  Decoded split_d = decode(body, max_chunk, pieces);

  for (const Decoded *o : {&bytes, &split_d}) {
    FUZZ_CHECK(o->res == whole.res, std::string("split changes the result: ") + name(whole.res) +
                                        " vs " + name(o->res) + " for " + fuzz::show(body));
    FUZZ_CHECK(o->data == whole.data, "split changes the data for " + fuzz::show(body));
    if (whole.res == Res::kEnd) {
      FUZZ_CHECK(o->stop == whole.stop && o->ieof == whole.ieof, "split changes the end");
    }
  }
  Decoded ref = reference(body, max_chunk);
  if (ref.res == Res::kUnknown) return;
  FUZZ_CHECK(ref.res == whole.res,
             std::string("decoder says ") + name(whole.res) + ", reference says " + name(ref.res) +
                 " for " + fuzz::show(body) + " (max chunk " + std::to_string(max_chunk) + ")");
  if (ref.res != Res::kError) FUZZ_CHECK(ref.data == whole.data, "data differs from the reference");
  if (ref.res == Res::kEnd)
    FUZZ_CHECK(ref.stop == whole.stop && ref.ieof == whole.ieof, "end differs from the reference");
}

// ---- session mode.
struct PreviewState {
  uint8_t policy = 0;
  int64_t preview = -1;
  uint64_t preview_bytes = 0, total = 0;
  bool preview_over = false, end = false, ieof_flag = false;
  bool dispatched = false;
  int done_calls = 0, done_status = 1;
  int continues = 0;
};

void on_done(icap_request *, int status, void *user) {
  auto *st = static_cast<PreviewState *>(user);
  st->done_calls++;
  st->done_status = status;
}

void on_body(icap_request *req, int status, const char *data, size_t len, void *user);

void read_more(icap_request *req, PreviewState *st) {
  int rc = icap_request_read_chunk(req, on_body, st);
  FUZZ_CHECK(rc == 0, std::string("read_chunk: ") + icap_err_name(rc));
}

void on_body(icap_request *req, int status, const char *data, size_t len, void *user) {
  auto *st = static_cast<PreviewState *>(user);
  FUZZ_CHECK(!st->end, "body callback after END");
  FUZZ_CHECK(st->done_calls == 0, "body callback after done");
  if (status < 0) {
    FUZZ_CHECK(status == ICAP_EPROTO || status == ICAP_ECONNRESET || status == ICAP_ECANCELED ||
                   status == ICAP_ETIMEDOUT,
               std::string("read error ") + icap_err_name(status));
    FUZZ_CHECK(data == nullptr && len == 0, "data with an error");
    st->end = true;
    return;
  }
  FUZZ_CHECK((status & ~7) == 0, "unknown flags");
  FUZZ_CHECK(len == 0 || data, "null data");
  st->total += len;
  if (st->preview >= 0 && !st->preview_over) {
    st->preview_bytes += len;
    FUZZ_CHECK(static_cast<int64_t>(st->preview_bytes) <= st->preview,
               "more preview bytes than announced");
  }
  if (status & (ICAP_BODY_IEOF | ICAP_BODY_PREVIEW_END)) {
    FUZZ_CHECK(!st->preview_over, "a second preview end");
    FUZZ_CHECK(status & ICAP_BODY_END, "preview end without END");
    FUZZ_CHECK((status & ICAP_BODY_IEOF) == 0 || (status & ICAP_BODY_PREVIEW_END) == 0,
               "IEOF and PREVIEW_END together");
    st->preview_over = true;
  }
  if (status & ICAP_BODY_IEOF) {
    st->ieof_flag = true;
    FUZZ_CHECK(icap_request_ieof(req) == 1, "IEOF flag but icap_request_ieof() is 0");
    FUZZ_CHECK(icap_request_continue(req) == ICAP_ESTATE, "continue allowed after ieof");
  }
  if (!(status & ICAP_BODY_END)) {
    read_more(req, st);
    return;
  }
  if (status & ICAP_BODY_PREVIEW_END) {
    switch (st->policy % 4) {
      case 0: {  // read the rest: read_chunk sends 100 Continue itself
        st->continues++;
        read_more(req, st);
        return;
      }
      case 1: {
        int rc = icap_request_no_adaptation(req);  // 204 during a preview
        FUZZ_CHECK(rc == 0, std::string("no_adaptation after preview: ") + icap_err_name(rc));
        FUZZ_CHECK(icap_request_response_code(req) == 204, "not 204 in a preview");
        st->end = true;
        return;
      }
      case 2: {
        int rc = icap_request_continue(req);
        FUZZ_CHECK(rc == 0, std::string("continue: ") + icap_err_name(rc));
        st->continues++;
        read_more(req, st);
        return;
      }
      default: {
        int rc = icap_request_send_error(req, 403);
        FUZZ_CHECK(rc == 0, std::string("send_error: ") + icap_err_name(rc));
        st->end = true;
        return;
      }
    }
  }
  st->end = true;
  int rc = icap_request_set_http_status(req, "HTTP/1.1 200 OK");
  if (rc == 0) rc = icap_request_send_headers(req, 1);
  std::string summary = std::to_string(st->total);
  if (rc == 0) rc = icap_request_send_chunk(req, summary.data(), summary.size());
  if (rc == 0) rc = icap_request_end(req);
  FUZZ_CHECK(rc == 0, std::string("reply: ") + icap_err_name(rc));
}

int preview_handler(icap_request *req, void *user) {
  auto *st = static_cast<PreviewState *>(user);
  icap_request_on_done(req, on_done, st);
  st->dispatched = true;
  st->preview = icap_request_preview(req);
  FUZZ_CHECK(icap_request_in_preview(req) == (st->preview >= 0), "in_preview at dispatch");
  read_more(req, st);
  return 0;
}

void session_mode(std::string_view body, uint64_t max_chunk, uint8_t policy, uint8_t preview) {
  Limits limits;
  limits.v[ICAP_LIMIT_CHUNK_SIZE] = max_chunk;
  ServiceTable services;
  PreviewState st;
  st.policy = policy;
  icaptest::add_service(services, "echo", "fuzz", {ICAP_METHOD_RESPMOD}, preview_handler, &st);

  static const char kHttp[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n";
  std::string in = "RESPMOD icap://127.0.0.1/echo ICAP/1.0\r\nHost: 127.0.0.1\r\n";
  in += "Encapsulated: res-hdr=0, res-body=" + std::to_string(sizeof kHttp - 1) + "\r\n";
  // 0..199 as is, 200..254 in steps of 64 (up to 3456), 255: no preview.
  if (preview != 255)
    in += "Preview: " + std::to_string(preview < 200 ? preview : (preview - 200) * 64) + "\r\n";
  if (policy & 8) in += "Allow: 204\r\n";
  in += "\r\n";
  in += kHttp;
  in.append(body);

  {
    fuzz::Driver d(&services, &limits);
    size_t pos = 0;
    size_t step = 1 + (policy >> 4) * 7;
    for (int guard = 0; guard < 1000000 && !d.stopped(); guard++) {
      size_t n = d.feed_from(in, pos, step);
      d.drain();
      if (n == 0) break;
    }
    if (!d.stopped()) d.session().eof();
    d.drain();
    bool partial = false;
    std::vector<icapwire::Response> rs = fuzz::check_wire(d, partial);
    // Bytes after the body are a next request (usually garbage, a 400);
    // only the answers to the first request are looked at.
    int continues = 0;
    for (const auto &r : rs) {
      if (r.code != 100) break;
      continues++;
      FUZZ_CHECK(!st.ieof_flag, "100 Continue after ieof");
    }
    for (size_t i = continues + 1; i < rs.size(); i++)
      FUZZ_CHECK(rs[i].code != 100, "100 Continue after the final response");
    FUZZ_CHECK(continues <= 1, "more than one 100 Continue");
    if (st.preview < 0) FUZZ_CHECK(continues == 0, "100 Continue without preview");
    if (!d.session().dead()) FUZZ_CHECK(!partial, "truncated response on a live connection");
  }  // the session is destroyed here, which ends any transaction
  FUZZ_CHECK(st.done_calls <= 1, "done called more than once");
  FUZZ_CHECK(st.dispatched, "the handler was not called");
  FUZZ_CHECK(st.done_calls == 1, "done never called");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz::Control c(data, size);
  uint8_t mode = c.byte();
  uint8_t arg = c.byte();
  std::string_view body(reinterpret_cast<const char *>(data) + c.consumed(), size - c.consumed());
  static const uint64_t kMax[4] = {16u << 20, 16, 4096, UINT64_MAX};
  uint64_t max_chunk = kMax[mode & 3];
  if (mode & 4) {
    if (max_chunk == UINT64_MAX) max_chunk = 1u << 20;
    session_mode(body, max_chunk, static_cast<uint8_t>(mode >> 3), arg);
  } else {
    decoder_mode(body, max_chunk, arg);
  }
  return 0;
}
