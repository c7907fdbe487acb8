// SPDX-License-Identifier: MIT
// icap_server: listening sockets, worker threads, stop.
#include "server/server.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fcntl.h>

#include <csignal>
#include <cerrno>
#include <cstring>
#include <thread>

#include "api/guard.hpp"
#include "server/worker.hpp"

icap_server::icap_server() = default;

icap_server::~icap_server() {
  // icap_server_run() joins every thread it started before it returns; this
  // is the last line of defence, since destroying a joinable std::thread
  // terminates the process.
  stop_requested.store(true);
  for (auto &w : worker_list) w->wake();
  for (auto &w : worker_list)
    if (w->thread.joinable()) w->thread.join();
  worker_list.clear();
  for (auto &l : listeners)
    if (l.fd >= 0) ::close(l.fd);
}

void icap_server::log(icap_log_level level, const std::string &msg) noexcept {
  if (!log_cb || level > log_level) return;
  try {
    log_cb(this, level, msg.c_str(), log_user);
  } catch (...) {
  }
}

namespace icap::detail {

namespace {

int errno_to_icap(int e) {
  switch (e) {
    case EADDRINUSE:
      return ICAP_EADDRINUSE;
    case EADDRNOTAVAIL:
      return ICAP_EADDRNOTAVAIL;
    case ENOMEM:
      return ICAP_ENOMEM;
    case EINVAL:
      return ICAP_EINVAL;
    default:
      return ICAP_EIO;
  }
}

// A listening socket with SO_REUSEPORT, so that each worker loop can have
// its own socket on the same port and the kernel spreads connections.
// (libuv 1.44 has no UV_TCP_REUSEPORT; the socket is handed to uv_tcp_open.)
int open_listener(const sockaddr *addr, socklen_t len, int *out_fd) {
  int fd = ::socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno_to_icap(errno);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
#ifdef SO_REUSEPORT
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
#endif
  if (addr->sa_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (::bind(fd, addr, len) != 0 || ::listen(fd, 1024) != 0) {
    int e = errno;
    ::close(fd);
    return errno_to_icap(e);
  }
  *out_fd = fd;
  return 0;
}

int sockaddr_for(const std::string &host, int port, sockaddr_storage *ss, socklen_t *len) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo *res = nullptr;
  std::string p = std::to_string(port);
  if (getaddrinfo(host.empty() ? nullptr : host.c_str(), p.c_str(), &hints, &res) != 0 || !res)
    return ICAP_EADDRNOTAVAIL;
  memcpy(ss, res->ai_addr, res->ai_addrlen);
  *len = res->ai_addrlen;
  freeaddrinfo(res);
  return 0;
}

// Another socket on the same address and (already chosen) port for a
// further worker, or a duplicate of the first when SO_REUSEPORT is missing.
int worker_socket(const icap_server::Listener &l) {
  if (l.inherited) return ::fcntl(l.fd, F_DUPFD_CLOEXEC, 0);
  sockaddr_storage ss;
  socklen_t len;
  if (sockaddr_for(l.host, l.port, &ss, &len) == 0) {
    int fd;
    if (open_listener(reinterpret_cast<sockaddr *>(&ss), len, &fd) == 0) return fd;
  }
  return ::fcntl(l.fd, F_DUPFD_CLOEXEC, 0);
}

}  // namespace

// SO_REUSEPORT would let a second server (same user) bind a port that is in
// use and silently take half of its connections. A probe socket without it
// asks the kernel first, so a taken port is reported as ICAP_EADDRINUSE; it
// also picks the port when 0 was asked for.
int probe_port(sockaddr_storage *ss, socklen_t len) {
  int fd = ::socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno_to_icap(errno);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (ss->ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<sockaddr *>(ss), len) != 0) {
    int e = errno;
    ::close(fd);
    return errno_to_icap(e);
  }
  sockaddr_storage bound;
  socklen_t blen = sizeof bound;
  getsockname(fd, reinterpret_cast<sockaddr *>(&bound), &blen);
  if (ss->ss_family == AF_INET6)
    reinterpret_cast<sockaddr_in6 *>(ss)->sin6_port =
        reinterpret_cast<sockaddr_in6 *>(&bound)->sin6_port;
  else
    reinterpret_cast<sockaddr_in *>(ss)->sin_port =
        reinterpret_cast<sockaddr_in *>(&bound)->sin_port;
  ::close(fd);
  return 0;
}

// The port a bound socket is on (and its family), or -1.
static int bound_port(int fd, int *family) {
  sockaddr_storage bound;
  socklen_t blen = sizeof bound;
  if (getsockname(fd, reinterpret_cast<sockaddr *>(&bound), &blen) != 0) return -1;
  *family = bound.ss_family;
  if (bound.ss_family == AF_INET6)
    return ntohs(reinterpret_cast<sockaddr_in6 *>(&bound)->sin6_port);
  if (bound.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in *>(&bound)->sin_port);
  return -1;
}

int server_listen(icap_server *srv, const char *host, int port) {
  sockaddr_storage ss;
  socklen_t len;
  if (int rc = sockaddr_for(host ? host : "", port, &ss, &len)) return rc;
  if (int rc = probe_port(&ss, len)) return rc;
  // Everything that allocates comes before the socket, so that a failure
  // (std::bad_alloc, mapped by the caller) leaves no socket open.
  icap_server::Listener l;
  l.host = host ? host : "";
  srv->listeners.reserve(srv->listeners.size() + 1);
  int fd;
  if (int rc = open_listener(reinterpret_cast<sockaddr *>(&ss), len, &fd)) return rc;
  l.fd = fd;
  l.port = bound_port(fd, &l.family);
  srv->listeners.push_back(std::move(l));
  return 0;
}

