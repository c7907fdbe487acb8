// SPDX-License-Identifier: MIT
/* A C++ program that uses the installed libicap through icap/icap.hpp: it
 * starts a server on a free loopback port in a thread, then stops it. Built
 * against the static libicap.a, it only links when the package metadata
 * names the C++ runtime and libuv (tests/packaging/check-static.sh). */
#include <icap/icap.hpp>

#include <cstdio>
#include <thread>

int main() {
  try {
    icap::Server srv;
    srv.service("echo").respmod([](icap::Request& req) { req.no_adaptation_required(); });
    srv.workers(1);
    srv.listen("127.0.0.1", 0);
    const int port = srv.port(0);
    std::thread loop([&srv] { srv.run(); });
    srv.stop();
    loop.join();
    if (port <= 0) {
      std::fprintf(stderr, "FAILED: no port (%d)\n", port);
      return 1;
    }
    std::printf("ok: C++ server listened on 127.0.0.1:%d, libicap %s\n", port,
                icap_version_string());
    return 0;
  } catch (const icap::Error& e) {
    std::fprintf(stderr, "FAILED: %s\n", e.what());
    return 1;
  }
}
