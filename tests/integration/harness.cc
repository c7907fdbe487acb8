// SPDX-License-Identifier: MIT
#include "harness.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <thread>

namespace itest {

// ------------------------------------------------------------- server ---

// Two workers by default: small and predictable.
TestServer::TestServer(unsigned workers) { set_workers(workers); }

icap_service *TestServer::add_service(const char *name) {
  icap_service *svc = nullptr;
  int rc = icap_server_add_service(srv(), name, &svc);
  EXPECT_EQ(rc, 0) << "icap_server_add_service(" << name << "): " << icap_strerror(rc);
  return rc == 0 ? svc : nullptr;
}

void TestServer::set_limit(icap_limit which, uint64_t v) {
  int rc = icap_server_set_limit(srv(), which, v);
  EXPECT_EQ(rc, 0) << "icap_server_set_limit(" << which << "): " << icap_strerror(rc);
}

void TestServer::set_workers(unsigned n) {
  int rc = icap_server_set_workers(srv(), n);
  EXPECT_EQ(rc, 0) << "icap_server_set_workers: " << icap_strerror(rc);
}

bool TestServer::start() {
  int rc = ServerThread::start();
  if (rc != 0) ADD_FAILURE() << what() << ": " << icap_strerror(rc);
  return rc == 0;
}

void TestServer::stop_and_join(ms timeout) {
  if (ServerThread::stop_and_join(timeout).count() >= 0) return;
  fprintf(stderr,
          "FATAL: icap_server_run() did not return within %lld ms of "
          "icap_server_stop(); server log:\n%s\n",
          static_cast<long long>(timeout.count()), logs_text().c_str());
  fflush(stderr);
  std::abort();
}

// ---------------------------------------------------------- requests ---

std::string build_request(const std::string &method, const std::string &service,
                          const std::string &req_hdr, const std::string &res_hdr,
                          const std::optional<std::string> &body, const std::string &extra_headers,
                          size_t chunk) {
  icaptest::Msg m = icaptest::on_loopback(
      icaptest::respmod(service, extra_headers, req_hdr, res_hdr, body.has_value(),
                        body ? icaptest::chunked(*body, chunk) : std::string()));
  m.method = method;
  if (body && method == "REQMOD") m.entity = "req-body";
  return m.str();
}

std::string options_request(const std::string &service, const std::string &extra) {
  // As Squid sends it: no Encapsulated header.
  return icaptest::on_loopback(icaptest::options(service, extra)).str();
}

std::string http_request_head(const std::string &url) { return icaptest::http_get(url); }

std::string http_response_head(size_t content_length) { return icaptest::http_ok(content_length); }

std::string reqmod_get(const std::string &service, const std::string &url,
                       const std::string &extra) {
  return build_request("REQMOD", service, http_request_head(url), "", std::nullopt, extra);
}

std::string respmod(const std::string &service, const std::string &body, const std::string &extra,
                    size_t chunk) {
  return build_request("RESPMOD", service, http_request_head("http://origin.example/x"),
                       http_response_head(body.size()), body, extra, chunk);
}

std::string respmod_head(const std::string &service, uint64_t content_length,
                         const std::string &extra) {
  std::string s = build_request("RESPMOD", service, http_request_head("http://origin.example/big"),
                                http_response_head(content_length), std::string(), extra);
  // Drop the "0\r\n\r\n" that build_request appended for the empty body.
  s.resize(s.size() - 5);
  return s;
}

// ------------------------------------------------------------ helpers ---

int echo_handler(icap_request *req, void *user) {
  if (user) static_cast<std::atomic<int> *>(user)->fetch_add(1);
  return icap_request_no_adaptation(req);
}

icap_service *add_mod_service(TestServer &s, const char *name, icap_handler_cb handler,
                              void *user) {
  icap_service *svc = s.add_service(name);
  if (!svc) return nullptr;
  int rc1 = icap_service_set_handler(svc, ICAP_METHOD_REQMOD, handler, user);
  int rc2 = icap_service_set_handler(svc, ICAP_METHOD_RESPMOD, handler, user);
  EXPECT_EQ(rc1, 0);
  EXPECT_EQ(rc2, 0);
  return rc1 == 0 && rc2 == 0 ? svc : nullptr;
}

icap_service *add_echo_service(TestServer &s, const char *name, std::atomic<int> *calls) {
  return add_mod_service(s, name, echo_handler, calls);
}

bool start_with_echo(TestServer &s) { return add_echo_service(s, "echo") && s.start(); }

bool start_with_mod_service(TestServer &s, const char *name, icap_handler_cb handler, void *user) {
  return add_mod_service(s, name, handler, user) && s.start();
}

bool start_with_handler(TestServer &s, const char *name, icap_method method,
                        icap_handler_cb handler, void *user) {
  icap_service *svc = s.add_service(name);
  if (!svc) return false;
  int rc = icap_service_set_handler(svc, method, handler, user);
  EXPECT_EQ(rc, 0) << "icap_service_set_handler(" << name << "): " << icap_strerror(rc);
  return rc == 0 && s.start();
}

void expect_statuses(DoneLog &log, int status) {
  for (int st : log.statuses()) EXPECT_EQ(st, status) << "done status " << icap_err_name(st);
}

void expect_all_done(DoneLog &log, int n, int status, TestServer &s, ms timeout) {
  EXPECT_TRUE(wait_until([&] { return log.done_calls.load() == n; }, timeout))
      << log.done_calls.load() << " of " << n << " done callbacks\n"
      << s.logs_text();
  expect_statuses(log, status);
}

bool connect_and_send(std::vector<Client> &clients, int port,
                      const std::function<std::string(int)> &request) {
  for (size_t i = 0; i < clients.size(); i++) {
    int rc = clients[i].connect(port);
    EXPECT_EQ(rc, 0) << "client " << i << ": connect: " << strerror(-rc);
    if (rc != 0) return false;
    bool sent = clients[i].send_all(request(static_cast<int>(i)));
    EXPECT_TRUE(sent) << "client " << i << ": the request could not be sent";
    if (!sent) return false;
  }
  return true;
}

bool open_idle(Client &c, TestServer &s) {
  int rc = c.connect(s.port());
  EXPECT_EQ(rc, 0) << "connect: " << strerror(-rc);
  if (rc != 0) return false;
  Response r = round_trip(c, options_request("echo"));
  EXPECT_TRUE(r.ok) << r.error;
  EXPECT_FALSE(r.ok && r.conn_close()) << "the OPTIONS answer closes the connection";
  return r.ok && !r.conn_close();
}

void vanish(Client &c, int i) {
  if (i % 2)
    c.reset();
  else
    c.close();
}

bool wait_until(const std::function<bool()> &pred, ms timeout) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    if (pred()) return true;
    if (Clock::now() >= deadline) return pred();
    std::this_thread::sleep_for(ms(5));
  }
}

uint64_t rss_bytes() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.compare(0, 6, "VmRSS:") == 0) return strtoull(line.c_str() + 6, nullptr, 10) * 1024;
  }
  return 0;
}

}  // namespace itest
