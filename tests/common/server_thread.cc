// SPDX-License-Identifier: MIT
#include "server_thread.hpp"

#include <cstdio>
#include <cstdlib>

namespace icaptest {

using std::chrono::milliseconds;

ServerThread::ServerThread() {
  if (icap_server_new(&srv_) != 0) {
    fprintf(stderr, "ServerThread: icap_server_new failed\n");
    abort();
  }
  icap_server_set_log(srv_, ICAP_LOG_DEBUG, on_log, this);
}

ServerThread::~ServerThread() {
  if (started_ && stop_and_join(milliseconds(20000)).count() < 0) {
    // A thread that still runs cannot be joined, and freeing the server
    // under it would crash somewhere less clear.
    fprintf(stderr,
            "FATAL: icap_server_run() did not return after icap_server_stop(); "
            "server log:\n%s\n",
            logs_text().c_str());
    fflush(stderr);
    abort();
  }
  icap_server_free(srv_);
}

void ServerThread::on_log(icap_server *, icap_log_level level, const char *msg, void *user) {
  auto *self = static_cast<ServerThread *>(user);
  static const char *const names[] = {"error", "warn", "info", "debug"};
  std::lock_guard<std::mutex> g(self->mu_);
  if (self->logs_.size() < 10000) self->logs_.push_back(std::string(names[level & 3]) + ": " + msg);
  if (getenv("ICAP_TEST_LOG")) fprintf(stderr, "[server] %s: %s\n", names[level & 3], msg);
}

std::vector<std::string> ServerThread::logs() {
  std::lock_guard<std::mutex> g(mu_);
  return logs_;
}

std::string ServerThread::logs_text(const std::string &indent) {
  std::string s;
  for (auto &l : logs()) s += indent + l + "\n";
  return s;
}

int ServerThread::start() {
  int rc = icap_server_listen(srv_, "127.0.0.1", 0);
  if (rc != 0) return what_ = "icap_server_listen", rc;
  port_ = icap_server_port(srv_, 0);
  if (port_ <= 0) return what_ = "icap_server_port", port_ < 0 ? port_ : ICAP_EINVAL;
  started_ = true;
  thread_ = std::thread([this] {
    int r = icap_server_run(srv_);
    {
      std::lock_guard<std::mutex> g(mu_);
      run_rc_ = r;
      returned_ = true;
    }
    cv_.notify_all();
  });
  return 0;
}

void ServerThread::stop() { icap_server_stop(srv_); }

bool ServerThread::wait_returned(milliseconds timeout) {
  std::unique_lock<std::mutex> g(mu_);
  return cv_.wait_for(g, timeout, [this] { return returned_.load(); });
}

milliseconds ServerThread::stop_and_join(milliseconds timeout) {
  auto t0 = std::chrono::steady_clock::now();
  if (!started_) return milliseconds(0);
  stop();
  if (!wait_returned(timeout)) return milliseconds(-1);
  thread_.join();
  started_ = false;
  return std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - t0);
}

}  // namespace icaptest
