// SPDX-License-Identifier: MIT
/* A C program that uses the installed libicap through pkg-config alone:
 * it starts a server on a free port in a thread, asks OPTIONS over TCP and
 * checks the answer, then stops the server. */
#include <icap/icap.h>

#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int handler(icap_request *req, void *user) {
  (void)user;
  return icap_request_no_adaptation(req);
}

static void *run(void *srv) {
  icap_server_run((icap_server *)srv);
  return NULL;
}

int main(void) {
  icap_server *srv;
  icap_service *svc;
  if (icap_server_new(&srv) || icap_server_add_service(srv, "echo", &svc) ||
      icap_service_set_handler(svc, ICAP_METHOD_RESPMOD, handler, NULL) ||
      icap_server_set_workers(srv, 1) || icap_server_listen(srv, "127.0.0.1", 0)) {
    fprintf(stderr, "setup failed\n");
    return 1;
  }
  int port = icap_server_port(srv, 0);
  pthread_t t;
  pthread_create(&t, NULL, run, srv);

  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  struct timeval tv = {10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  int ok = 0;
  if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
    const char req[] = "OPTIONS icap://127.0.0.1/echo ICAP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (write(fd, req, sizeof req - 1) == (ssize_t)(sizeof req - 1)) {
      char buf[2048];
      size_t got = 0;
      while (got < sizeof buf - 1) {
        ssize_t n = read(fd, buf + got, sizeof buf - 1 - got);
        if (n <= 0) break;
        got += (size_t)n;
        buf[got] = 0;
        if (strstr(buf, "\r\n\r\n")) break;
      }
      buf[got] = 0;
      ok = strncmp(buf, "ICAP/1.0 200 ", 13) == 0 && strstr(buf, "Methods: RESPMOD") != NULL;
      if (!ok) fprintf(stderr, "unexpected answer: %s\n", buf);
    }
  }
  close(fd);
  icap_server_stop(srv);
  pthread_join(t, NULL);
  icap_server_free(srv);
  printf("%s: libicap %s\n", ok ? "ok" : "FAILED", icap_version_string());
  return ok ? 0 : 1;
}
