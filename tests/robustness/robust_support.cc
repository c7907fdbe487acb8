// SPDX-License-Identifier: MIT
#include "robust_support.hpp"

#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace robust {

// ------------------------------------------------------------ handlers ---

namespace {

void count_done(icap_request *req, int status, void *user) {
  auto *st = static_cast<Stats *>(user);
  st->done++;
  // Which counter each end status goes to; anything else is "other".
  static const std::pair<int, std::atomic<uint64_t> Stats::*> kCounters[] = {
      {0, &Stats::done_ok},
      {ICAP_ECONNRESET, &Stats::done_reset},
      {ICAP_ETIMEDOUT, &Stats::done_timeout},
      {ICAP_ECANCELED, &Stats::done_canceled},
      {ICAP_EPROTO, &Stats::done_proto},
      {ICAP_EHANDLER, &Stats::done_handler},
  };
  std::atomic<uint64_t> Stats::*counter = &Stats::done_other;
  for (const auto &k : kCounters)
    if (k.first == status) counter = k.second;
  (st->*counter)++;
  delete static_cast<std::string *>(icap_request_get_data(req));
  icap_request_set_data(req, nullptr);
}

void track(icap_request *req, Stats *st) {
  st->dispatched++;
  icap_request_on_done(req, count_done, st);
}

int echo_handler(icap_request *req, void *user) {
  track(req, static_cast<Stats *>(user));
  return icap_request_no_adaptation(req);
}

int fail_handler(icap_request *req, void *user) {
  track(req, static_cast<Stats *>(user));
  return ICAP_EIO;
}

int abort_handler(icap_request *req, void *user) {
  track(req, static_cast<Stats *>(user));
  return icap_request_abort(req, ICAP_EIO);
}

// Aborts later, from the loop thread, once a (no-op) job on the thread pool
// is done: icap_request_abort() outside the handler call.
int abort_later_handler(icap_request *req, void *user) {
  track(req, static_cast<Stats *>(user));
  return icap_request_offload(
      req, [](void *) {},
      [](icap_request *r, int status, void *) {
        if (status == 0) icap_request_abort(r, ICAP_EIO);
      },
      nullptr);
}

int never_handler(icap_request *req, void *user) {
  track(req, static_cast<Stats *>(user));
  return 0;
}

void read_answer(icap_request *req, const std::string &body) {
  static const char *const skip[] = {"Content-Length", nullptr};
  if (icap_request_copy_http_head(req, skip) != 0) {
    icap_request_send_error(req, 500);
    return;
  }
  std::string n = std::to_string(body.size());
  icap_request_add_http_header(req, "X-Read-Bytes", n.c_str());
  bool has_body = icap_request_has_body(req);
  icap_request_send_headers(req, has_body);
  if (has_body) {
    if (!body.empty()) icap_request_send_chunk(req, body.data(), body.size());
    icap_request_end(req);
  }
}

void on_read(icap_request *req, int status, const char *data, size_t len, void *) {
  if (status < 0) return;  // the transaction is ending; done follows
  auto *body = static_cast<std::string *>(icap_request_get_data(req));
  body->append(data, len);
  if ((status & ICAP_BODY_END) && !(status & ICAP_BODY_PREVIEW_END)) {
    read_answer(req, *body);
    return;
  }
  icap_request_read_chunk(req, on_read, nullptr);  // sends 100 Continue after a preview
}

int read_handler(icap_request *req, void *user) {
  track(req, static_cast<Stats *>(user));
  icap_request_set_data(req, new std::string());
  if (!icap_request_has_body(req)) {
    read_answer(req, std::string());
    return 0;
  }
  return icap_request_read_chunk(req, on_read, nullptr);
}

void on_preview_then_nothing(icap_request *req, int status, const char *, size_t, void *) {
  if (status >= 0 && !(status & ICAP_BODY_END))
    icap_request_read_chunk(req, on_preview_then_nothing, nullptr);
}

int preview_never_handler(icap_request *req, void *user) {
  track(req, static_cast<Stats *>(user));
  if (!icap_request_has_body(req)) return 0;
  return icap_request_read_chunk(req, on_preview_then_nothing, nullptr);
}

}  // namespace

// -------------------------------------------------------------- server ---

