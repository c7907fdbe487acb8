// Drives an icap::detail::Session the way src/server/connection.cc does, but
// without sockets: input is fed only while the session wants it, output is
// "written" (appended to `wire`) and acknowledged with written(), a dead
// session gets no more writes, a closing one no more input. Used by the
// session and chunked fuzz targets.
#ifndef ICAP_TESTS_FUZZ_SESSION_DRIVER_HPP
#define ICAP_TESTS_FUZZ_SESSION_DRIVER_HPP

#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_common.hpp"
#include "icap_wire.hpp"
#include "protocol/session.hpp"

namespace fuzz {

class Driver final : public icap::detail::SessionHost {
 public:
  Driver(const icap::detail::ServiceTable *services, const icap::detail::Limits *limits)
      : limits_(limits), session_(this, services, limits) {
    session_.set_peer("192.0.2.1", 40000);
  }

  icap::detail::Session &session() { return session_; }
  const icap::detail::Limits &limits() const { return *limits_; }

  // SessionHost
  void session_output() override { notified_++; }
  void session_log(icap_log_level, const std::string &msg) override {
    FUZZ_CHECK(!msg.empty(), "empty log line");
    logs_++;
  }
  const std::string &session_server_header() override { return server_header_; }
  uint64_t session_connection_limit() override { return 10000; }
  bool session_draining() override { return draining; }
  time_t session_time() override { return 1764121555; }  // a fixed clock

  // Writes what the session queued, as Connection::flush() and on_write()
  // do, until nothing new is queued. Holding output (hold=true) leaves it
  // queued, as a client that does not read would.
  void drain(bool hold = false) {
    for (int guard = 0; guard < 100000; guard++) {
      if (session_.dead() || hold) return;
      icap::detail::OutQueue &q = session_.out();
      if (q.empty()) return;
      std::deque<icap::detail::OutSeg> taken;
      taken.swap(q.segments());
      q.taken();
      size_t bytes = 0;
      for (auto &seg : taken) {
        wire.append(seg.data(), seg.size());
        bytes += seg.size();
        seg.release_now();
      }
      session_.written(bytes);
    }
    FUZZ_CHECK(false, "output never stops growing");
  }

  // Feeds at most `max` bytes of `in` from `pos` if the session wants input.
  // Returns the bytes fed.
  size_t feed(std::string_view in, size_t &pos, size_t max) {
    if (!wants_input() || pos >= in.size()) return 0;
    size_t n = std::min(max, in.size() - pos);
    feed_copy(in.data() + pos, n);
    pos += n;
    return n;
  }

  // Feeds even though the session does not want input (to go on after a
  // known stall).
  size_t force_feed(std::string_view in, size_t &pos, size_t max) {
    if (stopped() || pos >= in.size()) return 0;
    size_t n = std::min(max, in.size() - pos);
    feed_copy(in.data() + pos, n);
    pos += n;
    return n;
  }

  // What the server would do: read only while the session wants input and
  // the connection is not closing (a closing connection lingers and drops
  // whatever comes).
  bool wants_input() const { return !stopped() && session_.wants_input(); }
  // True once the connection would be closed or lingering: dead, or
  // closing with everything written and no handler still to answer.
  bool stopped() const {
    if (session_.dead()) return true;
    return session_.closing() && const_cast<icap::detail::Session &>(session_).out().empty() &&
           session_.wait() != icap::detail::Session::Wait::kHandler;
  }

  // The wire so far as ICAP responses; fails on anything malformed.
  std::vector<icapwire::Response> check_wire(bool &partial_tail) const {
    std::vector<icapwire::Response> rs;
    std::string why;
    // Known bug "http-head-cr": a header section that does not end with
    // CRLF CRLF is accepted, and an echo sends it back as it came.
    FUZZ_CHECK(icapwire::parse_stream(wire, rs, partial_tail, why, !strict()),
               why + "\n  wire: " + show(wire, 600));
    return rs;
  }

  // The session may parse straight from the buffer given to feed(); like
  // the server's read buffer, this one is reused (scribbled over) and freed
  // as soon as feed() returns, so that ASan sees any pointer kept into it.
  void feed_copy(const char *p, size_t n) {
    std::unique_ptr<char[]> buf(new char[n]);
    memcpy(buf.get(), p, n);
    session_.feed(buf.get(), n);
    memset(buf.get(), 0xA5, n);
    fed_ += n;
  }

  bool draining = false;
  std::string wire;
  size_t fed() const { return fed_; }

 private:
  const icap::detail::Limits *limits_;
  icap::detail::Session session_;
  std::string server_header_ = "libicap-fuzz";
  size_t notified_ = 0, logs_ = 0, fed_ = 0;
};

}  // namespace fuzz

#endif
