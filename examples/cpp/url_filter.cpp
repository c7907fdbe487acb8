// SPDX-License-Identifier: MIT
/*
 * url_filter.cpp - a REQMOD service that blocks requests to listed hosts.
 *
 * Shows: reading the encapsulated HTTP request (pyicap's enc_req and
 * enc_req_headers), and answering a REQMOD with an HTTP response - a 403
 * HTML page the proxy returns to the browser instead of contacting the
 * origin (RFC 3507 4.8.1). Every other request gets
 * no_adaptation_required(). The decision needs only the headers, so the
 * service asks for a zero-byte preview: Squid then sends no body bytes
 * before the answer, and an allowed request costs one 204.
 *
 *   icap-url-filter --port 1344 --block example.com --block ads.test
 *
 * A listed host also blocks its subdomains (www.example.com).
 * squid.conf: icap_service filter reqmod_precache icap://127.0.0.1:1344/url_filter
 */
#include "example_common.hpp"

#include <string>
#include <string_view>
#include <vector>

/* The host of the encapsulated request: from an absolute URI
 * ("http://Host:8080/path", what a proxy sends), an authority
 * ("host:443", CONNECT), else from the Host header. Lower case, without
 * port or trailing dot. */
static std::string request_host(const icap::Request& req) {
  std::string_view uri = req.enc_req().uri;
  std::string_view authority;
  if (auto scheme = uri.find("://"); scheme != std::string_view::npos) {
    authority = uri.substr(scheme + 3);
    authority = authority.substr(0, authority.find_first_of("/?#"));
  } else if (!uri.empty() && uri.front() != '/') {
    authority = uri;  // CONNECT host:port
  } else {
    authority = req.enc_req_header("Host").value_or("");
  }
  if (auto at = authority.rfind('@'); at != std::string_view::npos)
    authority.remove_prefix(at + 1);  // user:password@
  std::string_view host = authority;
  if (!host.empty() && host.front() == '[') {  // [IPv6]:port
    host = host.substr(1, host.find(']') - 1);
  } else if (auto colon = host.rfind(':'); colon != std::string_view::npos) {
    host = host.substr(0, colon);
  }
  while (!host.empty() && host.back() == '.') host.remove_suffix(1);
  return example::lower(host);
}

static bool is_blocked(const std::string& host, const std::vector<std::string>& blocked) {
  for (const auto& b : blocked) {
    if (host == b) return true;
    if (host.size() > b.size() && host.compare(host.size() - b.size(), b.size(), b) == 0 &&
        host[host.size() - b.size() - 1] == '.')
      return true;
  }
  return false;
}

static std::string block_page(const std::string& host, std::string_view url) {
  return "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
         "<title>403 Forbidden</title></head>\n<body><h1>Access denied</h1>\n"
         "<p>Requests to <b>" +
         example::html_escape(host) +
         "</b> are blocked by policy (libicap url_filter).</p>\n<p><code>" +
         example::html_escape(url) + "</code></p></body></html>\n";
}

/* 403 for the blocked hosts, 204 (or an unchanged echo) for the rest. */
static void filter(icap::Request& req, const std::vector<std::string>& blocked) {
  std::string host = request_host(req);
  if (host.empty() || !is_blocked(host, blocked)) {
    req.no_adaptation_required();
    return;
  }
  req.log(ICAP_LOG_INFO, "blocked " + std::string(req.enc_req().uri));
  // Any request body is left unread; libicap discards it or closes
  // the connection after the answer.
  example::send_html_page(req, 403, "Forbidden", block_page(host, req.enc_req().uri));
}

int main(int argc, char** argv) {
  std::vector<std::string> blocked;
  auto block = [&](const char* host) {  // lower case, without a trailing dot
    std::string h = example::lower(host);
    while (!h.empty() && h.back() == '.') h.pop_back();
    if (!h.empty()) blocked.push_back(h);
  };
  example::Args args =
      example::parse_args(argc, argv,
                          "ICAP REQMOD service 'url_filter': 403 page for the listed hosts "
                          "(and their subdomains).",
                          " [--block HOST]...", {{"--block", block}});

  return example::serve(args, "icap-url-filter", [&](icap::Server& server) {
    server.service("url_filter").preview(0).reqmod([&blocked](icap::Request& req) {
      filter(req, blocked);
    });
  });
}
