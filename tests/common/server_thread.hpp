// SPDX-License-Identifier: MIT
// An icap_server (the C API) running in-process on its own thread, listening
// on 127.0.0.1 with a port the kernel chose: the server of the integration
// and robustness tests. Stopping is bounded: a server whose
// icap_server_run() does not return after icap_server_stop() makes the
// destructor abort the test binary with the server's log, instead of
// hanging until ctest's timeout.
#ifndef ICAP_TESTS_COMMON_SERVER_THREAD_HPP
#define ICAP_TESTS_COMMON_SERVER_THREAD_HPP

#include <icap/icap.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace icaptest {

class ServerThread {
 public:
  // Creates the server with a log callback that keeps every line (and
  // prints it when ICAP_TEST_LOG is set). Aborts if icap_server_new fails.
  ServerThread();
  ~ServerThread();
  ServerThread(const ServerThread &) = delete;
  ServerThread &operator=(const ServerThread &) = delete;

  icap_server *srv() { return srv_; }

  // Listens on 127.0.0.1:0 and runs the server on a new thread. Returns 0,
  // or the failing call's error code (what() says which call).
  int start();
  int port() const { return port_; }
  const std::string &what() const { return what_; }

  // icap_server_stop() without waiting.
  void stop();
  bool started() const { return started_; }
  // True once icap_server_run() returned.
  bool returned() const { return returned_.load(); }
  // Waits up to `timeout` for icap_server_run() to return; true if it did.
  bool wait_returned(std::chrono::milliseconds timeout);
  // stop(), then waits (bounded) and joins. Returns how long that took, or
  // -1 ms if the server did not return (the destructor then aborts).
  std::chrono::milliseconds stop_and_join(std::chrono::milliseconds timeout);
  int run_result() const { return run_rc_; }

  // Log lines captured from the server ("level: message"), for diagnostics.
  std::vector<std::string> logs();
  // The lines, each prefixed with `indent` and ending with a newline.
  std::string logs_text(const std::string &indent = "  ");

 private:
  static void on_log(icap_server *, icap_log_level level, const char *msg, void *user);

  icap_server *srv_ = nullptr;
  std::thread thread_;
  int port_ = -1;
  int run_rc_ = 0;
  bool started_ = false;
  std::string what_;
  std::atomic<bool> returned_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> logs_;
};

}  // namespace icaptest

#endif
