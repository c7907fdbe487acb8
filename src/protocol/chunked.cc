// SPDX-License-Identifier: MIT
#include "protocol/chunked.hpp"

#include <cstdio>
#include <string_view>

#include "fields/field_chars.hpp"

namespace icap::detail {

namespace {
// A chunk-size line with extensions, or a trailer line, longer than this is
// rejected: real clients send a few bytes ("fbff", "0; ieof").
constexpr size_t kMaxLine = 4096;
}  // namespace

void append_chunk_head(std::string &out, size_t n) {
  char buf[24];
  int len = snprintf(buf, sizeof buf, "%zx\r\n", n);
  out.append(buf, static_cast<size_t>(len));
}

void ChunkDecoder::reset() {
  state_ = kSizeLine;
  line_.clear();
  remaining_ = 0;
  ieof_ = false;
  error_.clear();
}

ChunkDecoder::Event ChunkDecoder::fail(const char *why) {
  state_ = kStateError;
  error_ = why;
  return kError;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = static_cast<char>(c | 0x20);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// chunk-size [ BWS ";" BWS ext-name [ BWS "=" BWS ext-value ] ]*
// Extensions are parsed as tokens, so "0;ieof", "0; ieof" and
// "0; foo=bar; ieof" all mean ieof, while "0; ieofx" does not.
bool ChunkDecoder::parse_size_line() {
  std::string_view s = line_;
  size_t i = 0;
  uint64_t size = 0;
  while (i < s.size() && hexval(s[i]) >= 0) {
    if (size > (max_chunk_ >> 4)) {
      error_ = "chunk size over the limit";
      return false;
    }
    size = size * 16 + static_cast<uint64_t>(hexval(s[i]));
    i++;
  }
  if (i == 0) {
    error_ = "bad chunk size";
    return false;
  }
  if (size > max_chunk_) {
    error_ = "chunk size over the limit";
    return false;
  }
  auto skip_ws = [&] {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) i++;
  };
  bool ieof = false;
  skip_ws();
  while (i < s.size()) {
    if (s[i] != ';') {
      error_ = "bad chunk extension";
      return false;
    }
    i++;
    skip_ws();
    size_t ns = i;
    while (i < s.size() && is_tchar(static_cast<unsigned char>(s[i]))) i++;
    if (i == ns) {
      error_ = "empty chunk extension name";
      return false;
    }
    std::string_view name = s.substr(ns, i - ns);
    skip_ws();
    if (i < s.size() && s[i] == '=') {
      i++;
      skip_ws();
      if (i < s.size() && s[i] == '"') {
        i++;
        while (i < s.size() && s[i] != '"') {
          if (s[i] == '\\') i++;
          if (i < s.size() && !is_field_char(static_cast<unsigned char>(s[i]))) {
            error_ = "control character in a chunk extension";
            return false;
          }
          i++;
        }
        if (i >= s.size()) {
          error_ = "unterminated quoted chunk extension";
          return false;
        }
        i++;
      } else {
        size_t vs = i;
        while (i < s.size() && is_tchar(static_cast<unsigned char>(s[i]))) i++;
        if (i == vs) {
          error_ = "empty chunk extension value";
          return false;
        }
      }
      skip_ws();
    }
    if (iequals(name, "ieof")) ieof = true;
  }
  remaining_ = size;
  if (size == 0) ieof_ = ieof;
  return true;
}

ChunkDecoder::Event ChunkDecoder::next(const char *p, size_t n, size_t *used, const char **data,
                                       size_t *len) {
  size_t i = 0;
  while (true) {
    switch (state_) {
      case kStateError:
        *used = i;
        return kError;
      case kDone:
        *used = i;
        return kEnd;
      case kSizeLine:
      case kTrailerLine: {
        // Collect one line; it must end in CRLF (a bare LF is rejected).
        while (i < n && p[i] != '\n') {
          if (line_.size() >= kMaxLine) {
            *used = i;
            return fail(state_ == kSizeLine ? "chunk-size line too long" : "trailer line too long");
          }
          line_.push_back(p[i++]);
        }
        if (i == n) {
          *used = i;
          return kNeedMore;
        }
        i++;  // the LF
        if (line_.empty() || line_.back() != '\r') {
          *used = i;
          return fail("missing CR before LF");
        }
        line_.pop_back();
        if (state_ == kTrailerLine) {
          bool empty = line_.empty();
          if (!empty) {
            // name ":" value, the name a token (RFC 9112 section 7.1.2).
            std::string_view line = line_;
            size_t colon = line.find(':');
            if (colon == std::string_view::npos || !is_token(line.substr(0, colon)) ||
                !is_field_value(line.substr(colon + 1))) {
              *used = i;
              return fail("malformed trailer line");
            }
          }
          line_.clear();
          if (empty) {
            state_ = kDone;
            *used = i;
            return kEnd;
          }
          continue;
        }
        if (!parse_size_line()) {
          *used = i;
          state_ = kStateError;
          return kError;
        }
        line_.clear();
        state_ = remaining_ == 0 ? kTrailerLine : kData_;
        continue;
      }
      case kData_: {
        if (i == n) {
          *used = i;
          return kNeedMore;
        }
        size_t take = n - i;
        if (take > remaining_) take = static_cast<size_t>(remaining_);
        *data = p + i;
        *len = take;
        remaining_ -= take;
        i += take;
        if (remaining_ == 0) state_ = kDataCR;
        *used = i;
        return kData;
      }
      case kDataCR:
      case kDataLF: {
        // The CRLF after a chunk's data, one byte at a time.
        if (i == n) {
          *used = i;
          return kNeedMore;
        }
        bool cr = state_ == kDataCR;
        if (p[i] != (cr ? '\r' : '\n')) {
          *used = i;
          return fail(cr ? "chunk data longer than its size" : "missing LF after chunk data");
        }
        i++;
        state_ = cr ? kDataLF : kSizeLine;
        continue;
      }
    }
  }
}

}  // namespace icap::detail
