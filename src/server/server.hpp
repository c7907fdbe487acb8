// SPDX-License-Identifier: MIT
// The server: configuration, listening sockets and the worker loops.
#ifndef ICAP_SERVER_SERVER_HPP
#define ICAP_SERVER_SERVER_HPP

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "icap/icap.h"
#include "protocol/limits.hpp"
#include "protocol/service.hpp"

namespace icap::detail {
class Worker;
}

struct icap_server {
  icap_server();
  ~icap_server();

  icap::detail::Limits limits;
  unsigned workers = 0;
  std::string server_header = "libicap/" ICAP_VERSION_STRING;
  icap_log_cb log_cb = nullptr;
  void *log_user = nullptr;
  icap_log_level log_level = ICAP_LOG_INFO;
  icap::detail::ServiceTable services;

  struct Listener {
    std::string host;
    int port = 0;  // the bound port
    int fd = -1;   // bound and listening; further per-worker sockets at run
    int family = 0;
    // Adopted with icap_server_listen_fd(): it may be shared with another
    // process, so further workers poll duplicates of this very socket and
    // never open sockets of their own on its port.
    bool inherited = false;
    std::shared_ptr<icap_tls_config> tls;  // null: plain ICAP (tls_api.cc)
  };
  std::vector<Listener> listeners;

  enum State { kNew, kRunning, kDone };
  std::atomic<int> state{kNew};
  std::atomic<bool> stop_requested{false};
  // Workers, published to icap_server_stop() one by one as they start.
  std::vector<std::unique_ptr<icap::detail::Worker>> worker_list;
  std::atomic<unsigned> workers_ready{0};
  std::atomic<uint64_t> connections{0};

  // Calls the log callback; never throws (a throwing callback loses its line).
  void log(icap_log_level level, const std::string &msg) noexcept;
};

#endif
