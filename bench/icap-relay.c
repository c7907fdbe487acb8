// SPDX-License-Identifier: MIT
/*
 * icap-relay: the "limit" peer of bench/compare.sh.
 *
 * It answers the requests icap-bench sends with canned heads and does as
 * little work per byte as an ICAP server can do: it finds the end of the ICAP
 * head, reads the Encapsulated offsets (the only header it looks at), skips
 * or copies the encapsulated HTTP header bytes verbatim, and follows chunk
 * sizes to find the end of the body.  Nothing else is parsed or validated.
 *
 *   OPTIONS                      -> a canned 200 (Methods, ISTag, no body)
 *   REQMOD/RESPMOD with Allow: 204 -> a canned 204 once the request is read
 *   RESPMOD without Allow: 204   -> a 200 head, the res-hdr bytes received,
 *                                   and the body chunks echoed as they arrive,
 *                                   framed as received
 *
 * Preview (100 Continue) is not implemented: the preview scenarios of
 * icap-bench are not supported.  Hostile input is not a goal either: a
 * request it cannot frame closes the connection.
 *
 * Threads: --threads T (default 2), each with its own epoll instance and its
 * own SO_REUSEPORT listener on the same port, so that the kernel spreads the
 * connections and the threads share nothing.  Level-triggered; a connection
 * is only re-armed (epoll_ctl) when a write does not complete at once.
 *
 * usage: icap-relay [--host IP] [--port N] [--threads T]
 */
#define _GNU_SOURCE

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define IN_CAP (256u * 1024u)  /* read buffer per connection */
#define HEAD_MAX (64u * 1024u) /* ICAP head + encapsulated headers */

static const char OPTIONS_200[] =
    "ICAP/1.0 200 OK\r\n"
    "Methods: RESPMOD, REQMOD\r\n"
    "ISTag: \"icap-relay\"\r\n"
    "Allow: 204\r\n"
    "Encapsulated: null-body=0\r\n"
    "\r\n";
static const char NO_CONTENT_204[] =
    "ICAP/1.0 204 No Content\r\n"
    "ISTag: \"icap-relay\"\r\n"
    "Encapsulated: null-body=0\r\n"
    "\r\n";

enum state { S_HEAD, S_CSIZE, S_CDATA, S_CCRLF, S_TRAILER };

struct conn {
  int fd;
  enum state st;
  bool echo;      /* copy the body to the output */
  bool reply_204; /* answer with the canned 204 at the end of the request */
  uint64_t left;  /* S_CDATA: chunk bytes left; S_CCRLF: CRLF bytes left */
  char *in;
  size_t in_len;
  char *out;
  size_t out_len, out_off, out_cap;
  bool want_out; /* registered for EPOLLOUT, not reading */
};

static void die(const char *what) {
  perror(what);
  exit(1);
}

static void out_add(struct conn *c, const void *p, size_t n) {
  if (c->out_len + n > c->out_cap) {
    size_t cap = c->out_cap ? c->out_cap : 64 * 1024;
    while (cap < c->out_len + n) cap *= 2;
    c->out = realloc(c->out, cap);
    if (!c->out) die("realloc");
    c->out_cap = cap;
  }
  memcpy(c->out + c->out_len, p, n);
  c->out_len += n;
}

/* Offset of "name=" in the Encapsulated value [v, e), or -1. */
static long encap_offset(const char *v, const char *e, const char *name) {
  size_t nl = strlen(name);
  for (const char *p = v; p + nl < e; p++)
    if (memcmp(p, name, nl) == 0 && p[nl] == '=') return strtol(p + nl + 1, NULL, 10);
  return -1;
}

/* A complete ICAP head is in h[0..hlen) with avail bytes of input from h on;
 * is everything up to the body there too?  Returns the number of bytes consumed (head +
 * encapsulated headers), 0 if more input is needed, -1 if the request cannot be framed. */
static long take_head(struct conn *c, const char *h, size_t avail, size_t hlen) {
  const char *he = h + hlen;
  const char *enc = memmem(h, hlen, "\r\nEncapsulated:", 15);
  if (!enc) return -1;
  const char *v = enc + 15, *ve = memchr(v, '\r', (size_t)(he - v));
  long body = encap_offset(v, ve, "null-body");
  bool has_body = body < 0;
  if (has_body) body = encap_offset(v, ve, "res-body");
  if (body < 0) body = encap_offset(v, ve, "req-body");
  if (body < 0 || hlen + (size_t)body > HEAD_MAX) return -1;
  if (avail < hlen + (size_t)body) return 0;
  if (memcmp(h, "OPTIONS ", 8) == 0) {
    out_add(c, OPTIONS_200, sizeof OPTIONS_200 - 1);
    c->reply_204 = false;
    c->echo = false;
  } else {
    c->reply_204 = memmem(h, hlen, "\r\nAllow: 204\r\n", 14) != NULL;
    c->echo = !c->reply_204 && has_body;
    if (!c->reply_204) {
      long res = encap_offset(v, ve, "res-hdr");
      if (res < 0 || res > body) return -1;
      char head[160];
      int n = snprintf(head, sizeof head,
                       "ICAP/1.0 200 OK\r\nISTag: \"icap-relay\"\r\n"
                       "Encapsulated: res-hdr=0, %s=%ld\r\n\r\n",
                       has_body ? "res-body" : "null-body", body - res);
      out_add(c, head, (size_t)n);
      out_add(c, h + hlen + res, (size_t)(body - res));
    }
  }
  c->st = has_body ? S_CSIZE : S_HEAD;
  if (!has_body && c->reply_204) out_add(c, NO_CONTENT_204, sizeof NO_CONTENT_204 - 1);
  return (long)hlen + body;
}

