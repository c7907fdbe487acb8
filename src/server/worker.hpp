// SPDX-License-Identifier: MIT
// One event loop on one thread: its listening handles, its connections, and
// the queue through which other threads post work to it.
#ifndef ICAP_SERVER_WORKER_HPP
#define ICAP_SERVER_WORKER_HPP

#include <uv.h>

#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

#include "protocol/transaction_loop.hpp"
#include "server/server.hpp"

namespace icap::detail {

class Connection;

class Worker final : public TransactionLoop {
 public:
  Worker(icap_server *srv, unsigned index);
  ~Worker();

  // Sets up the loop and adopts one listening socket per server address.
  // Returns 0 or a negative ICAP code; every socket in `fds` is then owned
  // by the worker or closed. A worker whose init failed must still run()
  // (after a stop request) so that what it did set up is closed.
  int init(const std::vector<int> &fds) noexcept;
  // Runs the loop until stop and drain finish (on the calling thread).
  void run() noexcept;
  // Thread-safe: wake the loop to look at the stop flag and the post queue.
  // Async-signal-safe (no lock): icap_server_stop() uses it.
  void wake() {
    if (async_alive_.load()) uv_async_send(&async_);
  }

  // TransactionLoop
  int post(icap_request *req, icap_post_cb cb, void *user) override;
  int offload(icap_request *req, icap_work_cb work, icap_post_cb done, void *user) override;
  unsigned loop_index() const override { return index_; }

  icap_server *server() const { return srv_; }
  unsigned index() const { return index_; }
  uv_loop_t *loop() { return &loop_; }
  bool draining() const { return draining_; }
  uint64_t drain_started() const { return drain_started_; }  // loop time, ms
  char *read_buffer() { return read_buf_; }
  static constexpr size_t kReadBufferSize = 64 * 1024;

  // Connections with output to write at the end of the current callback.
  // Neither allocates nor throws.
  void mark_dirty(Connection *c) noexcept;
  void unmark_dirty(Connection *c) noexcept;
  void flush_dirty() noexcept;
  void connection_closed(Connection *c);
  // The TLS configuration of one of this worker's listening handles, or
  // null for a plain one.
  icap_tls_config *tls_config(uv_stream_t *listener) const;

  std::thread thread;

 private:
  static void on_connection(uv_stream_t *server, int status);
  static void on_async(uv_async_t *a);
  static void on_drain_timeout(uv_timer_t *t);
  static void on_reject_closed(uv_handle_t *h);
  int init_loop(const std::vector<int> &fds, size_t &adopted);
  void accept(uv_stream_t *server);
  void reject(uv_stream_t *server) noexcept;
  void begin_drain();
  void maybe_finish();
  void run_posts();

  struct Post {
    icap_request *req;
    icap_post_cb cb;
    void *user;
  };

  icap_server *srv_;
  unsigned index_;
  uv_loop_t loop_;
  bool loop_ready_ = false;
  bool async_ready_ = false;
  uv_async_t async_;
  uv_timer_t drain_timer_;
  std::vector<uv_tcp_t *> listeners_;
  std::vector<Connection *> conns_;
  Connection *dirty_head_ = nullptr;
  // A spare handle to accept and at once close a connection for which no
  // memory was left: libuv stops accepting on a socket until the pending
  // connection is taken.
  uv_tcp_t reject_;
  bool reject_busy_ = false;
  uv_stream_t *reject_pending_ = nullptr;
  std::mutex mu_;
  std::vector<Post> posts_;
  bool accepting_posts_ = true;
  std::atomic<bool> async_alive_{false};
  bool draining_ = false;
  uint64_t drain_started_ = 0;
  bool finished_ = false;
  unsigned offloads_ = 0;
  char read_buf_[kReadBufferSize];
};

}  // namespace icap::detail

#endif
