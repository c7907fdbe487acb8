// SPDX-License-Identifier: MIT
#include "protocol/response_writer.hpp"

#include <cstdio>

#include "protocol/chunked.hpp"

namespace icap::detail {

namespace {
constexpr std::string_view kCRLF = "\r\n";
}  // namespace

const std::string &http_date(time_t now) {
  thread_local std::string cached;
  thread_local time_t cached_at = 0;
  if (now != cached_at || cached.empty()) {
    struct tm tm;
    gmtime_r(&now, &tm);
    char buf[64];
    size_t n = strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    cached.assign(buf, n);
    cached_at = now;
  }
  return cached;
}

void ResponseWriter::field(std::string &h, std::string_view name, std::string_view value) {
  h += name;
  h += ": ";
  h += value;
  h += kCRLF;
}

void ResponseWriter::head(int status, const StatusFields &sf, const HeaderList &fields,
                          HttpKind kind, std::string_view http_head, bool has_body) {
  std::string h;
  h.reserve(256 + http_head.size());
  h += "ICAP/1.0 ";
  h += std::to_string(status);
  h += ' ';
  h += icap_status_reason(status);
  h += kCRLF;
  if (!sf.istag.empty()) {
    h += "ISTag: \"";
    h += sf.istag;
    h += "\"\r\n";
  }
  field(h, "Date", http_date(sf.now));
  field(h, "Server", sf.server);
  field(h, "Connection", sf.close ? "close" : "keep-alive");
  for (const Header &f : fields.items()) field(h, f.name, f.value);
  // The offsets count from the start of the encapsulated part: the HTTP
  // head starts at 0, the body (or null-body) right after it.
  std::string_view k = kind == HttpKind::kResponse ? "res" : "req";
  h += "Encapsulated: ";
  if (!http_head.empty()) {
    h += k;
    h += "-hdr=0, ";
  }
  if (has_body) {
    h += k;
    h += "-body=";
  } else {
    h += "null-body=";
  }
  h += std::to_string(http_head.size());
  h += "\r\n\r\n";
  h += http_head;
  emit(h);
}

void ResponseWriter::continue_100() { emit("ICAP/1.0 100 Continue\r\n\r\n"); }

void ResponseWriter::chunk(std::string_view data) {
  if (data.empty()) return;  // a zero-size chunk would end the body
  std::string head;          // short: stays in the string's own buffer
  append_chunk_head(head, data.size());
  emit(head);
  emit(data);
  emit(kCRLF);
}

void ResponseWriter::chunk_zc(const char *p, size_t n, icap_release_cb release, void *user) {
  std::string head;
  append_chunk_head(head, n);
  emit(head);
  out_.append_zc(p, n, release, user);
  unwritten_ += n;
  emit(kCRLF);
}

void ResponseWriter::last_chunk() { emit("0\r\n\r\n"); }

void ResponseWriter::last_chunk_use_original(uint64_t offset) {
  emit("0; use-original-body=" + std::to_string(offset) + "\r\n\r\n");
}

std::string ResponseWriter::http_head_bytes(std::string_view start_line, const HeaderList &fields) {
  std::string h(start_line);
  h += kCRLF;
  for (const Header &f : fields.items()) {
    h += f.name;
    h += ": ";
    h += f.value;
    h += kCRLF;
  }
  h += kCRLF;
  return h;
}

}  // namespace icap::detail
