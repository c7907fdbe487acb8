// SPDX-License-Identifier: MIT
// Inherited listening sockets (icap_server_listen_fd) and the drain that a
// restart relies on: a stopping server stops accepting from a socket it
// shares with someone else, leaves the backlog to them, and answers the
// requests that were already on their way on its idle connections.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "harness.hpp"

using namespace itest;

namespace {

// A TCP socket bound to 127.0.0.1 on a port the kernel picks; listening
// unless `listen_too` is false. Returns the fd (or -1) and the port.
int bound_socket(int *port, bool listen_too = true, int type = SOCK_STREAM) {
  int fd = ::socket(AF_INET, type | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0 ||
      (listen_too && ::listen(fd, 128) != 0)) {
    ::close(fd);
    return -1;
  }
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len);
  *port = ntohs(a.sin_port);
  return fd;
}

bool fd_open(int fd) { return fcntl(fd, F_GETFD) >= 0; }

}  // namespace

TEST(ListenFd, RejectsWhatIsNotAListeningTcpSocket) {
  icap_server *srv = nullptr;
  ASSERT_EQ(icap_server_new(&srv), 0);
  EXPECT_EQ(icap_server_listen_fd(srv, -1), ICAP_EINVAL);
  EXPECT_EQ(icap_server_listen_fd(nullptr, 0), ICAP_EINVAL);
  int port = 0;
  int unlistened = bound_socket(&port, false);
  int udp = bound_socket(&port, false, SOCK_DGRAM);
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  ASSERT_GE(unlistened, 0);
  ASSERT_GE(udp, 0);
  for (int fd : {unlistened, udp, pipefd[0]}) {
    EXPECT_EQ(icap_server_listen_fd(srv, fd), ICAP_EINVAL) << "fd " << fd;
    // A failed call leaves the descriptor to the caller.
    EXPECT_TRUE(fd_open(fd)) << "fd " << fd << " was closed by a failed call";
  }
  EXPECT_EQ(icap_server_port(srv, 0), ICAP_ENOENT);
  icap_server_free(srv);
  for (int fd : {unlistened, udp, pipefd[0], pipefd[1]}) {
    EXPECT_TRUE(fd_open(fd));
    ::close(fd);
  }
}

// The adopted socket is served by both workers' loops (each polls it), its
// port is reported, and after the stop the socket the caller kept still
// has its backlog: a connection made after the stop waits there for the
// next owner (here the test itself accepts it) instead of being reset.
TEST(ListenFd, TwoWorkersServeAnAdoptedSocketAndLeaveItsBacklog) {
  int port = 0;
  int held = bound_socket(&port);
  ASSERT_GE(held, 0);
  int given = fcntl(held, F_DUPFD_CLOEXEC, 0);
  ASSERT_GE(given, 0);

  TestServer s(2);
  std::atomic<int> calls{0};
  ASSERT_NE(add_echo_service(s, "echo", &calls), nullptr);
  ASSERT_EQ(icap_server_listen_fd(s.srv(), given), 0);
  EXPECT_EQ(icap_server_port(s.srv(), 0), port);
  ASSERT_TRUE(s.start());  // also listens on a port of its own (index 1)
  ASSERT_EQ(s.port(), port);

  const int kClients = 40;
  for (int i = 0; i < kClients; i++) {
    Client c;
    ASSERT_EQ(c.connect(port), 0);
    Response r = round_trip(
        c, reqmod_get("echo", "http://origin.example/" + std::to_string(i), "Allow: 204\r\n"));
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.code, 204);
  }
  EXPECT_EQ(calls.load(), kClients);
  s.stop_and_join();
  EXPECT_EQ(s.run_result(), 0);

  // The server's copy is closed; the caller's socket still listens.
  Client late;
  ASSERT_EQ(late.connect(port), 0);
  pollfd p{held, POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 5000), 1) << "the connection did not reach the shared backlog";
  int accepted = ::accept(held, nullptr, nullptr);
  EXPECT_GE(accepted, 0) << strerror(errno);
  if (accepted >= 0) ::close(accepted);
  ::close(held);
}

// The race a restart hits: a kept-alive connection is idle when the drain
// begins, and its next request is already on the wire. Closing it at once
// would lose that request; it must be answered, with Connection: close,
// and only then closed.
TEST(Drain, RequestArrivingOnIdleConnectionJustAfterStopIsAnswered) {
  TestServer s(1);
  ASSERT_TRUE(start_with_echo(s));
  Client c;
  ASSERT_TRUE(open_idle(c, s));

  s.stop();
  // Let the loop begin the drain before the request arrives.
  std::this_thread::sleep_for(ms(100));
  EXPECT_FALSE(s.returned()) << "run returned with a connection that may still send";
  Response r2 =
      round_trip(c, reqmod_get("echo", "http://origin.example/late", "Allow: 204\r\n"), ms(5000));
  ASSERT_TRUE(r2.ok) << r2.error << "\n" << s.logs_text();
  EXPECT_EQ(r2.code, 204);
  EXPECT_TRUE(r2.conn_close()) << "an answer during the drain must close the connection";
  EXPECT_TRUE(c.wait_closed(ms(3000)));
  EXPECT_TRUE(c.pending().empty());
  c.close();
  EXPECT_TRUE(s.wait_returned(ms(5000)));
}

// A connection that stays idle through the drain is closed (a FIN, no
// bytes) once the grace period has passed, well before the drain timeout,
// and run returns then.
TEST(Drain, IdleConnectionIsClosedAfterTheGraceNotAtTheDrainTimeout) {
  TestServer s;
  ASSERT_NE(add_echo_service(s, "echo"), nullptr);
  s.set_limit(ICAP_LIMIT_DRAIN_TIMEOUT_MS, 20000);
  ASSERT_TRUE(s.start());
  Client c;
  ASSERT_TRUE(open_idle(c, s));
  s.stop();
  EXPECT_TRUE(c.wait_closed(ms(10000))) << "idle connection not closed during the drain";
  EXPECT_TRUE(c.pending().empty()) << c.pending();
  c.close();
  EXPECT_TRUE(s.wait_returned(ms(10000))) << "run waited for the drain timeout";
}
