// SPDX-License-Identifier: MIT
// The one place that writes ICAP response bytes: the status line with the
// fields every response carries (ISTag, Date, Server, Connection), the
// Encapsulated header with its offsets, and the chunked framing of a body
// (including "0; use-original-body=N" and the last-chunk). It owns the
// connection's output queue and counts what the server has not written yet.
#ifndef ICAP_PROTOCOL_RESPONSE_WRITER_HPP
#define ICAP_PROTOCOL_RESPONSE_WRITER_HPP

#include <cstdint>
#include <ctime>
#include <string>
#include <string_view>

#include "fields/header_list.hpp"
#include "icap/icap.h"
#include "protocol/output.hpp"

namespace icap::detail {

// What the fields that start every final response say.
struct StatusFields {
  std::string_view istag;   // without quotes; empty: the caller's fields carry it
  time_t now = 0;           // for Date
  std::string_view server;  // for Server
  bool close = false;       // Connection: close, else keep-alive
};

// Which HTTP message an ICAP response encapsulates.
enum class HttpKind { kRequest, kResponse };

class ResponseWriter {
 public:
  // A response head: the status line, the StatusFields, `fields`, the
  // Encapsulated header, the empty line, then `http_head` (an encapsulated
  // HTTP head, CRLF CRLF included, or empty for none). With `has_body`, a
  // chunked body of kind `kind` follows; without it the entity is null-body.
  void head(int status, const StatusFields &sf, const HeaderList &fields, HttpKind kind,
            std::string_view http_head, bool has_body);
  // "ICAP/1.0 100 Continue" and the empty line.
  void continue_100();
  // One body chunk, copied.
  void chunk(std::string_view data);
  // One body chunk whose data is borrowed until `release` is called.
  void chunk_zc(const char *p, size_t n, icap_release_cb release, void *user);
  // The last-chunk: "0", or "0; use-original-body=N" (RFC 3507 4.10.2).
  void last_chunk();
  void last_chunk_use_original(uint64_t offset);

  // An encapsulated HTTP head from a start line and fields.
  static std::string http_head_bytes(std::string_view start_line, const HeaderList &fields);

  OutQueue &queue() { return out_; }
  // Bytes queued or being written.
  size_t unwritten() const { return unwritten_; }
  // n bytes that were taken from queue() are now written.
  void written(size_t n) { unwritten_ = n > unwritten_ ? 0 : unwritten_ - n; }
  // Drops what is queued, giving borrowed data back.
  void discard() { out_.discard(); }

 private:
  void emit(std::string_view s) {
    out_.append(s);
    unwritten_ += s.size();
  }
  void field(std::string &h, std::string_view name, std::string_view value);

  OutQueue out_;
  size_t unwritten_ = 0;
};

// "Mon, 02 Jan 2006 15:04:05 GMT" for `now`, cached per second and thread.
const std::string &http_date(time_t now);

}  // namespace icap::detail

#endif