Server::Server(const ServerOptions &o) {
  icap_server *srv = thread_.srv();
  icap_server_set_workers(srv, o.workers);
  // Keep bugs from hiding behind long defaults: a stuck request shows as
  // a 408 after a few seconds instead of 30.
  icap_server_set_limit(srv, ICAP_LIMIT_READ_TIMEOUT_MS, 5000);
  icap_server_set_limit(srv, ICAP_LIMIT_DRAIN_TIMEOUT_MS, 5000);
  for (const auto &l : o.limits) icap_server_set_limit(srv, l.first, l.second);

  struct Svc {
    const char *name;
    icap_handler_cb req, res;
  };
  const Svc svcs[] = {
      {"echo", echo_handler, echo_handler},
      {"read", read_handler, read_handler},
      {"reqonly", echo_handler, nullptr},
      {"never", never_handler, never_handler},
      {"preview-never", preview_never_handler, preview_never_handler},
      {"fail", fail_handler, fail_handler},
      {"abort", abort_handler, abort_handler},
      {"abort-later", abort_later_handler, abort_later_handler},
  };
  for (const Svc &s : svcs) {
    icap_service *svc = nullptr;
    if (icap_server_add_service(srv, s.name, &svc) != 0) abort();
    if (s.req) icap_service_set_handler(svc, ICAP_METHOD_REQMOD, s.req, &stats_);
    if (s.res) icap_service_set_handler(svc, ICAP_METHOD_RESPMOD, s.res, &stats_);
  }
}

// ------------------------------------------------------------ requests ---

std::string http_res_head(size_t content_length) { return icaptest::http_ok(content_length); }

std::string http_req_head(const std::string &url) {
  return icaptest::http_get(url, "origin.example", "User-Agent: robust\r\n");
}

std::string raw_request(const std::string &method, const std::string &service,
                        const std::string &extra_headers,
                        const std::vector<std::pair<std::string, std::string>> &sections,
                        const std::string &body_kind, const std::string &body) {
  icaptest::Msg m;
  m.method = method;
  m.svc = service;
  m.authority = "127.0.0.1";
  m.hdrs = extra_headers;
  for (const auto &s : sections) {
    m.enc_override += s.first + "=" + std::to_string(m.req.size()) + ", ";
    m.req += s.second;
  }
  m.enc_override += body_kind + "=" + std::to_string(m.req.size());
  m.body = body;
  return m.str();
}

std::string options(const std::string &service, const std::string &extra) {
  return icaptest::on_loopback(icaptest::options(service, extra)).str();
}

std::string reqmod_get(const std::string &service, const std::string &extra) {
  return raw_request("REQMOD", service, extra, {{"req-hdr", http_req_head()}}, "null-body", "");
}

std::string respmod(const std::string &service, const std::string &body, const std::string &extra,
                    size_t chunk) {
  return raw_request("RESPMOD", service, extra,
                     {{"req-hdr", http_req_head()}, {"res-hdr", http_res_head(body.size())}},
                     "res-body", chunked(body, chunk));
}

std::string respmod_preview(const std::string &service, const std::string &body, size_t preview,
                            size_t chunk, bool rest, const std::string &extra) {
  return raw_request("RESPMOD", service, extra + "Preview: " + std::to_string(preview) + "\r\n",
                     {{"req-hdr", http_req_head()}, {"res-hdr", http_res_head(body.size())}},
                     "res-body", icaptest::preview_body(body, preview, rest, chunk));
}

std::string server_healthy(int port) {
  Conn c(port);
  if (!c.ok()) return "cannot connect";
  if (!c.send(options("echo"))) return "cannot send OPTIONS";
  icapwire::Response r;
  std::string why;
  if (c.read(r, ms(5000), &why) != Conn::Got::kResponse) return "no OPTIONS answer: " + why;
  if (r.code != 200) return "OPTIONS answered " + std::to_string(r.code);
  if (r.conn_close()) return "OPTIONS answer closes the connection";
  const std::string body = "healthy body 0123456789";
  if (!c.send(respmod("echo", body))) return "cannot send RESPMOD";
  if (c.read(r, ms(5000), &why) != Conn::Got::kResponse) return "no RESPMOD answer: " + why;
  if (r.code != 200) return "echo answered " + std::to_string(r.code);
  if (r.body != body) return "echo body differs";
  return "";
}

// Every bug these rows once skipped is fixed, so all rows run; setting
// ICAP_RUN_KNOWN_BUGS=0 skips rows still marked as a bug (for bisecting).
bool run_known_bugs() {
  const char *v = getenv("ICAP_RUN_KNOWN_BUGS");
  return !(v && *v == '0');
}

uint64_t raise_nofile() {
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
  }
  return rl.rlim_cur;
}

}  // namespace robust
