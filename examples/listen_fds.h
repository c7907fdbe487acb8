// SPDX-License-Identifier: MIT
/*
 * Listening sockets for the examples: the ones systemd (or any supervisor
 * that speaks its socket-activation protocol) passed in, else --host/--port.
 *
 * The protocol (sd_listen_fds(3)): the parent sets LISTEN_FDS to the number
 * of sockets, which are the descriptors 3, 4, ...; LISTEN_PID to the pid of
 * the process meant to take them (so that a child started by the service
 * does not take them too); LISTEN_FDNAMES optionally names them. The
 * variables are unset after reading, as sd_listen_fds(1) does, for the same
 * reason. Header-only and C99, so that icap-echo (C) and the C++ examples
 * share it; libsystemd is not needed for this.
 */
#ifndef ICAP_EXAMPLE_LISTEN_FDS_H
#define ICAP_EXAMPLE_LISTEN_FDS_H

#include <icap/icap.h>

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#define EXAMPLE_LISTEN_FDS_START 3
#define EXAMPLE_LISTEN_FDS_MAX 64

/* The number of sockets passed to this process (0: none, or meant for
 * another process), or -1 when LISTEN_FDS or LISTEN_PID is malformed. */
static inline int example_listen_fds(void) {
  const char *pid_s = getenv("LISTEN_PID");
  const char *fds_s = getenv("LISTEN_FDS");
  int n = 0;
  if (pid_s && fds_s) {
    char *end;
    errno = 0;
    long pid = strtol(pid_s, &end, 10);
    if (errno || end == pid_s || *end || pid <= 0) {
      n = -1;
    } else if ((pid_t)pid == getpid()) {
      errno = 0;
      long fds = strtol(fds_s, &end, 10);
      n = (errno || end == fds_s || *end || fds < 0 || fds > EXAMPLE_LISTEN_FDS_MAX) ? -1
                                                                                     : (int)fds;
    }
  }
  unsetenv("LISTEN_PID");
  unsetenv("LISTEN_FDS");
  unsetenv("LISTEN_FDNAMES");
  return n;
}

/* Adopts the passed sockets, or listens on host:port when there are none.
 * `*inherited` is the number of sockets adopted. Returns 0 or an ICAP_E*
 * code (ICAP_EINVAL for malformed variables or a descriptor that is not a
 * listening TCP socket). */
static inline int example_listen(icap_server *srv, const char *host, int port, int *inherited) {
  int n = example_listen_fds();
  *inherited = 0;
  if (n < 0) return ICAP_EINVAL;
  if (n == 0) return icap_server_listen(srv, host, port);
  for (int i = 0; i < n; i++) {
    int rc = icap_server_listen_fd(srv, EXAMPLE_LISTEN_FDS_START + i);
    if (rc != 0) return rc;
    (*inherited)++;
  }
  return 0;
}

#endif