/* Consume as much of c->in as possible; false if the request is unframeable. */
static bool process(struct conn *c) {
  size_t at = 0;
  while (at < c->in_len) {
    char *p = c->in + at;
    size_t n = c->in_len - at;
    size_t used = 0;
    if (c->st == S_HEAD) {
      char *e = memmem(p, n, "\r\n\r\n", 4);
      if (!e) {
        if (n > HEAD_MAX) return false;
        break;
      }
      long k = take_head(c, p, n, (size_t)(e - p) + 4);
      if (k < 0) return false;
      if (k == 0) break;
      at += (size_t)k;
      continue;
    }
    if (c->st == S_CDATA || c->st == S_CCRLF) {
      used = n < c->left ? n : (size_t)c->left;
      c->left -= used;
      if (c->left == 0) {
        if (c->st == S_CDATA) {
          c->st = S_CCRLF;
          c->left = 2;
        } else {
          c->st = S_CSIZE;
        }
      }
    } else { /* a chunk-size line or a trailer line */
      char *lf = memchr(p, '\n', n);
      if (!lf) {
        if (n > 4096) return false;
        break;
      }
      used = (size_t)(lf - p) + 1;
      if (c->st == S_CSIZE) {
        char *end;
        unsigned long long sz = strtoull(p, &end, 16);
        if (end == p) return false;
        c->left = sz;
        c->st = sz ? S_CDATA : S_TRAILER;
      } else if (used <= 2) { /* the empty line ending the trailer */
        c->st = S_HEAD;
      }
    }
    if (c->echo) out_add(c, p, used);
    at += used;
    if (c->st == S_HEAD && c->reply_204) out_add(c, NO_CONTENT_204, sizeof NO_CONTENT_204 - 1);
  }
  memmove(c->in, c->in + at, c->in_len - at);
  c->in_len -= at;
  return true;
}

/* Write what is queued; true if all of it went out. */
static bool flush(struct conn *c) {
  while (c->out_off < c->out_len) {
    ssize_t w = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    c->out_off += (size_t)w;
  }
  c->out_off = c->out_len = 0;
  return true;
}

static void conn_free(struct conn *c) {
  close(c->fd);
  free(c->in);
  free(c->out);
  free(c);
}

struct thread_arg {
  int lfd;
};

static void *serve(void *arg) {
  int lfd = ((struct thread_arg *)arg)->lfd;
  int ep = epoll_create1(0);
  if (ep < 0) die("epoll_create1");
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0) die("epoll_ctl");
  struct epoll_event evs[64];
  for (;;) {
    int n = epoll_wait(ep, evs, 64, -1);
    for (int i = 0; i < n; i++) {
      struct conn *c = evs[i].data.ptr;
      if (!c) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
        if (fd < 0) continue;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c = calloc(1, sizeof *c);
        if (!c || !(c->in = malloc(IN_CAP))) die("malloc");
        c->fd = fd;
        struct epoll_event cev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev) < 0) conn_free(c);
        continue;
      }
      bool ok = true;
      if (c->want_out) {
        if (errno = 0, (ok = flush(c)) && c->out_len == 0) {
          c->want_out = false;
          struct epoll_event cev = {.events = EPOLLIN, .data.ptr = c};
          epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &cev);
        } else if (!ok && errno == EAGAIN) {
          ok = true;
        }
      } else {
        ssize_t r = read(c->fd, c->in + c->in_len, IN_CAP - c->in_len);
        if (r <= 0) {
          ok = r < 0 && (errno == EAGAIN || errno == EINTR);
        } else {
          c->in_len += (size_t)r;
          ok = process(c) && c->in_len < IN_CAP;
          if (ok && !flush(c)) {
            ok = errno == EAGAIN;
            if (ok) {
              c->want_out = true;
              struct epoll_event cev = {.events = EPOLLOUT, .data.ptr = c};
              epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &cev);
            }
          }
        }
      }
      if (!ok) {
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        conn_free(c);
      }
    }
  }
  return NULL;
}

static int listener(const char *host, int *port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (fd < 0) die("socket");
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)*port)};
  if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
    fprintf(stderr, "icap-relay: --host must be a numeric IPv4 address\n");
    exit(2);
  }
  if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
  if (listen(fd, 1024) < 0) die("listen");
  socklen_t al = sizeof a;
  getsockname(fd, (struct sockaddr *)&a, &al);
  *port = ntohs(a.sin_port);
  return fd;
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1", *port_s = "1344", *threads_s = "2";
  /* Every option takes a value: pairs of (name, where the value goes). */
  struct {
    const char *name;
    const char **value;
  } opts[] = {{"--host", &host}, {"--port", &port_s}, {"--threads", &threads_s}};
  for (int i = 1; i < argc; i += 2) {
    size_t k = 0;
    while (k < sizeof opts / sizeof opts[0] && strcmp(argv[i], opts[k].name)) k++;
    if (k == sizeof opts / sizeof opts[0] || i + 1 >= argc) {
      fprintf(stderr, "usage: icap-relay [--host IP] [--port N] [--threads T]\n");
      return 2;
    }
    *opts[k].value = argv[i + 1];
  }
  int port = atoi(port_s), threads = atoi(threads_s);
  if (threads < 1 || threads > 64) threads = 2;
  signal(SIGPIPE, SIG_IGN);
  pthread_t tid[64];
  struct thread_arg args[64];
  for (int t = 0; t < threads; t++) {
    args[t].lfd = listener(host, &port); /* port 0: the first bind picks it */
    if (t + 1 < threads && pthread_create(&tid[t], NULL, serve, &args[t]) != 0) die("thread");
  }
  printf("icap-relay: listening on icap://%s:%d/ with %d thread(s)\n", host, port, threads);
  fflush(stdout);
  serve(&args[threads - 1]);
  return 0;
}
