// SPDX-License-Identifier: MIT
/*
 * icap-cpp-filter: the README's C++ example, kept here verbatim so that it
 * is built and tested (tests/examples/filter_test.py, cli_test.py). The same
 * service as examples/filter.c, written against icap/icap.hpp.
 */
#include <getopt.h>
#include <icap/icap.hpp>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>

static icap::Server* g_server;
static void on_signal(int) {
  if (g_server) g_server->stop();  // async-signal-safe
}

/* "--port N": digits only, 0 to 65535 (0: the kernel picks a free port). */
static int parse_port(const char* s) {
  char* end;
  long port = std::strtol(s, &end, 10);
  if (*s < '0' || *s > '9' || *end != '\0' || port > 65535) return -1;
  return static_cast<int>(port);
}

int main(int argc, char** argv) {
  static const option options[] = {
      {"port", required_argument, nullptr, 'p'}, {"help", no_argument, nullptr, 'h'}, {}};
  int port = 1344, opt;
  while ((opt = getopt_long(argc, argv, "p:h", options, nullptr)) != -1) {
    if (opt == 'p' && (port = parse_port(optarg)) >= 0) continue;
    if (opt == 'p') std::fprintf(stderr, "%s: --port '%s': not a port number\n", argv[0], optarg);
    std::fprintf(opt == 'h' ? stdout : stderr, "usage: %s [--port N]\n", argv[0]);
    return opt == 'h' ? 0 : 2;
  }
  if (optind < argc) {
    std::fprintf(stderr, "usage: %s [--port N]\n", argv[0]);
    return 2;
  }

  try {
    icap::Server srv;
    // RESPMOD: block responses of the site "ads.example", pass the rest.
    srv.service("filter").respmod([](icap::Request& req) {
      if (req.enc_req_header("Host") == "ads.example") {
        const std::string page = "<h1>Blocked</h1>\n";
        req.set_enc_status(403, "Forbidden");  // HTTP/1.1 403 Forbidden
        req.set_enc_header("Content-Type", "text/html");
        req.set_enc_header("Content-Length", std::to_string(page.size()));
        req.send_headers(true);
        req.send_chunk(page);
        req.end();
      } else {
        req.no_adaptation_required();  // 204, or a streamed echo
      }
    });
    srv.listen("127.0.0.1", port);
    g_server = &srv;
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    srv.run();  // until stop()
    g_server = nullptr;
  } catch (const icap::Error& e) {  // e.g. the port is taken
    std::fprintf(stderr, "%s: port %d: %s\n", argv[0], port, e.what());
    return 1;
  }
  return 0;
}
