// SPDX-License-Identifier: MIT
/*
 * clamd_client.hpp - an asynchronous client for clamd's INSTREAM command.
 *
 * libicap runs handlers on its own worker loops and does not hand out those
 * loops (icap.h has no way to watch a file descriptor or arm a timer on
 * them), so a socket to clamd cannot be driven on the handler's thread.
 * Instead one ClamdClient owns ONE dedicated I/O thread with its own libuv
 * loop; every scan of every worker is a small state object driven there, so
 * there is no thread per scan and no blocking call anywhere. The handler
 * side only appends pieces to a Scan (a mutex and a uv_async_send) and is
 * woken through a callback that it turns into icap_request_post().
 *
 * The protocol (clamd(8), "INSTREAM" and "IDSESSION"): a connection starts
 * with "zIDSESSION\0", so that clamd keeps it open for more commands and it
 * can go back to a pool; each scan sends "zINSTREAM\0", then the body as
 * chunks of <4-byte big-endian length><bytes>, then a zero length. clamd
 * answers "<id>: stream: OK\0", "<id>: stream: <signature> FOUND\0" or
 * "... ERROR\0" once the whole stream has arrived: clamd scans a stream only
 * when it is complete, so there is no early verdict.
 *
 * Threads: everything public may be called from any thread. Callbacks
 * (Scan wakers, version replies) run on the I/O thread and must not block.
 */
#ifndef ICAP_CLAMAV_CLAMD_CLIENT_HPP
#define ICAP_CLAMAV_CLAMD_CLIENT_HPP

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace clamav {

/* Where clamd listens: "unix:/run/clamav/clamd.ctl" or "127.0.0.1:3310". */
struct Address {
  bool is_unix = false;
  std::string path;  // Unix socket
  sockaddr_storage inet{};
  std::string text;

  /* Parses (and, for HOST:PORT, resolves once, now). nullopt with `error`
   * set when it cannot. */
  static std::optional<Address> parse(std::string_view spec, std::string& error);
};

enum class Outcome { Pending, Clean, Infected, Error, Timeout };

struct Verdict {
  Outcome outcome = Outcome::Pending;
  std::string detail;  // the signature (Infected) or what went wrong
};

class ClamdClient;
struct Conn;
struct Io;
struct Loop;

/* One INSTREAM scan. Made by ClamdClient::scan(); the handler writes the
 * body into it piece by piece and finishes it, the I/O thread streams it to
 * clamd and fills in the verdict. */
class Scan {
 public:
  /* Queue a piece for clamd (moved, no copy). Ignored once done. */
  void write(std::string piece);
  /* No more pieces: send the end of the stream and wait for the verdict. */
  void finish();
  /* Abandon the scan: its connection is closed, never pooled. */
  void cancel();

  /* Bytes queued or being written, not yet taken by the kernel. */
  std::size_t pending() const;
  bool done() const;
  Verdict verdict() const;

  /* Arm a one-shot waker, called on the I/O thread when the scan is done,
   * or (drain = true) also when pending() fell to `low_water` or below.
   * Returns false, without keeping `waker`, if that is already the case
   * (the caller then goes on at once). At most one waker at a time. */
  bool arm(std::function<void()> waker, bool drain, std::size_t low_water);

 private:
  friend class ClamdClient;
  friend struct Io;
  explicit Scan(ClamdClient* client) : client_(client) {}
  bool ready_locked() const;
  /* I/O thread: complete with `v` (first call wins) and fire the waker. */
  void complete(Verdict v);
  /* I/O thread: fire the waker if its condition holds. */
  void maybe_wake();

  ClamdClient* client_;
  std::weak_ptr<Scan> self_;
  mutable std::mutex mu_;
  std::deque<std::string> queue_;  // not handed to the I/O thread yet
  std::size_t pending_ = 0;
  bool finish_ = false;
  bool cancelled_ = false;
  bool done_ = false;
  Verdict verdict_;
  std::function<void()> waker_;
  bool waker_drain_ = false;
  std::size_t low_water_ = 0;

  // I/O thread only.
  Conn* conn_ = nullptr;
  bool started_ = false;
  bool end_sent_ = false;
};

class ClamdClient {
 public:
  struct Options {
    Address address;
    std::uint64_t timeout_ms = 20000;    // each wait on clamd
    std::size_t pool_max = 32;           // idle connections kept
    std::uint64_t pool_idle_ms = 10000;  // reuse only if idle for less
  };

  explicit ClamdClient(Options opt);
  ~ClamdClient();
  ClamdClient(const ClamdClient&) = delete;
  ClamdClient& operator=(const ClamdClient&) = delete;

  /* Start the I/O thread. Throws std::runtime_error if libuv fails. */
  void start();
  /* Fail every scan still running (Error "shutting down"), close the
   * connections and join the I/O thread. Idempotent. */
  void stop();

  /* A new scan; its connection is taken from the pool or opened now. */
  std::shared_ptr<Scan> scan();

  /* Ask clamd for VERSION on a connection of its own; `cb(ok, text)` runs
   * on the I/O thread. Every `period_ms` again when period_ms > 0 (the
   * first time right away). */
  void version(std::function<void(bool ok, const std::string& text)> cb,
               std::uint64_t period_ms = 0);

  const Options& options() const { return opt_; }

 private:
  friend class Scan;
  friend struct Io;

  void kick(const std::shared_ptr<Scan>& s);  // any thread

  Options opt_;
  std::unique_ptr<Loop> loop_;  // libuv state, used on the I/O thread
  std::thread thread_;
};

}  // namespace clamav

#endif  // ICAP_CLAMAV_CLAMD_CLIENT_HPP
