// SPDX-License-Identifier: MIT
/*
 * scan_wait.hpp - `co_await ScanWait(req, scan, ...)`: suspend a coroutine
 * handler until clamd has news for its Scan, and resume it on the request's
 * own loop thread.
 *
 * The Scan is driven by ClamdClient's I/O thread. When the awaited condition
 * holds there (the verdict is in, or the bytes queued for clamd fell to the
 * low-water mark), the I/O thread calls the waker armed here, which hands
 * the resumption to the request's loop with icap_request_post() - the one
 * libicap call allowed from any thread. The reference that post() needs is
 * taken here, on the loop thread, before the coroutine suspends.
 */
#ifndef ICAP_CLAMAV_SCAN_WAIT_HPP
#define ICAP_CLAMAV_SCAN_WAIT_HPP

#include "clamd_client.hpp"

#include <icap/coro.hpp>

#include <coroutine>
#include <memory>

namespace clamav {

class ScanWait {
 public:
  /* drain = false: until the scan is done; drain = true: until it is done
   * or at most `low_water` bytes wait for clamd. */
  ScanWait(icap::Request req, Scan& scan, bool drain = false, std::size_t low_water = 0)
      : req_(req), scan_(scan), drain_(drain), low_water_(low_water) {}
  ScanWait(const ScanWait&) = delete;
  ScanWait& operator=(const ScanWait&) = delete;

  bool await_ready() const noexcept { return false; }

  bool await_suspend(std::coroutine_handle<> h) {
    handle_ = h;
    // std::function needs a copyable callable; the reference is consumed by
    // post() (or, if the server has stopped, released with the waker).
    auto ref = std::make_shared<icap::RequestRef>(req_.ref());
    return scan_.arm(
        [ref, this] {
          try {
            std::move(*ref).post([this](icap::Request&, int status) {
              status_ = status;
              handle_.resume();
            });
          } catch (...) {
            // The server stopped: no loop will run this coroutine again.
          }
        },
        drain_, low_water_);
  }

  /* Throws icap::Error when the transaction ended meanwhile (client gone,
   * timeout, server stop): the handler has nothing left to answer. */
  void await_resume() const {
    if (status_ < 0) throw icap::Error(status_, "waiting for clamd");
  }

 private:
  icap::Request req_;
  Scan& scan_;
  bool drain_;
  std::size_t low_water_;
  std::coroutine_handle<> handle_;
  int status_ = 0;
};

}  // namespace clamav

#endif  // ICAP_CLAMAV_SCAN_WAIT_HPP
