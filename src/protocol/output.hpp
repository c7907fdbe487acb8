// SPDX-License-Identifier: MIT
// The bytes a session has produced and the server has not written yet.
#ifndef ICAP_PROTOCOL_OUTPUT_HPP
#define ICAP_PROTOCOL_OUTPUT_HPP

#include <deque>
#include <string>
#include <string_view>

#include "icap/icap.h"

namespace icap::detail {

// One piece of output: bytes we own, or borrowed bytes (zero-copy) with the
// callback that gives them back once written or dropped.
struct OutSeg {
  std::string buf;
  const char *zc = nullptr;
  size_t zc_len = 0;
  icap_release_cb release = nullptr;
  void *release_user = nullptr;

  const char *data() const { return zc ? zc : buf.data(); }
  size_t size() const { return zc ? zc_len : buf.size(); }
  // Gives borrowed bytes back; safe to call more than once.
  void release_now() {
    if (zc && release) {
      icap_release_cb cb = release;
      release = nullptr;
      cb(zc, zc_len, release_user);
    }
  }
};

class OutQueue {
 public:
  // Copies. Appends go into the last owned segment while it has room (or
  // while both are small), so a response head and its chunk framing end up
  // in one buffer; a large piece gets a segment sized for it plus framing,
  // so no buffer is ever reallocated and copied again.
  void append(std::string_view s) {
    if (s.empty()) return;
    if (!segs_.empty() && !segs_.back().zc) {
      std::string &b = segs_.back().buf;
      if (b.size() + s.size() <= b.capacity() || (b.size() < kSmall && s.size() < kSmall)) {
        b.append(s.data(), s.size());
        bytes_ += s.size();
        return;
      }
    }
    segs_.emplace_back();
    std::string &b = segs_.back().buf;
    b.reserve(s.size() < kSmall ? kSmall : s.size() + 64);
    b.append(s.data(), s.size());
    bytes_ += s.size();
  }
  void append_zc(const char *p, size_t n, icap_release_cb cb, void *user) {
    OutSeg s;
    s.zc = p;
    s.zc_len = n;
    s.release = cb;
    s.release_user = user;
    segs_.push_back(std::move(s));
    bytes_ += n;
  }
  bool empty() const { return segs_.empty(); }
  // Bytes queued here (not yet taken by the writer).
  size_t bytes() const { return bytes_; }
  std::deque<OutSeg> &segments() { return segs_; }
  void taken() { bytes_ = 0; }
  // Drops everything, releasing borrowed data.
  void discard() {
    for (auto &s : segs_) s.release_now();
    segs_.clear();
    bytes_ = 0;
  }

 private:
  static constexpr size_t kSmall = 4096;
  std::deque<OutSeg> segs_;
  size_t bytes_ = 0;
};

}  // namespace icap::detail

#endif
