// SPDX-License-Identifier: MIT
// Incremental decoder for ICAP's chunked bodies (RFC 3507 section 4.5,
// RFC 9112 section 7.1), including the "ieof" extension.
#ifndef ICAP_PROTOCOL_CHUNKED_HPP
#define ICAP_PROTOCOL_CHUNKED_HPP

#include <cstddef>
#include <cstdint>
#include <string>

namespace icap::detail {

// Appends "<size in hex>\r\n", the head of one chunk of n bytes.
void append_chunk_head(std::string &out, size_t n);

class ChunkDecoder {
 public:
  enum Event {
    kNeedMore,  // all input consumed, nothing to report
    kData,      // data/len is body data (a span of the input)
    kEnd,       // the last chunk and its trailer were read; see ieof()
    kError      // malformed; error() says why. Sticky.
  };

  explicit ChunkDecoder(uint64_t max_chunk = 16u << 20) : max_chunk_(max_chunk) {}

  // Decodes from p[0..n). Sets *used to the bytes consumed. For kData,
  // *data/*len is a span inside p. Call again with the rest after an event.
  Event next(const char *p, size_t n, size_t *used, const char **data, size_t *len);

  // Restarts for a new body (or the continuation after a preview).
  void reset();
  bool ieof() const { return ieof_; }
  const std::string &error() const { return error_; }
  bool in_error() const { return state_ == kStateError; }
  // Bytes buffered inside the decoder (a partial chunk-size line).
  size_t buffered() const { return line_.size(); }

 private:
  enum State { kSizeLine, kData_, kDataCR, kDataLF, kTrailerLine, kDone, kStateError };
  Event fail(const char *why);
  bool parse_size_line();

  State state_ = kSizeLine;
  std::string line_;
  uint64_t remaining_ = 0;
  uint64_t max_chunk_;
  bool ieof_ = false;
  std::string error_;
};

}  // namespace icap::detail

#endif
