// SPDX-License-Identifier: MIT
// The one engine driver of the tests, and the only SessionHost outside
// src/: it owns an icap::detail::Session and drives it the way
// src/server/connection.cc does, but without sockets. Input is fed from a
// buffer that is scribbled over and freed as soon as feed() returns (as the
// server's read buffer is reused), output is "written" (appended to `wire`)
// and acknowledged with written(), a dead session gets no more writes and a
// closing one no more input. The unit tests, the capture replays and the
// fuzz targets all drive the engine through it, so that a change of the
// engine's host interface is made here once.
#ifndef ICAP_TESTS_COMMON_ENGINE_DRIVER_HPP
#define ICAP_TESTS_COMMON_ENGINE_DRIVER_HPP

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <deque>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "protocol/limits.hpp"
#include "protocol/output.hpp"
#include "protocol/service.hpp"
#include "protocol/session.hpp"

namespace icaptest {

using icap::detail::Limits;
using icap::detail::ServiceTable;
using icap::detail::Session;

// The name of what a session waits for, in messages and summaries.
inline const char *wait_name(Session::Wait w) {
  using W = Session::Wait;
  static const std::pair<W, const char *> kNames[] = {
      {W::kNone, "none"}, {W::kIdle, "idle"},       {W::kHead, "head"},
      {W::kBody, "body"}, {W::kHandler, "handler"}, {W::kOutput, "output"}};
  for (const auto &n : kNames)
    if (n.first == w) return n.second;
  return "?";
}

// Adds service `name` to `table` with `handler` (and `user`) for each of
// `methods`, as icap_server_add_service() and icap_service_set_handler()
// would. Returns the service, for further settings.
inline icap_service *add_service(ServiceTable &table, const std::string &name,
                                 const std::string &istag,
                                 std::initializer_list<icap_method> methods,
                                 icap_handler_cb handler, void *user) {
  auto svc = std::make_unique<icap_service>();
  svc->name = name;
  svc->istag = istag;
  for (icap_method m : methods) {
    svc->handler[m] = handler;
    svc->handler_user[m] = user;
  }
  icap_service *raw = svc.get();
  table.emplace(name, std::move(svc));
  return raw;
}

class EngineDriver final : public icap::detail::SessionHost {
 public:
  EngineDriver(const ServiceTable *services, const Limits *limits)
      : session_(std::make_unique<Session>(this, services, limits)) {
    session_->set_peer("192.0.2.1", 40000);
  }
  ~EngineDriver() override { close(); }
  EngineDriver(const EngineDriver &) = delete;
  EngineDriver &operator=(const EngineDriver &) = delete;

  Session &session() { return *session_; }
  bool open() const { return session_ != nullptr; }
  // Destroys the session now, as a closed connection does: a transaction
  // still under way ends with ECONNRESET.
  void close() { session_.reset(); }

  // What the host tells the session.
  std::string server_header = "libicap-test/1.0";
  uint64_t connection_limit = 10000;
  bool draining = false;
  time_t now = 1764121555;  // Wed, 26 Nov 2025 01:45:55 GMT: the engine's fixed clock
  // What the session told the host.
  size_t output_calls = 0;
  size_t empty_log_lines = 0;
  bool runaway = false;           // drain() gave up: the output never stopped growing
  std::vector<std::string> logs;  // the first kMaxLogs lines
  static constexpr size_t kMaxLogs = 1000;

  // Everything written to the client so far.
  std::string wire;

  // SessionHost
  void session_output() override { output_calls++; }
  void session_log(icap_log_level, const std::string &msg) override {
    if (msg.empty()) empty_log_lines++;
    if (logs.size() < kMaxLogs) logs.push_back(msg);
  }
  const std::string &session_server_header() override { return server_header; }
  uint64_t session_connection_limit() override { return connection_limit; }
  bool session_draining() override { return draining; }
  time_t session_time() override { return now; }

  // Writes what the session queued, as Connection::flush() and on_write()
  // do: every segment, then out().taken(), then written(n), until nothing
  // new is queued (written() may let a paused echo produce more). A dead
  // session is not written to, so its output stays queued. Holding output
  // (hold=true) leaves it queued, as a client that does not read would.
  // Returns false (and sets `runaway`) if the output never stopped growing.
  bool drain(bool hold = false) {
    for (int guard = 0; guard < 100000; guard++) {
      if (!session_ || session_->dead() || hold) return true;
      icap::detail::OutQueue &q = session_->out();
      if (q.empty()) return true;
      std::deque<icap::detail::OutSeg> taken;
      taken.swap(q.segments());
      q.taken();
      size_t bytes = 0;
      for (auto &seg : taken) {
        wire.append(seg.data(), seg.size());
        bytes += seg.size();
        seg.release_now();
      }
      session_->written(bytes);
    }
    runaway = true;
    return false;
  }

  // Feeds n bytes through a buffer that is reused and freed as soon as
  // feed() returns, so that ASan sees any pointer the session kept into it.
  void feed(const char *p, size_t n) {
    std::unique_ptr<char[]> buf(new char[n ? n : 1]);
    memcpy(buf.get(), p, n);
    session_->feed(buf.get(), n);
    memset(buf.get(), 0xA5, n);
    fed_ += n;
  }
  void feed(std::string_view in) { feed(in.data(), in.size()); }

  // Feeds at most `max` bytes of `in` from `pos` if the session wants input.
  // Returns the bytes fed.
  size_t feed_from(std::string_view in, size_t &pos, size_t max) {
    if (!wants_input()) return 0;
    return force_feed(in, pos, max);
  }
  // Feeds even though the session does not want input (to go on after a
  // known stall).
  size_t force_feed(std::string_view in, size_t &pos, size_t max) {
    if (stopped() || pos >= in.size()) return 0;
    size_t n = std::min(max, in.size() - pos);
    feed(in.data() + pos, n);
    pos += n;
    return n;
  }

  // What the server would do: read only while the session wants input and
  // the connection is not closing (a closing connection lingers and drops
  // whatever comes).
  bool wants_input() const { return !stopped() && session_->wants_input(); }
  // True once the connection would be closed or lingering: dead, or
  // closing with everything written and no handler still to answer.
  bool stopped() const {
    if (!session_ || session_->dead()) return true;
    return session_->closing() && session_->out().empty() &&
           session_->wait() != Session::Wait::kHandler;
  }
  size_t fed() const { return fed_; }

 private:
  std::unique_ptr<Session> session_;
  size_t fed_ = 0;
};

}  // namespace icaptest

#endif
