// SPDX-License-Identifier: MIT
// The icap_server_* and icap_service_* C functions: argument checks and
// state checks. Every body runs inside the one exception guard
// (api/guard.hpp), so no exception leaves them; a setter that fails with
// ICAP_ENOMEM leaves its object unchanged.
#include <chrono>
#include <cstring>
#include <new>

#include "api/guard.hpp"
#include "fields/header_list.hpp"
#include "server/server.hpp"

using icap::detail::guard;
using icap::detail::guard_value;
using icap::detail::guard_void;

namespace icap::detail {
int server_listen(icap_server *srv, const char *host, int port);
int server_run(icap_server *srv);
void server_stop(icap_server *srv);
}  // namespace icap::detail

namespace {

bool configurable(const icap_server *srv) { return srv && srv->state.load() == icap_server::kNew; }

// A service's "before run only" settings: once its server runs, worker
// threads read them without a lock, so they are frozen.
bool configurable(const icap_service *svc) {
  return !svc->server_state || svc->server_state->load() == icap_server::kNew;
}

// A default ISTag: unique per service and start, at most 30 characters.
std::string default_istag(const std::string &name) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a of the name
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ull;
  auto now = std::chrono::duration_cast<std::chrono::seconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  char buf[40];
  snprintf(buf, sizeof buf, "LI-%08x-%08x", static_cast<unsigned>(h), static_cast<unsigned>(now));
  return buf;
}

}  // namespace

