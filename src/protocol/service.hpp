// SPDX-License-Identifier: MIT
// A registered service: its handlers and what its OPTIONS answer says.
#ifndef ICAP_PROTOCOL_SERVICE_HPP
#define ICAP_PROTOCOL_SERVICE_HPP

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "icap/icap.h"
#include "fields/header_list.hpp"

struct icap_service {
  // The owning server's run state (icap_server::State): the "before run
  // only" setters check it.
  const std::atomic<int> *server_state = nullptr;
  std::string name;
  icap_handler_cb handler[ICAP_METHOD_COUNT_] = {};
  void *handler_user[ICAP_METHOD_COUNT_] = {};
  int64_t preview = 1024;
  int64_t options_ttl = 3600;
  uint64_t max_connections = 0;
  bool allow_204 = true;
  bool allow_206 = false;
  std::string transfer_preview = "*";
  std::string transfer_ignore;
  std::string transfer_complete;
  bool has_transfer_preview = true, has_transfer_ignore = false, has_transfer_complete = false;
  icap::detail::HeaderList options_headers;

  // The ISTag may change while the server runs (a new signature database),
  // from any thread, so it is read under a lock.
  mutable std::mutex istag_mu;
  std::string istag;  // without quotes

  std::string get_istag() const {
    std::lock_guard<std::mutex> g(istag_mu);
    return istag;
  }
};

namespace icap::detail {
using ServiceTable = std::map<std::string, std::unique_ptr<icap_service>, std::less<>>;
}

#endif