namespace {

// Opens one set of listening sockets per worker (worker 0 takes the bound
// ones). On failure nothing stays open and the listeners hold no socket.
int open_worker_sockets(icap_server *srv, unsigned n, std::vector<std::vector<int>> &fds) {
  auto close_all = [&] {
    for (auto &v : fds)
      for (int x : v) ::close(x);
    for (auto &l : srv->listeners) l.fd = -1;
  };
  try {
    fds.resize(n);
    for (unsigned i = 0; i < n; i++) {
      for (auto &l : srv->listeners) {
        int fd = i == 0 ? l.fd : worker_socket(l);
        if (fd < 0) {
          guard_void([&] {
            srv->log(ICAP_LOG_ERROR,
                     "cannot open a listening socket for worker " + std::to_string(i));
          });
          close_all();
          return ICAP_EIO;
        }
        try {
          fds[i].push_back(fd);
        } catch (...) {
          if (i != 0) ::close(fd);
          throw;
        }
      }
    }
  } catch (...) {
    close_all();
    return exception_code();
  }
  // From here on the workers own the sockets.
  for (auto &l : srv->listeners) l.fd = -1;
  return 0;
}

// Creates and initialises the workers. On failure the stop flag is set and
// the sockets of workers that were not created are closed; the workers in
// the list must still run (and so close what they set up).
int create_workers(icap_server *srv, std::vector<std::vector<int>> &fds) {
  unsigned n = static_cast<unsigned>(fds.size());
  int result = 0;
  try {
    srv->worker_list.reserve(n);  // icap_server_stop() reads the list meanwhile
  } catch (...) {
    result = exception_code();
  }
  for (unsigned i = 0; i < n; i++) {
    if (result == 0) {
      try {
        srv->worker_list.push_back(std::make_unique<Worker>(srv, i));
      } catch (...) {
        result = exception_code();
      }
      if (result == 0) {
        result = srv->worker_list.back()->init(fds[i]);  // owns fds[i] now
        srv->workers_ready.store(i + 1);
        continue;
      }
    }
    for (int x : fds[i]) ::close(x);
  }
  if (result != 0) {
    srv->stop_requested = true;
    for (auto &w : srv->worker_list) w->wake();
  }
  return result;
}

}  // namespace

void server_stop(icap_server *srv);

int server_run(icap_server *srv) {
  // Writing to a socket the client closed raises SIGPIPE; a server must get
  // EPIPE instead. Only a default disposition is changed (documented).
  struct sigaction old;
  if (sigaction(SIGPIPE, nullptr, &old) == 0 && old.sa_handler == SIG_DFL) signal(SIGPIPE, SIG_IGN);
  unsigned n = srv->workers ? srv->workers : std::thread::hardware_concurrency();
  if (n == 0) n = 1;
  std::vector<std::vector<int>> fds;
  if (int rc = open_worker_sockets(srv, n, fds)) return rc;
  int result = create_workers(srv, fds);
  if (srv->worker_list.empty()) return result;
  guard_void([&] {
    srv->log(ICAP_LOG_INFO, "libicap " ICAP_VERSION_STRING " running with " +
                                std::to_string(srv->worker_list.size()) + " worker(s)");
  });
  // Worker 0 runs on this thread, the others on their own. A thread that
  // cannot be started stops the server: that worker's loop then runs here,
  // once, so that it closes its handles, and every started thread is joined
  // before this returns (no worker may outlive icap_server_run()).
  size_t started = srv->worker_list.size();
  for (size_t i = 1; i < srv->worker_list.size(); i++) {
    Worker *w = srv->worker_list[i].get();
    try {
      w->thread = std::thread([w] { w->run(); });
    } catch (...) {
      if (result == 0) result = exception_code();
      started = i;
      break;
    }
  }
  if (started < srv->worker_list.size()) {
    guard_void([&] { srv->log(ICAP_LOG_ERROR, "cannot start a worker thread: stopping"); });
    server_stop(srv);
    for (size_t i = started; i < srv->worker_list.size(); i++) srv->worker_list[i]->run();
  }
  srv->worker_list[0]->run();
  for (size_t i = 1; i < started; i++) srv->worker_list[i]->thread.join();
  guard_void([&] { srv->log(ICAP_LOG_INFO, "libicap stopped"); });
  return result;
}

void server_stop(icap_server *srv) {
  srv->stop_requested.store(true);
  unsigned n = srv->workers_ready.load();
  for (unsigned i = 0; i < n; i++) srv->worker_list[i]->wake();
}

}  // namespace icap::detail

namespace icap::detail {

// Adopts a listening TCP socket that someone else bound (systemd, a
// supervisor, the previous process). Checked here so that a wrong
// descriptor fails this call, not icap_server_run(); on failure the caller
// still owns `fd`.
int server_listen_fd(icap_server *srv, int fd) {
  int type = 0, listening = 0;
  socklen_t n = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &n) != 0 || type != SOCK_STREAM)
    return ICAP_EINVAL;
  n = sizeof listening;
  if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &n) != 0 || !listening)
    return ICAP_EINVAL;
  int family = 0;
  int port = bound_port(fd, &family);
  if (port <= 0 || (family != AF_INET && family != AF_INET6)) return ICAP_EINVAL;
  icap_server::Listener l;
  l.fd = fd;
  l.family = family;
  l.port = port;
  l.inherited = true;
  srv->listeners.push_back(l);
  // Only now is the descriptor ours: do not leak it into programs that the
  // service may start (the socket stays shared with whoever passed it).
  int flags = ::fcntl(fd, F_GETFD);
  if (flags >= 0) ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
  return 0;
}

}  // namespace icap::detail