extern "C" {

int icap_server_new(icap_server **out) {
  if (out) *out = nullptr;
  return icap::detail::new_object(out);
}

void icap_server_free(icap_server *srv) {
  guard_void([&] { delete srv; });
}

int icap_server_set_workers(icap_server *srv, unsigned workers) {
  if (!srv || workers > 1024) return ICAP_EINVAL;
  if (!configurable(srv)) return ICAP_ESTATE;
  srv->workers = workers;
  return 0;
}

int icap_server_set_limit(icap_server *srv, icap_limit which, uint64_t value) {
  if (!srv || which < 0 || which >= ICAP_LIMIT_COUNT_) return ICAP_EINVAL;
  if (!configurable(srv)) return ICAP_ESTATE;
  if (value == 0) return ICAP_EINVAL;
  srv->limits.v[which] = value;
  return 0;
}

uint64_t icap_server_get_limit(const icap_server *srv, icap_limit which) {
  if (!srv || which < 0 || which >= ICAP_LIMIT_COUNT_) return 0;
  return srv->limits.v[which];
}

int icap_server_set_server_header(icap_server *srv, const char *value) {
  if (!srv || !icap::detail::valid_field_text(value) || !*value) return ICAP_EINVAL;
  if (!configurable(srv)) return ICAP_ESTATE;
  return guard([&] {
    std::string v = value;  // built aside: the old value stays on failure
    srv->server_header.swap(v);
    return 0;
  });
}

int icap_server_set_log(icap_server *srv, icap_log_level min_level, icap_log_cb cb, void *user) {
  if (!srv) return ICAP_EINVAL;
  if (!configurable(srv)) return ICAP_ESTATE;
  srv->log_cb = cb;
  srv->log_user = user;
  srv->log_level = min_level;
  return 0;
}

int icap_server_listen(icap_server *srv, const char *host, int port) {
  if (!srv || port < 0 || port > 65535) return ICAP_EINVAL;
  if (!configurable(srv)) return ICAP_ESTATE;
  return guard([&] { return icap::detail::server_listen(srv, host, port); });
}

int icap_server_port(const icap_server *srv, unsigned idx) {
  if (!srv) return ICAP_EINVAL;
  if (idx >= srv->listeners.size()) return ICAP_ENOENT;
  return srv->listeners[idx].port;
}

int icap_server_run(icap_server *srv) {
  if (!srv) return ICAP_EINVAL;
  if (srv->listeners.empty()) return ICAP_ESTATE;
  int expected = icap_server::kNew;
  if (!srv->state.compare_exchange_strong(expected, icap_server::kRunning)) return ICAP_ESTATE;
  // server_run() joins every thread it started before it returns, also on
  // its error paths; the guard only maps what escapes before that.
  int rc = guard([&] { return icap::detail::server_run(srv); });
  srv->state.store(icap_server::kDone);
  return rc;
}

void icap_server_stop(icap_server *srv) {
  if (srv) icap::detail::server_stop(srv);
}

int icap_server_add_service(icap_server *srv, const char *name, icap_service **out) {
  if (!srv || !name || !out || !icap::detail::valid_field_text(name) || strchr(name, '?') ||
      strchr(name, ' '))
    return ICAP_EINVAL;
  if (!configurable(srv)) return ICAP_ESTATE;
  return guard([&]() -> int {
    std::string key = name[0] == '/' ? name + 1 : name;
    if (srv->services.count(key)) return ICAP_EEXIST;
    auto svc = std::make_unique<icap_service>();
    svc->server_state = &srv->state;
    svc->name = key;
    svc->istag = default_istag(key);
    icap_service *p = svc.get();
    srv->services.emplace(key, std::move(svc));  // strong guarantee
    *out = p;
    return 0;
  });
}

int icap_service_set_handler(icap_service *svc, icap_method method, icap_handler_cb cb,
                             void *user) {
  if (!svc || method < 0 || method >= ICAP_METHOD_COUNT_) return ICAP_EINVAL;
  if (!configurable(svc)) return ICAP_ESTATE;
  svc->handler[method] = cb;
  svc->handler_user[method] = user;
  return 0;
}

int icap_service_set_istag(icap_service *svc, const char *tag) {
  if (!svc || !tag) return ICAP_EINVAL;
  size_t n = strlen(tag);
  if (n == 0 || n > 30) return ICAP_EINVAL;
  for (const char *p = tag; *p; p++)
    if (*p < 0x21 || *p > 0x7e || *p == '"' || *p == '\\') return ICAP_EINVAL;
  return guard([&] {
    std::string v = tag;
    std::lock_guard<std::mutex> g(svc->istag_mu);
    svc->istag.swap(v);
    return 0;
  });
}

int icap_service_set_preview(icap_service *svc, int64_t bytes) {
  if (!svc || bytes < -1) return ICAP_EINVAL;
  if (!configurable(svc)) return ICAP_ESTATE;
  svc->preview = bytes;
  return 0;
}

int icap_service_set_options_ttl(icap_service *svc, int64_t seconds) {
  if (!svc || seconds < -1) return ICAP_EINVAL;
  if (!configurable(svc)) return ICAP_ESTATE;
  svc->options_ttl = seconds;
  return 0;
}

int icap_service_set_max_connections(icap_service *svc, uint64_t n) {
  if (!svc) return ICAP_EINVAL;
  if (!configurable(svc)) return ICAP_ESTATE;
  svc->max_connections = n;
  return 0;
}

int icap_service_set_allow(icap_service *svc, int allow_204, int allow_206) {
  if (!svc) return ICAP_EINVAL;
  if (!configurable(svc)) return ICAP_ESTATE;
  svc->allow_204 = allow_204 != 0;
  svc->allow_206 = allow_206 != 0;
  return 0;
}

int icap_service_set_transfer(icap_service *svc, const char *preview, const char *ignore,
                              const char *complete) {
  if (!svc) return ICAP_EINVAL;
  for (const char *s : {preview, ignore, complete})
    if (s && !icap::detail::valid_field_text(s)) return ICAP_EINVAL;
  if (!configurable(svc)) return ICAP_ESTATE;
  return guard([&] {
    // All three are built first and then swapped in, so a failed call
    // changes nothing.
    std::string p = preview ? preview : "", i = ignore ? ignore : "", c = complete ? complete : "";
    svc->transfer_preview.swap(p);
    svc->transfer_ignore.swap(i);
    svc->transfer_complete.swap(c);
    svc->has_transfer_preview = preview != nullptr;
    svc->has_transfer_ignore = ignore != nullptr;
    svc->has_transfer_complete = complete != nullptr;
    return 0;
  });
}

int icap_service_add_options_header(icap_service *svc, const char *name, const char *value) {
  if (!svc || !name || !*name || !icap::detail::valid_field_text(name) || strchr(name, ':') ||
      !icap::detail::valid_field_text(value))
    return ICAP_EINVAL;
  if (!configurable(svc)) return ICAP_ESTATE;
  return guard([&] {
    svc->options_headers.add(name, value);
    return 0;
  });
}

const char *icap_service_name(const icap_service *svc) { return svc ? svc->name.c_str() : ""; }

}  // extern "C"

// ---------------------------------------------- inherited listeners ---

namespace icap::detail {
int server_listen_fd(icap_server *srv, int fd);
}  // namespace icap::detail

extern "C" int icap_server_listen_fd(icap_server *srv, int fd) {
  return icap::detail::guard([&]() -> int {
    if (!srv || fd < 0) return ICAP_EINVAL;
    if (!configurable(srv)) return ICAP_ESTATE;
    return icap::detail::server_listen_fd(srv, fd);
  });
}
