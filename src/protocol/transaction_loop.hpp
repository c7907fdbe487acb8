// SPDX-License-Identifier: MIT
// The event loop a transaction runs on, as the engine sees it: the typed door
// through which icap_request_post() and icap_request_offload() reach the
// server layer. src/server implements it (one per worker); the engine never
// knows what a loop is made of, and runs without one in unit tests.
#ifndef ICAP_PROTOCOL_TRANSACTION_LOOP_HPP
#define ICAP_PROTOCOL_TRANSACTION_LOOP_HPP

#include "icap/icap.h"

namespace icap::detail {

class TransactionLoop {
 public:
  // Thread-safe: runs cb(req, status, user) on the loop thread. Takes the
  // caller's reference on success. Returns 0 or a negative ICAP code.
  virtual int post(icap_request *req, icap_post_cb cb, void *user) = 0;
  // Loop thread only: runs work(user) off the loop, then done() on it, with
  // the request referenced meanwhile. Returns 0 or a negative ICAP code.
  virtual int offload(icap_request *req, icap_work_cb work, icap_post_cb done, void *user) = 0;
  // The 0-based index of this loop among the server's workers.
  virtual unsigned loop_index() const = 0;

 protected:
  ~TransactionLoop() = default;
};

}  // namespace icap::detail

#endif
