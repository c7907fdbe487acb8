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

#include "server/worker.hpp"

icap_server::icap_server() = default;

icap_server::~icap_server() {
  worker_list.clear();
  for (auto &l : listeners)
    if (l.fd >= 0) ::close(l.fd);
}

void icap_server::log(icap_log_level level, const std::string &msg) {
  if (log_cb && level <= log_level) log_cb(this, level, msg.c_str(), log_user);
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
  int fd;
  if (int rc = open_listener(reinterpret_cast<sockaddr *>(&ss), len, &fd)) return rc;
  icap_server::Listener l;
  l.host = host ? host : "";
  l.fd = fd;
  l.port = bound_port(fd, &l.family);
  srv->listeners.push_back(l);
  return 0;
}

int server_run(icap_server *srv) {
  // Writing to a socket the client closed raises SIGPIPE; a server must get
  // EPIPE instead. Only a default disposition is changed (documented).
  struct sigaction old;
  if (sigaction(SIGPIPE, nullptr, &old) == 0 && old.sa_handler == SIG_DFL) signal(SIGPIPE, SIG_IGN);
  unsigned n = srv->workers ? srv->workers : std::thread::hardware_concurrency();
  if (n == 0) n = 1;
  std::vector<std::vector<int>> fds(n);
  for (unsigned i = 0; i < n; i++) {
    for (auto &l : srv->listeners) {
      int fd = i == 0 ? l.fd : worker_socket(l);
      if (fd < 0) {
        srv->log(ICAP_LOG_ERROR, "cannot open a listening socket for worker " + std::to_string(i));
        for (auto &v : fds)
          for (int x : v)
            if (x >= 0) ::close(x);
        for (auto &ll : srv->listeners) ll.fd = -1;
        return ICAP_EIO;
      }
      fds[i].push_back(fd);
    }
  }
  // From here on the workers own the sockets.
  for (auto &l : srv->listeners) l.fd = -1;

  int result = 0;
  srv->worker_list.reserve(n);
  for (unsigned i = 0; i < n; i++) {
    srv->worker_list.push_back(std::make_unique<Worker>(srv, i));
    Worker *w = srv->worker_list.back().get();
    int rc = w->init(fds[i]);
    srv->workers_ready.store(i + 1);
    if (rc) {
      result = rc;
      srv->stop_requested = true;
      for (unsigned j = i + 1; j < n; j++)
        for (int x : fds[j]) ::close(x);
      break;
    }
  }
  if (result) {
    for (auto &w : srv->worker_list) w->wake();
  }
  srv->log(ICAP_LOG_INFO, "libicap " ICAP_VERSION_STRING " running with " +
                              std::to_string(srv->worker_list.size()) + " worker(s)");
  for (size_t i = 1; i < srv->worker_list.size(); i++) {
    Worker *w = srv->worker_list[i].get();
    w->thread = std::thread([w] { w->run(); });
  }
  srv->worker_list[0]->run();
  for (size_t i = 1; i < srv->worker_list.size(); i++) srv->worker_list[i]->thread.join();
  srv->log(ICAP_LOG_INFO, "libicap stopped");
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
