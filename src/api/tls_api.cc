// SPDX-License-Identifier: MIT
// The icap_tls_config_*, icap_server_listen_tls and icap_request_tls_* C
// functions: argument checks, then the TLS configuration object and the
// connection's transport. Every body runs under the one exception guard.
#include <cstring>
#include <memory>

#include "api/guard.hpp"
#include "protocol/session.hpp"
#include "server/connection.hpp"
#include "server/server.hpp"
#include "server/tls.hpp"
#include "server/tls_config.hpp"

namespace icap::detail {
int server_listen(icap_server *srv, const char *host, int port);
}  // namespace icap::detail

namespace {

using icap::detail::guard;
using icap::detail::guard_value;

// A setter: checks, then `f` under the configuration's lock.
template <class F>
int set(icap_tls_config *cfg, F &&f) {
  if (!cfg) return ICAP_EINVAL;
  return guard([&] {
    std::lock_guard<std::mutex> g(cfg->mu);
    return f(*cfg);
  });
}

// The transport of the connection a request came on, or null (plain, or
// the connection is gone, or the engine runs without a server).
const icap::detail::TlsTransport *transport(const icap_request *req) {
  if (!req || !req->session()) return nullptr;
  auto *conn = dynamic_cast<icap::detail::Connection *>(req->session()->host());
  return conn ? conn->tls() : nullptr;
}

const char *established_field(const icap_request *req,
                              const std::string &(icap::detail::TlsTransport::*field)() const) {
  const icap::detail::TlsTransport *t = transport(req);
  return t && t->established() ? (t->*field)().c_str() : "";
}

}  // namespace

extern "C" {

int icap_tls_config_new(icap_tls_config **out) { return icap::detail::new_object(out); }

void icap_tls_config_free(icap_tls_config *cfg) {
  if (cfg) cfg->unref();
}

int icap_tls_config_set_cert_file(icap_tls_config *cfg, const char *path) {
  if (!path || !*path) return ICAP_EINVAL;
  return set(cfg, [&](icap_tls_config &c) {
    c.cert_file = path;
    return 0;
  });
}

int icap_tls_config_set_key_file(icap_tls_config *cfg, const char *path, const char *passphrase) {
  if (!path || !*path) return ICAP_EINVAL;
  return set(cfg, [&](icap_tls_config &c) {
    c.key_file = path;
    c.passphrase = passphrase ? passphrase : "";
    return 0;
  });
}

int icap_tls_config_set_min_version(icap_tls_config *cfg, icap_tls_version v) {
  if (v != ICAP_TLS_1_2 && v != ICAP_TLS_1_3) return ICAP_EINVAL;
  return set(cfg, [&](icap_tls_config &c) {
    c.min_version = v;
    return 0;
  });
}

int icap_tls_config_set_ciphers(icap_tls_config *cfg, const char *tls12_ciphers,
                                const char *tls13_suites) {
  return set(cfg, [&](icap_tls_config &c) {
    c.has_ciphers = tls12_ciphers != nullptr;
    c.ciphers = tls12_ciphers ? tls12_ciphers : "";
    c.has_ciphersuites = tls13_suites != nullptr;
    c.ciphersuites = tls13_suites ? tls13_suites : "";
    return 0;
  });
}

int icap_tls_config_set_verify_client(icap_tls_config *cfg, icap_tls_verify mode,
                                      const char *ca_file, const char *ca_dir) {
  if (mode != ICAP_TLS_VERIFY_NONE && mode != ICAP_TLS_VERIFY_OPTIONAL &&
      mode != ICAP_TLS_VERIFY_REQUIRED)
    return ICAP_EINVAL;
  if (mode != ICAP_TLS_VERIFY_NONE && !(ca_file && *ca_file) && !(ca_dir && *ca_dir))
    return ICAP_EINVAL;
  return set(cfg, [&](icap_tls_config &c) {
    c.verify = mode;
    c.ca_file = ca_file ? ca_file : "";
    c.ca_dir = ca_dir ? ca_dir : "";
    return 0;
  });
}

int icap_tls_config_reload(icap_tls_config *cfg) {
  if (!cfg) return ICAP_EINVAL;
  return guard([&] { return cfg->reload(); });
}

size_t icap_tls_config_error(icap_tls_config *cfg, char *buf, size_t len) {
  if (!cfg) return 0;
  return guard_value<size_t>(0, [&] {
    std::string e = cfg->error();
    if (buf && len) {
      size_t n = e.size() < len - 1 ? e.size() : len - 1;
      memcpy(buf, e.data(), n);
      buf[n] = '\0';
    }
    return e.size();
  });
}

int icap_server_listen_tls(icap_server *srv, const char *host, int port, icap_tls_config *cfg) {
  if (!srv || !cfg || port < 0 || port > 65535) return ICAP_EINVAL;
  if (srv->state.load() != icap_server::kNew) return ICAP_ESTATE;
  return guard([&] {
    // The files are read once here, so a bad path fails the listen call and
    // not the first handshake.
    SSL_CTX *ctx = cfg->acquire();
    if (ctx) {
      SSL_CTX_free(ctx);
    } else if (int rc = cfg->reload()) {
      return rc;
    }
    std::shared_ptr<icap_tls_config> ref(cfg, [](icap_tls_config *c) { c->unref(); });
    cfg->ref();
    if (int rc = icap::detail::server_listen(srv, host, port)) return rc;
    srv->listeners.back().tls = std::move(ref);
    return 0;
  });
}

int icap_request_is_tls(const icap_request *req) { return transport(req) ? 1 : 0; }

const char *icap_request_tls_version(const icap_request *req) {
  return established_field(req, &icap::detail::TlsTransport::version);
}

const char *icap_request_tls_cipher(const icap_request *req) {
  return established_field(req, &icap::detail::TlsTransport::cipher);
}

const char *icap_request_tls_peer_subject(const icap_request *req) {
  return established_field(req, &icap::detail::TlsTransport::peer_subject);
}

}  // extern "C"
