/*
 * What every C++ example shares: the command line (--host, --port,
 * --workers, -v, plus the example's own options), a log callback that
 * prints to stderr, and a clean stop on SIGINT/SIGTERM.
 *
 * Stopping: the signal handler calls icap::Server::stop(), which only calls
 * icap_server_stop() - async-signal-safe - so run() returns once in-flight
 * transactions finished, and main() returns normally.
 */
#ifndef ICAP_EXAMPLE_COMMON_HPP
#define ICAP_EXAMPLE_COMMON_HPP

#include <icap/icap.hpp>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <string_view>
#include <utility>

namespace example {

struct Args {
  std::string host = "127.0.0.1";
  int port = 1344;
  unsigned workers = 0;  // 0: one per CPU
  bool verbose = false;
};

/* An example's own options: each takes a value, given to its function. */
using Options =
    std::initializer_list<std::pair<std::string_view, std::function<void(const char* value)>>>;

/* Parse the command line. `extra` handles the example's own options;
 * `extra_usage` lists them. Prints usage and exits on --help or an error. */
inline Args parse_args(int argc, char** argv, const char* what, const char* extra_usage = "",
                       Options extra = {}) {
  Args a;
  auto usage = [&](int code) {
    std::fprintf(code ? stderr : stdout,
                 "usage: %s [--host H] [--port P] [--workers N] [-v]%s\n%s\n", argv[0], extra_usage,
                 what);
    std::exit(code);
  };
  for (int i = 1; i < argc; ++i) {
    std::string_view opt = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s: %s needs a value\n", argv[0], argv[i]);
        usage(2);
      }
      return argv[++i];
    };
    if (opt == "-h" || opt == "--help") {
      usage(0);
    } else if (opt == "--host") {
      a.host = value();
    } else if (opt == "--port") {
      a.port = std::atoi(value());
    } else if (opt == "--workers") {
      a.workers = static_cast<unsigned>(std::strtoul(value(), nullptr, 10));
    } else if (opt == "-v" || opt == "--verbose") {
      a.verbose = true;
    } else {
      const std::function<void(const char*)>* set = nullptr;
      for (const auto& o : extra)
        if (o.first == opt) set = &o.second;
      if (!set) {
        std::fprintf(stderr, "%s: unknown option %s\n", argv[0], argv[i]);
        usage(2);
      }
      (*set)(value());
    }
  }
  if (a.port < 0 || a.port > 65535) {
    std::fprintf(stderr, "%s: bad --port\n", argv[0]);
    usage(2);
  }
  return a;
}

inline std::atomic<icap::Server*> g_server{nullptr};

inline void on_stop_signal(int) {
  // Async-signal-safe: an atomic load and icap_server_stop().
  if (icap::Server* s = g_server.load()) s->stop();
}

/* Log to stderr, apply --workers, listen, and stop on SIGINT/SIGTERM. */
inline void setup(icap::Server& srv, const Args& a, const char* name) {
  srv.log(
      [name](icap_log_level level, std::string_view msg) {
        static const char* const names[] = {"error", "warn", "info", "debug"};
        // One fprintf per line: stdio locks the stream, so lines from
        // several worker threads do not interleave.
        std::fprintf(stderr, "%s: %s: %.*s\n", name,
                     names[level <= ICAP_LOG_DEBUG ? level : ICAP_LOG_DEBUG],
                     static_cast<int>(msg.size()), msg.data());
      },
      a.verbose ? ICAP_LOG_DEBUG : ICAP_LOG_INFO);
  srv.workers(a.workers);
  srv.listen(a.host, a.port);
  std::fprintf(stderr, "%s: listening on %s:%d\n", name, a.host.c_str(), srv.port(0));

  g_server.store(&srv);
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

/* Run until stopped; returns main()'s exit status. */
inline int run(icap::Server& srv, const char* name) {
  try {
    srv.run();
  } catch (const icap::Error& e) {
    std::fprintf(stderr, "%s: %s\n", name, e.what());
    g_server.store(nullptr);
    return 1;
  }
  g_server.store(nullptr);
  std::fprintf(stderr, "%s: stopped\n", name);
  return 0;
}

/* Run an example's main body, turning a setup error (port in use...) into
 * a message and exit status 1 instead of std::terminate. */
template <class F>
int guarded(const char* name, F&& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", name, e.what());
    return 1;
  }
}

/* Escape text for an HTML page. */
inline std::string html_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

inline std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

/* Answer with a complete HTML page inside the ICAP response (a block page):
 * works in REQMOD (the proxy returns it instead of contacting the origin)
 * and in RESPMOD (it replaces the origin's response). */
inline void send_html_page(icap::Request& req, int code, const char* reason,
                           const std::string& html) {
  req.set_enc_status(code, reason);
  req.set_enc_header("Content-Type", "text/html; charset=utf-8");
  req.set_enc_header("Content-Length", std::to_string(html.size()));
  req.set_enc_header("Cache-Control", "no-store");
  req.send_headers(true);
  req.send_chunk(html);
  req.end();
}

}  // namespace example

#if defined(__cpp_impl_coroutine)
#include <icap/coro.hpp>

#include <chrono>
#include <thread>

namespace example {

/* Output backpressure for streaming coroutines: returns once the
 * connection's write queue is at most `high_water` bytes, so a handler that
 * reads the next piece only after this never queues more than that for a
 * slow client. libicap's C API has no "queue drained" event yet, so this
 * naps on the thread pool (2 ms at a time) while the queue is full; the
 * loop thread never blocks. */
inline icap::Task writable(icap::Request req, std::size_t high_water = 256 * 1024) {
  while (req.write_queue_size() > high_water)
    co_await req.offload([] { std::this_thread::sleep_for(std::chrono::milliseconds(2)); });
}

}  // namespace example
#endif

#endif  // ICAP_EXAMPLE_COMMON_HPP
