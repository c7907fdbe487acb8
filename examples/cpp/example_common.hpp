// SPDX-License-Identifier: MIT
/*
 * What every C++ example shares: the command line (--host, --port,
 * --workers, -v, plus the example's own options, parsed with getopt_long and
 * checked: `--port abc` is an error), a log callback that
 * prints to stderr, and a clean stop on SIGINT/SIGTERM. An example's main()
 * is parse_args() and serve() with the services it adds.
 *
 * Stopping: the signal handler calls icap::Server::stop(), which only calls
 * icap_server_stop() - async-signal-safe - so run() returns once in-flight
 * transactions finished, and main() returns normally.
 */
#ifndef ICAP_EXAMPLE_COMMON_HPP
#define ICAP_EXAMPLE_COMMON_HPP

#include <getopt.h>
#include <icap/icap.hpp>

#include "../listen_fds.h"

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "../cli.h"

namespace example {

struct Args {
  std::string host = "127.0.0.1";
  int port = 1344;
  unsigned workers = 0;  // 0: one per CPU
  bool verbose = false;
};

/* An example's own option, given with its value: `name` is "--block" etc. */
using OptionFn = std::function<bool(std::string_view name, const char* value)>;

/* A number option: digits only, from 0 to `max`; anything else (`13x0`,
 * `-1`, `70000` for a port) prints why and exits with status 2. */
inline unsigned long long number_option(const char* prog, std::string_view name, const char* value,
                                        unsigned long long max) {
  unsigned long long v = 0;
  if (example_parse_number(value, max, &v) == 0) return v;
  std::fprintf(stderr, "%s: %.*s '%s': expected a number from 0 to %llu\n", prog,
               static_cast<int>(name.size()), name.data(), value, max);
  std::exit(2);
}

/* Parse the command line with getopt_long. `extra(name, value)` handles the
 * example's own options, all of which take a value and are listed in
 * `valued` ("--block"...); `extra_usage` shows them. Prints usage and exits
 * with status 0 on --help and 2 on an error: an unknown option, a missing
 * value, a malformed number, a stray argument. */
inline Args parse_args(int argc, char** argv, const char* what, const char* extra_usage = "",
                       const OptionFn& extra = nullptr,
                       const std::vector<std::string_view>& valued = {},
                       const std::vector<std::string_view>& flags = {}) {
  Args a;
  auto usage = [&](int code) {
    std::fprintf(code ? stderr : stdout,
                 "usage: %s [--host H] [--port P] [--workers N] [-v]%s\n%s\n", argv[0], extra_usage,
                 what);
    std::exit(code);
  };
  enum { kHost = 256, kPort, kWorkers, kExtra };
  std::vector<std::string> names;  // getopt_long keeps pointers to these
  for (std::string_view v : valued) names.emplace_back(v.substr(v.find_first_not_of('-')));
  // Flags (options without a value) follow; `extra` gets them with a null value.
  const std::size_t nvalued = names.size();
  for (std::string_view v : flags) names.emplace_back(v.substr(v.find_first_not_of('-')));
  std::vector<option> options = {{"host", required_argument, nullptr, kHost},
                                 {"port", required_argument, nullptr, kPort},
                                 {"workers", required_argument, nullptr, kWorkers},
                                 {"verbose", no_argument, nullptr, 'v'},
                                 {"help", no_argument, nullptr, 'h'}};
  for (std::size_t i = 0; i < names.size(); ++i)
    options.push_back({names[i].c_str(), i < nvalued ? required_argument : no_argument, nullptr,
                       kExtra + static_cast<int>(i)});
  options.push_back({nullptr, 0, nullptr, 0});

  int opt;
  while ((opt = getopt_long(argc, argv, "vh", options.data(), nullptr)) != -1) {
    if (opt == 'h') {
      usage(0);
    } else if (opt == 'v') {
      a.verbose = true;
    } else if (opt == kHost) {
      a.host = optarg;
    } else if (opt == kPort) {
      a.port = static_cast<int>(number_option(argv[0], "--port", optarg, 65535));
    } else if (opt == kWorkers) {
      a.workers = static_cast<unsigned>(number_option(argv[0], "--workers", optarg, 1024));
    } else if (opt >= kExtra && static_cast<std::size_t>(opt - kExtra) < names.size()) {
      std::string name = "--" + names[opt - kExtra];
      if (!extra || !extra(name, optarg)) {
        std::fprintf(stderr, "%s: %s '%s': not accepted\n", argv[0], name.c_str(),
                     optarg ? optarg : "");
        usage(2);
      }
    } else {
      usage(2);  // getopt_long has printed what is wrong
    }
  }
  if (optind < argc) {
    std::fprintf(stderr, "%s: unexpected argument '%s'\n", argv[0], argv[optind]);
    usage(2);
  }
  return a;
}

/* An example's own option, which takes a value: `set` is given the value of
 * each `name VALUE` on the command line. */
struct Option {
  std::string_view name;  // "--block"
  std::function<void(const char* value)> set;
};

/* parse_args() for an example whose own options are a table. */
inline Args parse_args(int argc, char** argv, const char* what, const char* extra_usage,
                       std::initializer_list<Option> options) {
  std::vector<std::string_view> names;
  for (const Option& o : options) names.push_back(o.name);
  auto set = [&](std::string_view name, const char* value) {
    for (const Option& o : options)
      if (o.name == name) {
        o.set(value);
        return true;
      }
    return false;
  };
  return parse_args(argc, argv, what, extra_usage, set, names);
}

inline std::atomic<icap::Server*> g_server{nullptr};

inline void on_stop_signal(int) {
  // Async-signal-safe: an atomic load and icap_server_stop().
  if (icap::Server* s = g_server.load()) s->stop();
}

/* Listen on the sockets that socket activation passed (LISTEN_FDS, see
 * examples/listen_fds.h), else on --host/--port. */
inline void listen(icap::Server& srv, const Args& a, const char* name) {
  int inherited = 0;
  int rc = example_listen(srv.native_handle(), a.host.c_str(), a.port, &inherited);
  icap::detail::check(rc, inherited ? "icap_server_listen_fd" : "icap_server_listen");
  if (inherited)
    std::fprintf(stderr, "%s: listening on %d inherited socket(s), port %d\n", name, inherited,
                 srv.port(0));
  else
    std::fprintf(stderr, "%s: listening on %s:%d\n", name, a.host.c_str(), srv.port(0));
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
  listen(srv, a, name);

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

/* An example's start-up: a Server set up from the command line (setup()),
 * the example's services added by `add_services(server)`, then run() until
 * SIGINT/SIGTERM, all guarded(). Returns main()'s exit status. */
template <class F>
int serve(const Args& args, const char* name, F&& add_services) {
  return guarded(name, [&] {
    icap::Server server;
    setup(server, args, name);
    add_services(server);
    return run(server, name);
  });
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
