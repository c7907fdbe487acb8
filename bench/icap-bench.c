// SPDX-License-Identifier: MIT
/*
 * icap-bench - closed-loop load generator for ICAP (RFC 3507) servers.
 *
 * C connections are spread over T threads (default 1), each thread running
 * its own libuv loop.  Every connection is a keep-alive TCP connection that
 * sends one request, reads and validates the complete response, then sends
 * the next one.  The request body is written while the response is read, so
 * a server that streams its answer never deadlocks the client.
 *
 * Every response is parsed completely: ICAP status line and headers,
 * Encapsulated offsets, the encapsulated HTTP header blocks, the chunked
 * body, and (for echo scenarios) the de-chunked body is compared byte by
 * byte against what was sent, incrementally while it arrives.
 *
 * See bench/README.md for the scenarios and the output fields.
 */
#define _POSIX_C_SOURCE 200809L

#include <uv.h>

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ limits */

#define MAX_CHUNK (16u << 20)        /* largest --chunk accepted */
#define CHUNKS_PER_WRITE 4           /* chunks per uv_write() */
#define ICAP_HEAD_MAX 65536u         /* ICAP header block limit */
#define ENCAP_HDR_MAX (256u * 1024u) /* encapsulated HTTP headers limit */
#define LINE_MAX_LEN 4096u           /* chunk-size / trailer line limit */
#define RBUF_SIZE (256u * 1024u)     /* per-loop read buffer */
#define PAT_LEN ((1u << 20) + 1009u) /* body pattern period */
#define MAX_CONNECTIONS 100000
#define MAX_THREADS 64
#define MAX_REASONS 48
#define RECONNECT_DELAY_MS 50 /* after a connection error */

/* --------------------------------------------------------------- helpers */

static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("icap-bench: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(2);
}

static void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) die("out of memory (%zu bytes)", n);
  return p;
}

static void *xcalloc(size_t n, size_t sz) {
  void *p = calloc(n ? n : 1, sz ? sz : 1);
  if (!p) die("out of memory");
  return p;
}

static int lc(int ch) { return (ch >= 'A' && ch <= 'Z') ? ch + 32 : ch; }

/* case-insensitive compare of s[0..n) with the NUL-terminated word w */
static bool ieq(const char *s, size_t n, const char *w) {
  size_t i;
  for (i = 0; i < n; i++) {
    if (w[i] == '\0' || lc((unsigned char)s[i]) != lc((unsigned char)w[i])) return false;
  }
  return w[n] == '\0';
}

static uint64_t splitmix64(uint64_t *state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static uint64_t mix64(uint64_t x) { return splitmix64(&x); }

/* --------------------------------------------------------------- config */

enum scen_kind { SC_OPTIONS, SC_RESPMOD204, SC_REQMOD204, SC_ECHO, SC_PREVIEW };

static struct config {
  const char *host;
  int port;
  const char *service;
  const char *scenario;
  enum scen_kind kind;
  uint64_t body_size; /* body bytes per request (RESPMOD) */
  int64_t preview;    /* Preview: value, -1 = no preview */
  bool allow204;
  int connections;
  int threads;
  double duration;   /* seconds, 0 = use requests */
  uint64_t requests; /* total requests, 0 = use duration */
  double warmup;
  double timeout;  /* per request, seconds */
  double max_time; /* hard bound on the whole run */
  bool json;
  int verbose;    /* print the first N failures */
  int idle_n;     /* --idle N */
  double hold;    /* --hold S */
  int idle_conc;  /* connections being set up at once */
  uint64_t chunk; /* --chunk: request body chunk size */
  int server_pid; /* --server-pid: whose CPU time to report, 0 = none */
  bool sweep;     /* --sweep */
  struct sockaddr_storage addr;
} cfg = {
    .host = "127.0.0.1",
    .port = 1344,
    .service = "echo",
    .scenario = "options",
    .preview = -1,
    .connections = 1,
    .threads = 1,
    .timeout = 10.0,
    .max_time = 0,
    .verbose = 0,
    .hold = 10.0,
    .idle_conc = 256,
    .chunk = 65536,
};

/* The request head (ICAP headers + encapsulated HTTP headers) is the same for
 * every request of a run; only the body bytes differ. */
static char *req_head;
static size_t req_head_len;
static char *reqmod_line; /* request line we send in REQMOD */
static size_t reqmod_line_len;
static unsigned char *pattern; /* PAT_LEN + cfg.chunk bytes */

static const char TERM_LAST[] = "0\r\n\r\n";
static const char TERM_IEOF[] = "0; ieof\r\n\r\n";
static const char CRLF[] = "\r\n";

/* ------------------------------------------------------------ histogram */

/* Log-linear buckets over nanoseconds: values below 256 are exact, above
 * that every power of two is split into 128 buckets (< 0.8 % error). */
#define H_SUB_BITS 7
#define H_SUB (1u << H_SUB_BITS)
#define H_BUCKETS ((64 - H_SUB_BITS + 1) * H_SUB)

static unsigned hist_index(uint64_t v) {
  if (v < 2 * H_SUB) return (unsigned)v;
  int msb = 63 - __builtin_clzll(v);
  int shift = msb - H_SUB_BITS;
  return (unsigned)((shift + 1) * H_SUB + ((v >> shift) - H_SUB));
}

static uint64_t hist_value(unsigned idx) /* middle of the bucket */
{
  if (idx < 2 * H_SUB) return idx;
  unsigned shift = idx / H_SUB - 1;
  uint64_t m = (idx % H_SUB) + H_SUB;
  return (m << shift) + ((1ull << shift) >> 1);
}

/* ---------------------------------------------------------------- stats */

struct reason {
  const char *why;
  uint64_t n;
};

struct stats {
  uint64_t completed;     /* valid responses counted in the window */
  uint64_t completed_all; /* incl. warm-up */
  uint64_t errors;
  uint64_t invalid;
  uint64_t reconnects;
  uint64_t server_closes; /* Connection: close honoured */
  uint64_t st100, st200, st204;
  uint64_t body_sent; /* entity-body payload bytes, counted requests */
  uint64_t body_recv;
  uint64_t lat_sum; /* ns */
  uint64_t lat_max;
  uint64_t hist[H_BUCKETS];
  struct reason reasons[MAX_REASONS]; /* "invalid: ..."/"error: ..." */
  int nreasons;
  /* idle mode */
  uint64_t idle_established, idle_failed, idle_closed;
};

static void add_reason(struct stats *st, const char *why) {
  int i;
  for (i = 0; i < st->nreasons; i++) {
    if (st->reasons[i].why == why || strcmp(st->reasons[i].why, why) == 0) {
      st->reasons[i].n++;
      return;
    }
  }
  if (st->nreasons < MAX_REASONS) {
    st->reasons[st->nreasons].why = why;
    st->reasons[st->nreasons].n = 1;
    st->nreasons++;
  }
}

/* ------------------------------------------------------- run-wide state */

enum phase { PH_WARMUP, PH_MEASURE, PH_DONE };

static atomic_uint_fast64_t issued; /* --requests budget taken */
static atomic_int verbose_left;

/* ---------------------------------------------------------------- conns */

enum cstate { CS_FREE, CS_CONNECTING, CS_OPEN, CS_CLOSING, CS_RETIRED };

enum pstate { P_HEAD, P_ENCAP, P_CSIZE, P_CDATA, P_CCRLF, P_TRAILER, P_DONE };

enum ekind { E_REQ_HDR, E_RES_HDR, E_REQ_BODY, E_RES_BODY, E_NULL_BODY, E_OPT_BODY };
static const char *const ekind_name[] = {"req-hdr",  "res-hdr",   "req-body",
                                         "res-body", "null-body", "opt-body"};

struct worker;

struct conn {
  struct worker *w;
  uint32_t id; /* global connection number */
  enum cstate st;
  bool ever_connected;
  bool tcp_inited;
  bool timer_inited;
  uv_tcp_t tcp;
  uv_connect_t creq;
  uv_write_t wreq;
  uv_timer_t timer; /* request/connect timeout, reconnect delay */
  bool reconnect;   /* what on_close() does */
  unsigned reconnect_ms;

  /* current request */
  bool in_flight; /* waiting for the final response */
  bool counted;   /* started inside the measurement window */
  bool resp_done; /* final response received */
  bool idle_held; /* idle mode: served and now held */
  uint64_t seq;
  uint64_t t_start;
  uint32_t pat_off;   /* body byte i = pattern[(pat_off+i)%PAT_LEN] */
  uint64_t body_off;  /* next body byte to send */
  uint64_t phase_end; /* body bytes to send in this write phase */
  int wphase;         /* 0 nothing, 1 head(+preview), 2 rest */
  bool head_sent;
  bool term_sent;
  bool write_pending;
  bool waiting_continue; /* preview sent without ieof */
  bool got_continue;
  char szline[CHUNKS_PER_WRITE][24];

  /* response parser */
  enum pstate ps;
  unsigned match; /* CRLFCRLF matcher */
  char *hb;
  size_t hlen, hcap;
  int status;
  bool conn_close;
  bool has_encap;
  bool saw_istag, saw_methods;
  int ne;
  int ekind[8];
  uint64_t eoff[8];
  uint64_t enc_hdr_total;
  int body_kind; /* -1 none */
  uint64_t chunk_left;
  uint64_t rbody;       /* de-chunked body bytes received */
  uint64_t expect_body; /* bytes the echo must contain */
  int body_check;       /* 0 ignore, 1 compare with pattern, 2 must be empty */
  char line[LINE_MAX_LEN];
  size_t llen;
  int crlf_got;
};

struct worker {
  int idx;
  uv_loop_t loop;
  struct conn *conns;
  int nconns;
  int live; /* conns not retired */
  enum phase phase;
  bool stopping;
  uv_timer_t phase_timer;
  uv_timer_t deadline_timer;
  bool deadline_hit;
  uint64_t t_begin;
  uint64_t t_measure_start;
  uint64_t t_measure_end;
  uint64_t t_last_done;
  char *rbuf;
  struct stats st;
  /* idle mode */
  int idle_next;
  int idle_inprog;
  uint64_t t_idle_ready;
  bool idle_holding;
  uv_thread_t thread;
};

static void start_request(struct conn *c);
static void conn_close(struct conn *c, bool reconnect, unsigned delay_ms);
static void pump_write(struct conn *c);
static void conn_connect(struct conn *c);
static void worker_stop(struct worker *w);
static void idle_launch(struct worker *w);
static void idle_check_ready(struct worker *w);

static bool idle_mode(void) { return cfg.idle_n > 0; }

static void report_event(struct conn *c, const char *kind, const char *why) {
  if (atomic_load(&verbose_left) > 0 && atomic_fetch_sub(&verbose_left, 1) > 0) {
    fprintf(stderr, "icap-bench: conn %u req %" PRIu64 ": %s: %s", c->id, c->seq, kind, why);
    if (c->ps == P_HEAD && c->hlen > 0)
      fprintf(stderr, " (head so far: %.*s)", (int)(c->hlen > 200 ? 200 : c->hlen), c->hb);
    else if (c->status)
      fprintf(stderr, " (ICAP status %d)", c->status);
    fputc('\n', stderr);
  }
}

/* A request failed.  'invalid': the response was malformed or not what the
 * scenario allows; otherwise a connection-level error (I/O error, timeout,
 * unexpected close).  The connection is dropped and, in load mode,
 * re-established (after a short delay for connection errors). */
static void conn_fail(struct conn *c, bool invalid, const char *why) {
  struct worker *w = c->w;
  if (c->st == CS_CLOSING || c->st == CS_RETIRED || w->phase == PH_DONE) return;
  if (invalid)
    w->st.invalid++;
  else
    w->st.errors++;
  add_reason(&w->st, why);
  report_event(c, invalid ? "invalid" : "error", why);
  if (idle_mode()) {
    if (c->idle_held) {
      w->st.idle_closed++;
    } else {
      w->st.idle_failed++;
      w->idle_inprog--;
    }
    c->idle_held = false;
    conn_close(c, false, 0);
    if (!w->idle_holding) {
      idle_launch(w);
      idle_check_ready(w);
    }
    return;
  }
  conn_close(c, true, invalid ? 0 : RECONNECT_DELAY_MS);
}

static void conn_error(struct conn *c, const char *why) { conn_fail(c, false, why); }

static void conn_invalid(struct conn *c, const char *why) { conn_fail(c, true, why); }

/* Appends `take` bytes to the head buffer, doubling it as needed (the
 * callers bound the head's size before). */
static void head_append(struct conn *c, const char *p, size_t take) {
  if (c->hlen + take > c->hcap) {
    size_t nc = c->hcap ? c->hcap : 1024;
    while (nc < c->hlen + take) nc *= 2;
    char *nb = realloc(c->hb, nc);
    if (!nb) die("out of memory");
    c->hb = nb;
    c->hcap = nc;
  }
  memcpy(c->hb + c->hlen, p, take);
  c->hlen += take;
}

/* ------------------------------------------------------- connection I/O */

static void on_close(uv_handle_t *h);

static void retire(struct conn *c) {
  struct worker *w = c->w;
  if (c->st == CS_RETIRED) return;
  c->st = CS_RETIRED;
  w->live--;
  if (w->live == 0) worker_stop(w);
}

static void reconnect_cb(uv_timer_t *t) {
  struct conn *c = t->data;
  conn_connect(c);
}

static void on_close(uv_handle_t *h) {
  struct conn *c = h->data;
  struct worker *w = c->w;
  c->tcp_inited = false;
  if (c->st != CS_CLOSING) return;
  if (!c->reconnect || w->phase == PH_DONE || w->stopping || idle_mode()) {
    retire(c);
    return;
  }
  c->st = CS_FREE;
  if (c->reconnect_ms == 0)
    conn_connect(c);
  else
    uv_timer_start(&c->timer, reconnect_cb, c->reconnect_ms, 0);
}

static void conn_close(struct conn *c, bool reconnect, unsigned delay_ms) {
  if (c->st == CS_CLOSING || c->st == CS_RETIRED) return;
  if (c->timer_inited) uv_timer_stop(&c->timer);
  c->in_flight = false;
  if (!c->tcp_inited) { /* not open (e.g. waiting to reconnect) */
    if (reconnect && c->w->phase != PH_DONE && !c->w->stopping)
      conn_connect(c);
    else
      retire(c);
    return;
  }
  c->st = CS_CLOSING;
  c->reconnect = reconnect;
  c->reconnect_ms = delay_ms;
  uv_close((uv_handle_t *)&c->tcp, on_close);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  struct conn *c = h->data;
  (void)suggested;
  buf->base = c->w->rbuf;
  buf->len = RBUF_SIZE;
}

static bool take_budget(struct worker *w, bool *counted) {
  *counted = false;
  if (w->phase == PH_DONE || w->stopping) return false;
  if (w->phase == PH_WARMUP) return true;
  if (cfg.requests > 0) {
    uint64_t n = atomic_fetch_add(&issued, 1);
    if (n >= cfg.requests) return false;
  }
  *counted = true;
  return true;
}

static void timeout_cb(uv_timer_t *t) {
  struct conn *c = t->data;
  if (c->st == CS_CONNECTING)
    conn_error(c, "connect timeout");
  else
    conn_error(c, "request timeout");
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void on_connect(uv_connect_t *req, int status) {
  struct conn *c = req->data;
  struct worker *w = c->w;
  if (status == UV_ECANCELED || c->st != CS_CONNECTING) return;
  uv_timer_stop(&c->timer);
  if (status < 0) {
    /* in --requests mode a failed connect uses up one attempt, so a dead
     * server cannot keep the run going forever */
    if (!idle_mode() && cfg.requests > 0 && w->phase == PH_MEASURE) atomic_fetch_add(&issued, 1);
    c->st = CS_OPEN; /* so that conn_error() closes it */
    conn_error(c, status == UV_ECONNREFUSED ? "connect: connection refused" : "connect failed");
    return;
  }
  c->st = CS_OPEN;
  if (c->ever_connected) w->st.reconnects++;
  c->ever_connected = true;
  uv_tcp_nodelay(&c->tcp, 1);
  int r = uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read);
  if (r < 0) {
    conn_error(c, "read start failed");
    return;
  }
  start_request(c);
}

static void conn_connect(struct conn *c) {
  struct worker *w = c->w;
  if (w->phase == PH_DONE || w->stopping) {
    retire(c);
    return;
  }
  if (!idle_mode() && cfg.requests > 0 && w->phase == PH_MEASURE &&
      atomic_load(&issued) >= cfg.requests) {
    retire(c);
    return;
  }
  int r = uv_tcp_init(&w->loop, &c->tcp);
  if (r < 0) die("uv_tcp_init: %s", uv_strerror(r));
  c->tcp.data = c;
  c->tcp_inited = true;
  c->st = CS_CONNECTING;
  c->creq.data = c;
  r = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&cfg.addr, on_connect);
  if (r < 0) {
    c->st = CS_OPEN;
    if (!idle_mode() && cfg.requests > 0 && w->phase == PH_MEASURE) atomic_fetch_add(&issued, 1);
    conn_error(c, r == UV_EMFILE ? "connect: too many open files" : "connect: cannot start");
    return;
  }
  uv_timer_start(&c->timer, timeout_cb, (uint64_t)(cfg.timeout * 1000.0), 0);
}

/* ---------------------------------------------------------- request side */

static void reset_parser(struct conn *c) {
  c->ps = P_HEAD;
  c->match = 0;
  c->hlen = 0;
  c->status = 0;
  c->conn_close = false;
  c->has_encap = false;
  c->saw_istag = false;
  c->saw_methods = false;
  c->ne = 0;
  c->enc_hdr_total = 0;
  c->body_kind = -1;
  c->chunk_left = 0;
  c->rbody = 0;
  c->body_check = 0;
  c->llen = 0;
  c->crlf_got = 0;
}

static void start_request(struct conn *c) {
  struct worker *w = c->w;
  bool counted;
  if (c->st != CS_OPEN) return;
  if (idle_mode()) {
    counted = false;
  } else if (!take_budget(w, &counted)) {
    conn_close(c, false, 0); /* budget used up: on_close retires */
    return;
  }
  c->counted = counted;
  c->seq++;
  c->t_start = uv_hrtime();
  c->in_flight = true;
  c->resp_done = false;
  c->pat_off = (uint32_t)(mix64(((uint64_t)c->id << 32) ^ c->seq) % PAT_LEN);
  c->body_off = 0;
  c->head_sent = false;
  c->term_sent = false;
  c->waiting_continue = false;
  c->got_continue = false;
  c->wphase = 1;
  if (cfg.kind == SC_PREVIEW)
    c->phase_end = (uint64_t)cfg.preview < cfg.body_size ? (uint64_t)cfg.preview : cfg.body_size;
  else
    c->phase_end = cfg.body_size;
  reset_parser(c);
  uv_timer_start(&c->timer, timeout_cb, (uint64_t)(cfg.timeout * 1000.0), 0);
  pump_write(c);
}

static bool has_body(void) {
  return cfg.kind == SC_RESPMOD204 || cfg.kind == SC_ECHO || cfg.kind == SC_PREVIEW;
}

static void finish_request(struct conn *c);

static void on_write(uv_write_t *req, int status) {
  struct conn *c = req->data;
  c->write_pending = false;
  if (status == UV_ECANCELED || c->st != CS_OPEN) return;
  if (status < 0) {
    conn_error(c, "write failed");
    return;
  }
  if (!c->in_flight && !c->resp_done) return;
  if (c->body_off < c->phase_end || !c->term_sent) {
    pump_write(c);
    return;
  }
  /* current write phase is complete */
  if (c->resp_done) {
    if (!idle_mode()) finish_request(c);
    return;
  }
  if (c->wphase == 1 && cfg.kind == SC_PREVIEW && cfg.body_size > (uint64_t)cfg.preview) {
    c->waiting_continue = true;
    if (c->got_continue) {
      c->wphase = 2;
      c->term_sent = false;
      c->phase_end = cfg.body_size;
      pump_write(c);
    }
  }
}

/* Queue the next piece of the request: the head, up to CHUNKS_PER_WRITE
 * chunks of the body (pointing straight into the pattern), and the last-chunk
 * marker.  Only one uv_write is outstanding per connection. */
static void pump_write(struct conn *c) {
  uv_buf_t bufs[2 + 3 * CHUNKS_PER_WRITE];
  unsigned nb = 0, k = 0;
  if (c->write_pending || c->st != CS_OPEN) return;
  if (!c->head_sent) {
    bufs[nb++] = uv_buf_init(req_head, (unsigned)req_head_len);
    c->head_sent = true;
  }
  if (has_body()) {
    while (c->body_off < c->phase_end && k < CHUNKS_PER_WRITE) {
      uint64_t n = c->phase_end - c->body_off;
      if (n > cfg.chunk) n = cfg.chunk;
      int l = snprintf(c->szline[k], sizeof c->szline[k], "%" PRIx64 "\r\n", n);
      bufs[nb++] = uv_buf_init(c->szline[k], (unsigned)l);
      uint32_t off = (uint32_t)((c->pat_off + c->body_off) % PAT_LEN);
      bufs[nb++] = uv_buf_init((char *)pattern + off, (unsigned)n);
      bufs[nb++] = uv_buf_init((char *)CRLF, 2);
      c->body_off += n;
      k++;
    }
    if (c->body_off == c->phase_end && !c->term_sent) {
      bool ieof =
          cfg.kind == SC_PREVIEW && c->wphase == 1 && cfg.body_size <= (uint64_t)cfg.preview;
      if (ieof)
        bufs[nb++] = uv_buf_init((char *)TERM_IEOF, sizeof TERM_IEOF - 1);
      else
        bufs[nb++] = uv_buf_init((char *)TERM_LAST, sizeof TERM_LAST - 1);
      c->term_sent = true;
    }
  } else {
    c->term_sent = true;
  }
  if (nb == 0) return;
  c->wreq.data = c;
  c->write_pending = true;
  int r = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, bufs, nb, on_write);
  if (r < 0) {
    c->write_pending = false;
    conn_error(c, "write failed");
  }
}

/* Response complete and request fully written: account and go on. */
static void finish_request(struct conn *c) {
  struct worker *w = c->w;
  if (c->conn_close) {
    w->st.server_closes++;
    conn_close(c, true, 0);
    return;
  }
  start_request(c);
}

/* ---------------------------------------------------------- response side */

static bool parse_status(struct conn *c, const char *s, size_t n) {
  /* ICAP/1.0 SP 3DIGIT [SP reason] */
  if (n < 12 || memcmp(s, "ICAP/1.0 ", 9) != 0) return false;
  if (s[9] < '0' || s[9] > '9' || s[10] < '0' || s[10] > '9' || s[11] < '0' || s[11] > '9')
    return false;
  if (n > 12 && s[12] != ' ') return false;
  c->status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
  return true;
}

static const char *parse_encapsulated(struct conn *c, const char *v, size_t n) {
  size_t i = 0;
  c->ne = 0;
  while (i < n) {
    while (i < n && (v[i] == ' ' || v[i] == '\t')) i++;
    size_t ns = i;
    while (i < n && v[i] != '=' && v[i] != ',' && v[i] != ' ') i++;
    size_t nl = i - ns;
    if (i >= n || v[i] != '=') return "Encapsulated: malformed entry";
    i++;
    if (i >= n || v[i] < '0' || v[i] > '9') return "Encapsulated: missing offset";
    uint64_t off = 0;
    int digits = 0;
    while (i < n && v[i] >= '0' && v[i] <= '9') {
      off = off * 10 + (uint64_t)(v[i] - '0');
      if (++digits > 12) return "Encapsulated: offset too large";
      i++;
    }
    int kind = -1, k;
    for (k = 0; k < 6; k++)
      if (ieq(v + ns, nl, ekind_name[k])) kind = k;
    if (kind < 0) return "Encapsulated: unknown entity";
    if (c->ne >= 6) return "Encapsulated: too many entries";
    c->ekind[c->ne] = kind;
    c->eoff[c->ne] = off;
    c->ne++;
    while (i < n && (v[i] == ' ' || v[i] == '\t')) i++;
    if (i < n) {
      if (v[i] != ',') return "Encapsulated: malformed list";
      i++;
      if (i >= n) return "Encapsulated: trailing comma";
    }
  }
  if (c->ne == 0) return "Encapsulated: empty";
  if (c->eoff[0] != 0) return "Encapsulated: first offset not 0";
  int j;
  for (j = 0; j < c->ne; j++) {
    bool body = c->ekind[j] >= E_REQ_BODY;
    if (body != (j == c->ne - 1)) return "Encapsulated: body entity missing or not last";
    if (j > 0 && c->eoff[j] <= c->eoff[j - 1]) return "Encapsulated: offsets not increasing";
    if (j > 0 && c->ekind[j] <= c->ekind[j - 1] && !body)
      return "Encapsulated: header entities out of order";
  }
  c->enc_hdr_total = c->eoff[c->ne - 1];
  c->body_kind = c->ekind[c->ne - 1];
  if (c->enc_hdr_total > ENCAP_HDR_MAX) return "Encapsulated: header sections too large";
  c->has_encap = true;
  return NULL;
}

static bool has_entity(struct conn *c, int kind) {
  int j;
  for (j = 0; j < c->ne; j++)
    if (c->ekind[j] == kind) return true;
  return false;
}

/* Parse the ICAP header block in c->hb[0..hlen) (ends with CRLFCRLF).
 * Returns NULL or the reason why it is invalid. */
static const char *parse_icap_head(struct conn *c) {
  const char *p = c->hb, *end = c->hb + c->hlen - 2; /* keep last CRLF */
  bool first = true;
  while (p < end) {
    const char *eol = memchr(p, '\r', (size_t)(end - p));
    if (!eol || eol[1] != '\n') return "ICAP head: bare CR or LF";
    size_t n = (size_t)(eol - p);
    if (memchr(p, '\n', n)) return "ICAP head: bare LF";
    if (first) {
      if (!parse_status(c, p, n)) return "bad ICAP status line";
      first = false;
    } else if (n == 0) {
      return "ICAP head: empty line inside headers";
    } else if (p[0] == ' ' || p[0] == '\t') {
      /* obsolete line folding: continuation, ignored */
    } else {
      const char *colon = memchr(p, ':', n);
      if (!colon || colon == p) return "ICAP head: header line without name/colon";
      size_t nl = (size_t)(colon - p);
      size_t k;
      for (k = 0; k < nl; k++)
        if (p[k] <= ' ' || p[k] >= 127) return "ICAP head: bad header name";
      const char *v = colon + 1;
      const char *ve = p + n;
      while (v < ve && (*v == ' ' || *v == '\t')) v++;
      while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
      size_t vl = (size_t)(ve - v);
      if (ieq(p, nl, "encapsulated")) {
        if (c->has_encap) return "duplicate Encapsulated header";
        const char *why = parse_encapsulated(c, v, vl);
        if (why) return why;
      } else if (ieq(p, nl, "connection")) {
        size_t a = 0;
        while (a < vl) { /* token list, look for "close" */
          while (a < vl && (v[a] == ' ' || v[a] == ',' || v[a] == '\t')) a++;
          size_t b = a;
          while (b < vl && v[b] != ',' && v[b] != ' ' && v[b] != '\t') b++;
          if (ieq(v + a, b - a, "close")) c->conn_close = true;
          a = b;
        }
      } else if (ieq(p, nl, "istag")) {
        if (vl == 0) return "empty ISTag";
        c->saw_istag = true;
      } else if (ieq(p, nl, "methods")) {
        if (vl == 0) return "empty Methods";
        c->saw_methods = true;
      }
    }
    p = eol + 2;
  }
  if (first) return "empty ICAP head";
  return NULL;
}

/* Decide what the head means for this scenario; set up the body parser. */
static const char *check_head(struct conn *c) {
  int s = c->status;
  if (s == 100) {
    if (cfg.kind != SC_PREVIEW || !c->in_flight || c->got_continue ||
        cfg.body_size <= (uint64_t)cfg.preview)
      return "unexpected 100 Continue";
    return NULL;
  }
  if (s == 204) {
    if (cfg.kind == SC_OPTIONS || cfg.kind == SC_ECHO) return "204 not allowed for this scenario";
    if (c->has_encap) {
      if (c->body_kind != E_NULL_BODY) return "204 with a body";
    }
    return NULL;
  }
  if (s != 200) {
    static const char *const msg[6] = {"unexpected ICAP status 1xx", "unexpected ICAP status 2xx",
                                       "unexpected ICAP status 3xx", "unexpected ICAP status 4xx",
                                       "unexpected ICAP status 5xx", "unexpected ICAP status"};
    int cls = s / 100;
    return msg[(cls >= 1 && cls <= 5) ? cls - 1 : 5];
  }
  if (!c->has_encap) return "200 without Encapsulated";
  switch (cfg.kind) {
    case SC_OPTIONS:
      if (c->ne != 1 || (c->body_kind != E_NULL_BODY && c->body_kind != E_OPT_BODY))
        return "OPTIONS 200: Encapsulated must be null-body or opt-body";
      if (!c->saw_istag) return "OPTIONS 200 without ISTag";
      if (!c->saw_methods) return "OPTIONS 200 without Methods";
      c->body_check = 0;
      break;
    case SC_REQMOD204:
      if (!has_entity(c, E_REQ_HDR) || has_entity(c, E_RES_HDR))
        return "REQMOD 200: expected a modified request (req-hdr)";
      if (c->body_kind != E_NULL_BODY && c->body_kind != E_REQ_BODY)
        return "REQMOD 200: unexpected body entity";
      c->body_check = 2;
      break;
    case SC_RESPMOD204:
    case SC_ECHO:
    case SC_PREVIEW:
      if (!has_entity(c, E_RES_HDR)) return "RESPMOD 200 without res-hdr";
      if (c->body_kind != E_RES_BODY) return "RESPMOD 200 without res-body";
      c->body_check = 1;
      c->expect_body = cfg.body_size;
      break;
  }
  return NULL;
}

/* Check one encapsulated HTTP header section. */
static const char *check_section(int kind, const char *s, size_t n) {
  if (n < 4 || memcmp(s + n - 4, "\r\n\r\n", 4) != 0)
    return "encapsulated header block does not end at its Encapsulated offset";
  /* the first CRLFCRLF must be the terminating one */
  size_t i;
  for (i = 0; i + 4 < n; i++)
    if (s[i] == '\r' && memcmp(s + i, "\r\n\r\n", 4) == 0)
      return "encapsulated header block shorter than its Encapsulated offset";
  const char *eol = memchr(s, '\r', n);
  size_t fl = (size_t)(eol - s);
  if (kind == E_RES_HDR) {
    if (fl < 12 || memcmp(s, "HTTP/1.", 7) != 0 || s[8] != ' ')
      return "bad encapsulated HTTP status line";
  } else if (kind == E_REQ_HDR) {
    if (cfg.kind == SC_REQMOD204) {
      if (fl != reqmod_line_len || memcmp(s, reqmod_line, fl) != 0)
        return "REQMOD 200: request line differs from the one sent";
    } else {
      const char *sp = memchr(s, ' ', fl);
      if (!sp || fl < 14 || memcmp(s + fl - 9, " HTTP/1.", 8) != 0)
        return "bad encapsulated HTTP request line";
    }
  }
  return NULL;
}

static const char *check_encap_headers(struct conn *c) {
  int j;
  for (j = 0; j < c->ne - 1; j++) {
    const char *why =
        check_section(c->ekind[j], c->hb + c->eoff[j], (size_t)(c->eoff[j + 1] - c->eoff[j]));
    if (why) return why;
  }
  return NULL;
}

static const char *body_data(struct conn *c, const char *p, size_t n) {
  if (c->body_check == 2) {
    if (n) return "REQMOD 200: non-empty req-body (none was sent)";
  } else if (c->body_check == 1) {
    if (c->rbody + n > c->expect_body) return "echoed body longer than the body sent";
    size_t done = 0;
    while (done < n) {
      uint32_t off = (uint32_t)((c->pat_off + c->rbody + done) % PAT_LEN);
      size_t k = n - done;
      if (k > cfg.chunk) k = cfg.chunk;
      if (memcmp(p + done, pattern + off, k) != 0) return "echoed body differs from the body sent";
      done += k;
    }
  }
  c->rbody += n;
  return NULL;
}

/* A complete response head (and everything of it) has been parsed. */
static bool response_complete(struct conn *c, size_t left) {
  struct worker *w = c->w;
  if (c->status == 100) {
    w->st.st100++;
    c->got_continue = true;
    reset_parser(c);
    if (c->waiting_continue && !c->write_pending) {
      c->wphase = 2;
      c->term_sent = false;
      c->phase_end = cfg.body_size;
      pump_write(c);
    }
    return true; /* keep parsing: the final response follows */
  }
  if (c->body_check == 1 && c->rbody != c->expect_body) {
    conn_invalid(c, "echoed body shorter than the body sent");
    return false;
  }
  if (left > 0) {
    conn_invalid(c, "data after the end of the response");
    return false;
  }
  uint64_t now = uv_hrtime();
  uint64_t lat = now - c->t_start;
  uv_timer_stop(&c->timer);
  c->in_flight = false;
  c->resp_done = true;
  if (c->status == 200)
    w->st.st200++;
  else
    w->st.st204++;
  w->st.completed_all++;
  bool count = cfg.requests > 0 ? c->counted : (w->phase == PH_MEASURE);
  if (count && !idle_mode()) {
    w->st.completed++;
    w->st.lat_sum += lat;
    if (lat > w->st.lat_max) w->st.lat_max = lat;
    w->st.hist[hist_index(lat)]++;
    w->st.body_sent += c->body_off;
    w->st.body_recv += c->rbody;
    w->t_last_done = now;
  }
  if (idle_mode()) {
    c->idle_held = true;
    w->st.idle_established++;
    w->idle_inprog--;
    if (c->conn_close) {
      conn_invalid(c, "server closes the connection (Connection: close)");
      return false;
    }
    idle_launch(w);
    idle_check_ready(w);
    return false;
  }
  if (c->write_pending || c->body_off < c->phase_end || !c->term_sent) {
    /* the server answered before the request was fully written: finish
     * writing (the server must read it), then go on */
    if (!c->write_pending) pump_write(c);
    return false;
  }
  finish_request(c);
  return false;
}

/* Feed received bytes to the parser. */
static void parse(struct conn *c, const char *p, size_t n) {
  const char *why = NULL;
  while (n > 0) {
    switch (c->ps) {
      case P_HEAD: {
        size_t i;
        for (i = 0; i < n; i++) {
          char ch = p[i];
          if (ch == '\r') {
            c->match = (c->match == 2) ? 3 : 1;
          } else if (ch == '\n') {
            if (c->match != 1 && c->match != 3) {
              conn_invalid(c, "ICAP head: bare LF");
              return;
            }
            c->match++;
          } else {
            c->match = 0;
          }
          if (c->match == 4) break;
        }
        size_t take = (i < n) ? i + 1 : n;
        if (c->hlen + take > ICAP_HEAD_MAX) {
          conn_invalid(c, "ICAP head too large");
          return;
        }
        head_append(c, p, take);
        p += take;
        n -= take;
        if (c->match != 4) break;
        if (!c->in_flight) {
          conn_invalid(c, "response without a request");
          return;
        }
        if ((why = parse_icap_head(c)) || (why = check_head(c))) {
          conn_invalid(c, why);
          return;
        }
        c->hlen = 0;
        if (c->status == 100) {
          if (!response_complete(c, n) || c->st != CS_OPEN) return;
          continue;
        }
        if (c->has_encap && c->enc_hdr_total > 0)
          c->ps = P_ENCAP;
        else if (c->has_encap && c->body_kind != E_NULL_BODY)
          c->ps = P_CSIZE;
        else
          c->ps = P_DONE;
        break;
      }
      case P_ENCAP: {
        size_t need = (size_t)(c->enc_hdr_total - c->hlen);
        size_t take = n < need ? n : need;
        head_append(c, p, take);
        p += take;
        n -= take;
        if (c->hlen < c->enc_hdr_total) break;
        if ((why = check_encap_headers(c))) {
          conn_invalid(c, why);
          return;
        }
        c->hlen = 0;
        c->ps = c->body_kind == E_NULL_BODY ? P_DONE : P_CSIZE;
        break;
      }
      case P_CSIZE:
      case P_TRAILER: {
        const char *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) + 1 : n;
        if (c->llen + take > LINE_MAX_LEN) {
          conn_invalid(c, c->ps == P_CSIZE ? "chunk-size line too long" : "trailer line too long");
          return;
        }
        memcpy(c->line + c->llen, p, take);
        c->llen += take;
        p += take;
        n -= take;
        if (!nl) break;
        if (c->llen < 2 || c->line[c->llen - 2] != '\r') {
          conn_invalid(c, "chunked body: line not terminated by CRLF");
          return;
        }
        size_t L = c->llen - 2;
        c->llen = 0;
        if (c->ps == P_TRAILER) {
          if (L == 0) {
            c->ps = P_DONE;
          } else if (!memchr(c->line, ':', L)) {
            conn_invalid(c, "chunked body: bad trailer line");
            return;
          }
          break;
        }
        size_t i = 0;
        uint64_t sz = 0;
        while (i < L) {
          int ch = lc((unsigned char)c->line[i]), d;
          if (ch >= '0' && ch <= '9')
            d = ch - '0';
          else if (ch >= 'a' && ch <= 'f')
            d = ch - 'a' + 10;
          else
            break;
          if (i >= 15) {
            conn_invalid(c, "chunk size too large");
            return;
          }
          sz = sz * 16 + (uint64_t)d;
          i++;
        }
        if (i == 0) {
          conn_invalid(c, "chunked body: bad chunk size");
          return;
        }
        while (i < L && (c->line[i] == ' ' || c->line[i] == '\t')) i++;
        if (i < L && c->line[i] != ';') {
          conn_invalid(c, "chunked body: bad chunk size");
          return;
        }
        if (i < L && memchr(c->line + i, '\r', L - i)) {
          conn_invalid(c, "chunked body: bare CR in chunk extension");
          return;
        }
        if (sz == 0) {
          c->ps = P_TRAILER;
        } else {
          c->chunk_left = sz;
          c->ps = P_CDATA;
        }
        break;
      }
      case P_CDATA: {
        size_t take = n < c->chunk_left ? n : (size_t)c->chunk_left;
        if ((why = body_data(c, p, take))) {
          conn_invalid(c, why);
          return;
        }
        c->chunk_left -= take;
        p += take;
        n -= take;
        if (c->chunk_left == 0) {
          c->ps = P_CCRLF;
          c->crlf_got = 0;
        }
        break;
      }
      case P_CCRLF:
        if (p[0] != CRLF[c->crlf_got]) {
          conn_invalid(c, "chunked body: chunk data not followed by CRLF");
          return;
        }
        p++;
        n--;
        if (++c->crlf_got == 2) c->ps = P_CSIZE;
        break;
      case P_DONE:
        break;
    }
    if (c->ps == P_DONE) {
      if (!response_complete(c, n)) return;
    }
  }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  struct conn *c = s->data;
  if (c->st != CS_OPEN) return;
  if (nread == 0) return;
  if (nread < 0) {
    if (nread == UV_EOF) {
      if (idle_mode() && c->idle_held)
        conn_error(c, "idle connection closed by the server");
      else if (c->in_flight && (c->hlen > 0 || c->ps != P_HEAD))
        conn_error(c, "connection closed by the server in the middle of a response");
      else if (c->in_flight)
        conn_error(c, "connection closed by the server before responding");
      else
        conn_error(c, "connection closed by the server between requests");
    } else if (nread == UV_ECONNRESET) {
      conn_error(c, "connection reset by the server");
    } else {
      conn_error(c, "read error");
    }
    return;
  }
  if (idle_mode() && c->idle_held) {
    conn_invalid(c, "data received on an idle connection");
    return;
  }
  if (!c->in_flight) {
    conn_invalid(c, "data received with no request outstanding");
    return;
  }
  parse(c, buf->base, (size_t)nread);
}

/* --------------------------------------------------------------- worker */

static void close_walk_cb(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

static void worker_stop(struct worker *w) {
  if (w->stopping && w->phase == PH_DONE) return;
  w->stopping = true;
  if (w->phase != PH_DONE) {
    w->phase = PH_DONE;
    if (!w->t_measure_end) w->t_measure_end = uv_hrtime();
  }
  int i;
  for (i = 0; i < w->nconns; i++) {
    struct conn *c = &w->conns[i];
    if (c->timer_inited) uv_timer_stop(&c->timer);
  }
  uv_timer_stop(&w->phase_timer);
  uv_timer_stop(&w->deadline_timer);
  /* close everything; the loop then runs out of handles and returns */
  uv_walk(&w->loop, close_walk_cb, NULL);
}

/* --server-pid: utime+stime of the server process in seconds, from
 * /proc/PID/stat (fields 14 and 15, after the parenthesised command name,
 * which may itself contain spaces or parentheses).  -1 if unreadable. */
static double server_cpu_s(void) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", cfg.server_pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  char *p = strrchr(buf, ')');
  unsigned long long ut, st;
  if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
    return -1;
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Server CPU at the start and end of the measured interval, sampled by
 * worker 0 (the workers' intervals differ by scheduling jitter only). */
static double server_cpu0 = -1, server_cpu1 = -1;

static void sample_server(struct worker *w, bool end) {
  if (cfg.server_pid <= 0 || w->idx != 0) return;
  if (end)
    server_cpu1 = server_cpu_s();
  else
    server_cpu0 = server_cpu_s();
}

static void phase_cb(uv_timer_t *t) {
  struct worker *w = t->data;
  uint64_t now = uv_hrtime();
  if (w->phase == PH_WARMUP) {
    w->phase = PH_MEASURE;
    w->t_measure_start = now;
    sample_server(w, false);
    if (cfg.requests == 0)
      uv_timer_start(&w->phase_timer, phase_cb, (uint64_t)(cfg.duration * 1000.0), 0);
    return;
  }
  if (w->phase == PH_MEASURE && cfg.requests == 0) {
    w->t_measure_end = now;
    sample_server(w, true);
    worker_stop(w);
  }
}

static void deadline_cb(uv_timer_t *t) {
  struct worker *w = t->data;
  int i;
  w->deadline_hit = true;
  for (i = 0; i < w->nconns; i++) {
    if (w->conns[i].in_flight || w->conns[i].st == CS_CONNECTING) {
      w->st.errors++;
      add_reason(&w->st, "run stopped by --max-time with the request outstanding");
    }
  }
  if (!w->t_measure_end) w->t_measure_end = w->t_last_done ? w->t_last_done : uv_hrtime();
  worker_stop(w);
}

static void hold_cb(uv_timer_t *t) {
  struct worker *w = t->data;
  w->t_measure_end = uv_hrtime();
  worker_stop(w);
}

static void idle_check_ready(struct worker *w) {
  if (w->idle_holding || w->stopping) return;
  if ((int)(w->st.idle_established + w->st.idle_failed) < cfg.idle_n) return;
  w->idle_holding = true;
  w->t_idle_ready = uv_hrtime();
  fprintf(stderr, "IDLE-READY established=%" PRIu64 " failed=%" PRIu64 " ramp_s=%.3f\n",
          w->st.idle_established, w->st.idle_failed, (double)(w->t_idle_ready - w->t_begin) / 1e9);
  fflush(stderr);
  w->phase = PH_MEASURE;
  w->t_measure_start = w->t_idle_ready;
  uv_timer_start(&w->phase_timer, hold_cb, (uint64_t)(cfg.hold * 1000.0), 0);
}

static void idle_launch(struct worker *w) {
  while (!w->stopping && w->idle_next < w->nconns && w->idle_inprog < cfg.idle_conc) {
    struct conn *c = &w->conns[w->idle_next++];
    w->idle_inprog++;
    conn_connect(c);
  }
}

static void worker_run(void *arg) {
  struct worker *w = arg;
  int i, r;
  w->rbuf = xmalloc(RBUF_SIZE);
  w->live = w->nconns;
  w->t_begin = uv_hrtime();
  uv_timer_init(&w->loop, &w->phase_timer);
  w->phase_timer.data = w;
  uv_timer_init(&w->loop, &w->deadline_timer);
  w->deadline_timer.data = w;
  for (i = 0; i < w->nconns; i++) {
    struct conn *c = &w->conns[i];
    c->w = w;
    r = uv_timer_init(&w->loop, &c->timer);
    if (r < 0) die("uv_timer_init: %s", uv_strerror(r));
    c->timer.data = c;
    c->timer_inited = true;
  }
  if (cfg.max_time > 0)
    uv_timer_start(&w->deadline_timer, deadline_cb, (uint64_t)(cfg.max_time * 1000.0), 0);
  if (idle_mode()) {
    w->phase = PH_WARMUP;
    idle_launch(w);
  } else {
    if (cfg.warmup > 0) {
      w->phase = PH_WARMUP;
      uv_timer_start(&w->phase_timer, phase_cb, (uint64_t)(cfg.warmup * 1000.0), 0);
    } else {
      w->phase = PH_MEASURE;
      w->t_measure_start = w->t_begin;
      sample_server(w, false);
      if (cfg.requests == 0)
        uv_timer_start(&w->phase_timer, phase_cb, (uint64_t)(cfg.duration * 1000.0), 0);
    }
    for (i = 0; i < w->nconns; i++) conn_connect(&w->conns[i]);
  }
  uv_run(&w->loop, UV_RUN_DEFAULT);
  /* --requests: the window ends with the last counted response */
  if (cfg.requests > 0 && !idle_mode() && w->t_last_done) w->t_measure_end = w->t_last_done;
  if (!w->t_measure_end) w->t_measure_end = uv_hrtime();
  r = uv_loop_close(&w->loop);
  if (r != 0)
    fprintf(stderr, "icap-bench: warning: loop %d not closed cleanly (%s)\n", w->idx,
            uv_strerror(r));
}

/* ------------------------------------------------------------- scenario */

static uint64_t parse_size(const char *s, const char *what) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s) die("bad %s: %s", what, s);
  if (*end == 'k' || *end == 'K') {
    v *= 1024;
    end++;
  } else if (*end == 'm' || *end == 'M') {
    v *= 1024 * 1024;
    end++;
  }
  if (*end != '\0' && *end != ':' && *end != ',') die("bad %s: %s", what, s);
  if (v > (1ull << 40)) die("%s too large: %s", what, s);
  return v;
}

static void parse_scenario(const char *s) {
  if (strcmp(s, "options") == 0) {
    cfg.kind = SC_OPTIONS;
  } else if (strcmp(s, "respmod204") == 0) {
    cfg.kind = SC_RESPMOD204;
    cfg.body_size = 16;
    cfg.allow204 = true;
  } else if (strcmp(s, "reqmod204") == 0) {
    cfg.kind = SC_REQMOD204;
    cfg.allow204 = true;
  } else if (strncmp(s, "echo:", 5) == 0) {
    cfg.kind = SC_ECHO;
    cfg.body_size = parse_size(s + 5, "echo size");
    if (strchr(s + 5, ':')) die("bad scenario: %s", s);
    if (cfg.body_size == 0) die("echo:SIZE needs SIZE >= 1");
  } else if (strncmp(s, "preview:", 8) == 0) {
    const char *colon = strchr(s + 8, ':');
    if (!colon) die("preview scenario is preview:SIZE:PREVIEW");
    cfg.kind = SC_PREVIEW;
    cfg.body_size = parse_size(s + 8, "preview body size");
    cfg.preview = (int64_t)parse_size(colon + 1, "preview size");
    if (strchr(colon + 1, ':')) die("bad scenario: %s", s);
    cfg.allow204 = true;
  } else {
    die("unknown scenario '%s' (options, respmod204, reqmod204, echo:SIZE, preview:SIZE:P)", s);
  }
}

static void build_request(void) {
  char hostport[128];
  char buf[4096];
  int n;
  if (strchr(cfg.host, ':'))
    snprintf(hostport, sizeof hostport, "[%s]:%d", cfg.host, cfg.port);
  else
    snprintf(hostport, sizeof hostport, "%s:%d", cfg.host, cfg.port);

  static const char http_req[] =
      "GET http://bench.invalid/object HTTP/1.1\r\n"
      "Host: bench.invalid\r\n"
      "Accept: */*\r\n"
      "\r\n";
  char http_res[256];
  snprintf(http_res, sizeof http_res,
           "HTTP/1.1 200 OK\r\n"
           "Content-Type: application/octet-stream\r\n"
           "Content-Length: %" PRIu64
           "\r\n"
           "\r\n",
           cfg.body_size);
  reqmod_line = "GET http://bench.invalid/object HTTP/1.1";
  reqmod_line_len = strlen(reqmod_line);

  switch (cfg.kind) {
    case SC_OPTIONS:
      n = snprintf(buf, sizeof buf,
                   "OPTIONS icap://%s/%s ICAP/1.0\r\n"
                   "Host: %s\r\n"
                   "User-Agent: icap-bench\r\n"
                   "Encapsulated: null-body=0\r\n"
                   "\r\n",
                   hostport, cfg.service, hostport);
      break;
    case SC_REQMOD204:
      n = snprintf(buf, sizeof buf,
                   "REQMOD icap://%s/%s ICAP/1.0\r\n"
                   "Host: %s\r\n"
                   "User-Agent: icap-bench\r\n"
                   "Allow: 204\r\n"
                   "Encapsulated: req-hdr=0, null-body=%zu\r\n"
                   "\r\n%s",
                   hostport, cfg.service, hostport, strlen(http_req), http_req);
      break;
    default: {
      char extra[128] = "";
      size_t el = 0;
      if (cfg.allow204) el += (size_t)snprintf(extra + el, sizeof extra - el, "Allow: 204\r\n");
      if (cfg.preview >= 0)
        el += (size_t)snprintf(extra + el, sizeof extra - el, "Preview: %" PRId64 "\r\n",
                               cfg.preview);
      n = snprintf(buf, sizeof buf,
                   "RESPMOD icap://%s/%s ICAP/1.0\r\n"
                   "Host: %s\r\n"
                   "User-Agent: icap-bench\r\n"
                   "%s"
                   "Encapsulated: req-hdr=0, res-hdr=%zu, res-body=%zu\r\n"
                   "\r\n%s%s",
                   hostport, cfg.service, hostport, extra, strlen(http_req),
                   strlen(http_req) + strlen(http_res), http_req, http_res);
      break;
    }
  }
  if (n < 0 || (size_t)n >= sizeof buf) die("request head too long");
  req_head = xmalloc((size_t)n + 1);
  memcpy(req_head, buf, (size_t)n + 1);
  req_head_len = (size_t)n;
}

static void build_pattern(void) {
  uint64_t st = 0x1cab1e5eedull;
  size_t i;
  pattern = xmalloc(PAT_LEN + cfg.chunk);
  for (i = 0; i + 8 <= PAT_LEN; i += 8) {
    uint64_t v = splitmix64(&st);
    memcpy(pattern + i, &v, 8);
  }
  for (; i < PAT_LEN; i++) pattern[i] = (unsigned char)splitmix64(&st);
  /* Wrap-around copy, so that any chunk starting in the period is one slice;
   * a chunk longer than the period wraps more than once. */
  for (uint64_t at = 0; at < cfg.chunk; at += PAT_LEN) {
    uint64_t k = cfg.chunk - at < PAT_LEN ? cfg.chunk - at : PAT_LEN;
    memcpy(pattern + PAT_LEN + at, pattern, k);
  }
}

/* --------------------------------------------------------------- output */

struct total {
  struct stats st;
  double duration;
  double cpu_user, cpu_sys;
};

static uint64_t percentile(const struct stats *st, double q) {
  if (st->completed == 0) return 0;
  uint64_t rank = (uint64_t)(q * (double)st->completed + 0.999999);
  if (rank < 1) rank = 1;
  if (rank > st->completed) rank = st->completed;
  uint64_t acc = 0;
  unsigned i;
  for (i = 0; i < H_BUCKETS; i++) {
    acc += st->hist[i];
    if (acc >= rank) {
      uint64_t v = hist_value(i);
      return v > st->lat_max ? st->lat_max : v;
    }
  }
  return st->lat_max;
}

static void merge_stats(struct stats *dst, const struct stats *src) {
  unsigned i;
  int j;
  dst->completed += src->completed;
  dst->completed_all += src->completed_all;
  dst->errors += src->errors;
  dst->invalid += src->invalid;
  dst->reconnects += src->reconnects;
  dst->server_closes += src->server_closes;
  dst->st100 += src->st100;
  dst->st200 += src->st200;
  dst->st204 += src->st204;
  dst->body_sent += src->body_sent;
  dst->body_recv += src->body_recv;
  dst->lat_sum += src->lat_sum;
  if (src->lat_max > dst->lat_max) dst->lat_max = src->lat_max;
  for (i = 0; i < H_BUCKETS; i++) dst->hist[i] += src->hist[i];
  for (j = 0; j < src->nreasons; j++) {
    uint64_t k;
    for (k = 0; k < src->reasons[j].n; k++) add_reason(dst, src->reasons[j].why);
  }
  dst->idle_established += src->idle_established;
  dst->idle_failed += src->idle_failed;
  dst->idle_closed += src->idle_closed;
}

static void json_str(const char *s) {
  putchar('"');
  for (; *s; s++) {
    if (*s == '"' || *s == '\\')
      printf("\\%c", *s);
    else if ((unsigned char)*s < 0x20)
      printf("\\u%04x", *s);
    else
      putchar(*s);
  }
  putchar('"');
}

static void print_reasons(const struct stats *st, bool json) {
  int j;
  if (json) {
    printf("\"failure_reasons\":{");
    for (j = 0; j < st->nreasons; j++) {
      if (j) putchar(',');
      json_str(st->reasons[j].why);
      printf(":%" PRIu64, st->reasons[j].n);
    }
    putchar('}');
  } else {
    for (j = 0; j < st->nreasons; j++)
      printf("  failure     %" PRIu64 " x %s\n", st->reasons[j].n, st->reasons[j].why);
  }
}

static void print_load(const struct total *t) {
  const struct stats *st = &t->st;
  double d = t->duration > 0 ? t->duration : 1e-9;
  double rps = (double)st->completed / d;
  double mbs = (double)(st->body_sent + st->body_recv) / 1e6 / d;
  double p50 = (double)percentile(st, 0.50) / 1e3;
  double p90 = (double)percentile(st, 0.90) / 1e3;
  double p99 = (double)percentile(st, 0.99) / 1e3;
  double p999 = (double)percentile(st, 0.999) / 1e3;
  double mx = (double)st->lat_max / 1e3;
  double mean = st->completed ? (double)st->lat_sum / (double)st->completed / 1e3 : 0;
  double cpu = t->cpu_user + t->cpu_sys;
  /* Server CPU per completed transaction in microseconds, -1 if unknown. */
  double srv_us = (server_cpu0 >= 0 && server_cpu1 >= 0 && st->completed)
                      ? (server_cpu1 - server_cpu0) * 1e6 / (double)st->completed
                      : -1;
  if (cfg.json) {
    printf("{\"mode\":\"load\",\"scenario\":");
    json_str(cfg.scenario);
    printf(",\"host\":");
    json_str(cfg.host);
    printf(",\"port\":%d,\"service\":", cfg.port);
    json_str(cfg.service);
    printf(
        ",\"connections\":%d,\"threads\":%d,\"warmup_s\":%.3f,\"duration_s\":%.6f,"
        "\"completed\":%" PRIu64
        ",\"requests_per_s\":%.2f,"
        "\"body_bytes_sent\":%" PRIu64 ",\"body_bytes_received\":%" PRIu64
        ","
        "\"body_mb_per_s\":%.3f,\"body_mb_per_s_counts\":\"sent+received entity-body payload "
        "bytes, 1 MB = 1e6 bytes\","
        "\"latency_us\":{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f,"
        "\"mean\":%.1f},"
        "\"errors\":%" PRIu64 ",\"invalid\":%" PRIu64 ",\"reconnects\":%" PRIu64
        ","
        "\"server_closes\":%" PRIu64 ",\"status\":{\"100\":%" PRIu64 ",\"200\":%" PRIu64
        ",\"204\":%" PRIu64
        "},"
        "\"cpu_user_s\":%.3f,\"cpu_sys_s\":%.3f,\"cpu_s\":%.3f,\"chunk\":%" PRIu64
        ",\"server_cpu_us_per_req\":%.2f,",
        cfg.connections, cfg.threads, cfg.warmup, t->duration, st->completed, rps, st->body_sent,
        st->body_recv, mbs, p50, p90, p99, p999, mx, mean, st->errors, st->invalid, st->reconnects,
        st->server_closes, st->st100, st->st200, st->st204, t->cpu_user, t->cpu_sys, cpu, cfg.chunk,
        srv_us);
    print_reasons(st, true);
    printf("}\n");
    return;
  }
  printf("icap-bench  %s  icap://%s:%d/%s\n", cfg.scenario, cfg.host, cfg.port, cfg.service);
  printf("  connections %d (threads %d), warm-up %.1f s, measured %.3f s\n", cfg.connections,
         cfg.threads, cfg.warmup, t->duration);
  printf("  completed   %" PRIu64 " requests, %.1f req/s\n", st->completed, rps);
  printf(
      "  body        %.2f MB/s (sent+received entity-body payload, 1 MB = 1e6 B; "
      "sent %" PRIu64 " B, received %" PRIu64 " B)\n",
      mbs, st->body_sent, st->body_recv);
  printf(
      "  latency     p50 %.0f us, p90 %.0f us, p99 %.0f us, p99.9 %.0f us, max %.0f us, mean %.0f "
      "us\n",
      p50, p90, p99, p999, mx, mean);
  printf("  statuses    100: %" PRIu64 ", 200: %" PRIu64 ", 204: %" PRIu64 " (incl. warm-up)\n",
         st->st100, st->st200, st->st204);
  printf("  errors      %" PRIu64 ", invalid responses %" PRIu64 ", reconnects %" PRIu64
         ", server closes %" PRIu64 "\n",
         st->errors, st->invalid, st->reconnects, st->server_closes);
  print_reasons(st, false);
  printf("  bench cpu   %.3f s (user %.3f + sys %.3f), %.0f%% of one core\n", cpu, t->cpu_user,
         t->cpu_sys, 100.0 * cpu / d);
  if (srv_us >= 0)
    printf("  server cpu  %.1f us per transaction (pid %d, %.3f s over the measured interval)\n",
           srv_us, cfg.server_pid, server_cpu1 - server_cpu0);
}

static void print_idle(const struct total *t) {
  const struct stats *st = &t->st;
  double cpu = t->cpu_user + t->cpu_sys;
  if (cfg.json) {
    printf("{\"mode\":\"idle\",\"host\":");
    json_str(cfg.host);
    printf(",\"port\":%d,\"service\":", cfg.port);
    json_str(cfg.service);
    printf(",\"requested\":%d,\"established\":%" PRIu64 ",\"failed\":%" PRIu64
           ","
           "\"closed_during_hold\":%" PRIu64 ",\"hold_s\":%.3f,\"errors\":%" PRIu64
           ",\"invalid\":%" PRIu64 ",\"cpu_user_s\":%.3f,\"cpu_sys_s\":%.3f,\"cpu_s\":%.3f,",
           cfg.idle_n, st->idle_established, st->idle_failed, st->idle_closed, t->duration,
           st->errors, st->invalid, t->cpu_user, t->cpu_sys, cpu);
    print_reasons(st, true);
    printf("}\n");
    return;
  }
  printf("icap-bench  idle  icap://%s:%d/%s\n", cfg.host, cfg.port, cfg.service);
  printf("  requested   %d connections (OPTIONS on each, then held idle)\n", cfg.idle_n);
  printf("  established %" PRIu64 ", failed %" PRIu64 ", closed during the hold %" PRIu64 "\n",
         st->idle_established, st->idle_failed, st->idle_closed);
  printf("  held        %.3f s\n", t->duration);
  printf("  errors      %" PRIu64 ", invalid responses %" PRIu64 "\n", st->errors, st->invalid);
  print_reasons(st, false);
  printf("  bench cpu   %.3f s (user %.3f + sys %.3f)\n", cpu, t->cpu_user, t->cpu_sys);
}

/* ----------------------------------------------------------------- main */

static void usage(FILE *f) {
  fputs(
      "usage: icap-bench --host IP --port N --service NAME --scenario S\n"
      "                  --connections C (--duration SECONDS | --requests N)\n"
      "                  [--warmup SECONDS] [--threads T] [--timeout SECONDS]\n"
      "                  [--max-time SECONDS] [--verbose N] [--json]\n"
      "                  [--chunk SIZE (default 64K)] [--server-pid PID]\n"
      "       icap-bench --host IP --port N --service NAME --sweep [--duration S per point]\n"
      "                  [--sweep-connections 1,4,16,64,256] [--sweep-chunks 4K,16K,64K,1M]\n"
      "                  [--sweep-bodies 1K,64K,1M] [--server-pid PID] [--threads T]\n"
      "       icap-bench --host IP --port N --service NAME --idle N [--hold SECONDS]\n"
      "                  [--idle-concurrency K] [--json]\n"
      "\n"
      "scenarios: options | respmod204 | reqmod204 | echo:SIZE | preview:SIZE:P\n"
      "           (SIZE/P in bytes, k/m suffixes = KiB/MiB)\n"
      "--host must be a numeric IPv4/IPv6 address.  Exit status 0 only if no error,\n"
      "no invalid response and at least one completed request (idle mode: all N\n"
      "connections established and none closed during the hold).\n",
      f);
}

static double parse_double(const char *s, const char *what) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || v < 0 || v > 1e7) die("bad %s: %s", what, s);
  return v;
}

static long parse_long(const char *s, const char *what, long lo, long hi) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi)
    die("bad %s: %s (allowed %ld..%ld)", what, s, lo, hi);
  return v;
}

static void raise_nofile(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
      fprintf(stderr, "icap-bench: warning: cannot raise RLIMIT_NOFILE\n");
  }
}

static double tv_s(struct timeval tv) { return (double)tv.tv_sec + (double)tv.tv_usec / 1e6; }

/* One run with the current cfg: the workers, their connections, and the
 * merged statistics in *t (which the caller has zeroed). */
static void run_load(struct total *t) {
  int i;
  server_cpu0 = server_cpu1 = -1;
  atomic_store(&verbose_left, cfg.verbose);
  atomic_store(&issued, 0);
  struct worker *ws = xcalloc((size_t)cfg.threads, sizeof *ws);
  struct conn *conns = xcalloc((size_t)cfg.connections, sizeof *conns);
  int per = cfg.connections / cfg.threads, extra = cfg.connections % cfg.threads, at = 0;
  for (i = 0; i < cfg.threads; i++) {
    struct worker *w = &ws[i];
    int j;
    w->idx = i;
    w->nconns = per + (i < extra ? 1 : 0);
    w->conns = conns + at;
    for (j = 0; j < w->nconns; j++) {
      w->conns[j].id = (uint32_t)(at + j);
      w->conns[j].body_kind = -1;
    }
    at += w->nconns;
    int r = uv_loop_init(&w->loop);
    if (r < 0) die("uv_loop_init: %s", uv_strerror(r));
  }

  struct rusage ru0, ru1;
  getrusage(RUSAGE_SELF, &ru0);
  if (cfg.threads == 1) {
    worker_run(&ws[0]);
  } else {
    for (i = 0; i < cfg.threads; i++)
      if (uv_thread_create(&ws[i].thread, worker_run, &ws[i]) != 0) die("cannot create thread");
    for (i = 0; i < cfg.threads; i++) uv_thread_join(&ws[i].thread);
  }
  getrusage(RUSAGE_SELF, &ru1);
  /* --requests mode ends with the last response, not with a timer. */
  if (cfg.server_pid > 0 && server_cpu1 < 0) server_cpu1 = server_cpu_s();

  double dmax = 0;
  for (i = 0; i < cfg.threads; i++) {
    merge_stats(&t->st, &ws[i].st);
    if (ws[i].t_measure_end > ws[i].t_measure_start) {
      double d = (double)(ws[i].t_measure_end - ws[i].t_measure_start) / 1e9;
      if (d > dmax) dmax = d;
    }
  }
  t->duration = dmax;
  t->cpu_user = tv_s(ru1.ru_utime) - tv_s(ru0.ru_utime);
  t->cpu_sys = tv_s(ru1.ru_stime) - tv_s(ru0.ru_stime);

  for (i = 0; i < cfg.connections; i++) free(conns[i].hb);
  for (i = 0; i < cfg.threads; i++) free(ws[i].rbuf);
  free(conns);
  free(ws);
}

/* ---------------------------------------------------------------- sweep */

/* --sweep: one closed-loop echo run per point of connections x request chunk
 * size x body size, printed as a markdown table.  A point is flagged as a
 * cliff when, along the connections axis or along the chunk axis, it is below
 * CLIFF_RATIO times every neighbour it has on that axis (a dip, not a slope:
 * on a 2-core machine throughput may rise or fall smoothly along an axis). */
#define CLIFF_RATIO 0.7
#define SWEEP_MAX 16

struct sweep_axis {
  uint64_t v[SWEEP_MAX];
  int n;
};

static struct sweep_axis sw_conns = {{1, 4, 16, 64, 256}, 5};
static struct sweep_axis sw_chunks = {{4096, 16384, 65536, 1048576}, 4};
static struct sweep_axis sw_bodies = {{1024, 65536, 1048576}, 3};

static void parse_axis(struct sweep_axis *ax, const char *s, const char *what) {
  ax->n = 0;
  for (const char *p = s; *p;) {
    if (ax->n == SWEEP_MAX) die("too many %s values: %s", what, s);
    uint64_t v = parse_size(p, what);
    if (v == 0) die("%s must be >= 1: %s", what, s);
    ax->v[ax->n++] = v;
    const char *comma = strchr(p, ',');
    if (!comma) break;
    p = comma + 1;
  }
  if (ax->n == 0) die("empty %s list", what);
}

/* Is value x below CLIFF_RATIO times every neighbour of index i in vals[]
 * (stride apart, n along the axis)? */
static bool is_dip(const double *vals, int i, int stride, int n) {
  int neighbours = 0, above = 0;
  for (int d = -1; d <= 1; d += 2) {
    int j = i + d;
    if (j < 0 || j >= n) continue;
    neighbours++;
    if (vals[(i + d) * stride] > 0 && vals[0] < CLIFF_RATIO * vals[(i + d) * stride]) above++;
  }
  return neighbours > 0 && above == neighbours;
}

static int run_sweep(void) {
  int nc = sw_conns.n, nk = sw_chunks.n, nb = sw_bodies.n, threads = cfg.threads, rc = 0;
  double *rps = xcalloc((size_t)(nc * nk * nb), sizeof *rps);
  double *srv = xcalloc((size_t)(nc * nk * nb), sizeof *srv);
  uint64_t *bad = xcalloc((size_t)(nc * nk * nb), sizeof *bad);
  static char scen[64];
  for (int b = 0; b < nb; b++) {
    snprintf(scen, sizeof scen, "echo:%" PRIu64, sw_bodies.v[b]);
    cfg.scenario = scen;
    parse_scenario(scen);
    free(req_head);
    build_request();
    for (int k = 0; k < nk; k++) {
      cfg.chunk = sw_chunks.v[k];
      for (int c = 0; c < nc; c++) {
        int at = (b * nk + k) * nc + c;
        cfg.connections = (int)sw_conns.v[c];
        cfg.threads = threads < cfg.connections ? threads : cfg.connections;
        cfg.max_time = cfg.warmup + cfg.duration + cfg.timeout + 30.0;
        struct total *t = xcalloc(1, sizeof *t);
        run_load(t);
        rps[at] = t->duration > 0 ? (double)t->st.completed / t->duration : 0;
        srv[at] = (server_cpu0 >= 0 && server_cpu1 >= 0 && t->st.completed)
                      ? (server_cpu1 - server_cpu0) * 1e6 / (double)t->st.completed
                      : -1;
        bad[at] = t->st.errors + t->st.invalid;
        if (bad[at] || t->st.completed == 0) rc = 1;
        fprintf(stderr,
                "sweep: echo:%" PRIu64 " chunk %" PRIu64 " x%d: %.1f req/s, %" PRIu64 " errors\n",
                sw_bodies.v[b], cfg.chunk, cfg.connections, rps[at], bad[at]);
        print_reasons(&t->st, false);
        free(t);
      }
    }
  }
  printf("| body | chunk |");
  for (int c = 0; c < nc; c++) printf(" %" PRIu64 " conns |", sw_conns.v[c]);
  printf("\n|---:|---:|");
  for (int c = 0; c < nc; c++) printf("---:|");
  printf("\n");
  int flagged = 0;
  for (int b = 0; b < nb; b++)
    for (int k = 0; k < nk; k++) {
      printf("| %" PRIu64 " | %" PRIu64 " |", sw_bodies.v[b], sw_chunks.v[k]);
      for (int c = 0; c < nc; c++) {
        int at = (b * nk + k) * nc + c;
        bool dip = is_dip(&rps[at], c, 1, nc) || is_dip(&rps[at], k, nc, nk);
        flagged += dip;
        printf(" %s%.0f%s", dip ? "**" : "", rps[at], dip ? "** ⚠" : "");
        if (srv[at] >= 0) printf(" (%.0f µs)", srv[at]);
        if (bad[at]) printf(" E%" PRIu64, bad[at]);
        printf(" |");
      }
      printf("\n");
    }
  printf(
      "\nreq/s per point (%.1f s each, warm-up %.1f s)%s; **bold ⚠** = below %.1fx every "
      "neighbour along the connections or the chunk axis (%d point%s); E = errors.\n",
      cfg.duration, cfg.warmup, cfg.server_pid > 0 ? ", (server CPU µs per transaction)" : "",
      CLIFF_RATIO, flagged, flagged == 1 ? "" : "s");
  free(rps);
  free(srv);
  free(bad);
  return rc;
}

int main(int argc, char **argv) {
  int i;
  bool have_duration = false, have_requests = false;
  for (i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEEDV()                         \
  do {                                  \
    if (!v) die("%s needs a value", a); \
    i++;                                \
  } while (0)
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage(stdout);
      return 0;
    } else if (!strcmp(a, "--host")) {
      NEEDV();
      cfg.host = v;
    } else if (!strcmp(a, "--port")) {
      NEEDV();
      cfg.port = (int)parse_long(v, "port", 1, 65535);
    } else if (!strcmp(a, "--service")) {
      NEEDV();
      cfg.service = v;
    } else if (!strcmp(a, "--scenario")) {
      NEEDV();
      cfg.scenario = v;
    } else if (!strcmp(a, "--connections") || !strcmp(a, "-c")) {
      NEEDV();
      cfg.connections = (int)parse_long(v, "connections", 1, MAX_CONNECTIONS);
    } else if (!strcmp(a, "--threads")) {
      NEEDV();
      cfg.threads = (int)parse_long(v, "threads", 1, MAX_THREADS);
    } else if (!strcmp(a, "--duration") || !strcmp(a, "-d")) {
      NEEDV();
      cfg.duration = parse_double(v, "duration");
      have_duration = true;
    } else if (!strcmp(a, "--requests") || !strcmp(a, "-n")) {
      NEEDV();
      cfg.requests = (uint64_t)parse_long(v, "requests", 1, LONG_MAX);
      have_requests = true;
    } else if (!strcmp(a, "--warmup")) {
      NEEDV();
      cfg.warmup = parse_double(v, "warmup");
    } else if (!strcmp(a, "--timeout")) {
      NEEDV();
      cfg.timeout = parse_double(v, "timeout");
    } else if (!strcmp(a, "--max-time")) {
      NEEDV();
      cfg.max_time = parse_double(v, "max-time");
    } else if (!strcmp(a, "--verbose")) {
      NEEDV();
      cfg.verbose = (int)parse_long(v, "verbose", 0, 1000000);
    } else if (!strcmp(a, "--json")) {
      cfg.json = true;
    } else if (!strcmp(a, "--chunk")) {
      NEEDV();
      cfg.chunk = parse_size(v, "chunk size");
      if (cfg.chunk == 0 || cfg.chunk > MAX_CHUNK) die("--chunk must be 1 .. 16M: %s", v);
    } else if (!strcmp(a, "--sweep")) {
      cfg.sweep = true;
    } else if (!strcmp(a, "--sweep-connections")) {
      NEEDV();
      parse_axis(&sw_conns, v, "sweep connections");
    } else if (!strcmp(a, "--sweep-chunks")) {
      NEEDV();
      parse_axis(&sw_chunks, v, "sweep chunk sizes");
    } else if (!strcmp(a, "--sweep-bodies")) {
      NEEDV();
      parse_axis(&sw_bodies, v, "sweep body sizes");
    } else if (!strcmp(a, "--server-pid")) {
      NEEDV();
      cfg.server_pid = (int)parse_long(v, "server pid", 1, 1 << 30);
    } else if (!strcmp(a, "--idle")) {
      NEEDV();
      cfg.idle_n = (int)parse_long(v, "idle", 1, MAX_CONNECTIONS);
    } else if (!strcmp(a, "--hold")) {
      NEEDV();
      cfg.hold = parse_double(v, "hold");
    } else if (!strcmp(a, "--idle-concurrency")) {
      NEEDV();
      cfg.idle_conc = (int)parse_long(v, "idle-concurrency", 1, MAX_CONNECTIONS);
    } else {
      usage(stderr);
      die("unknown argument: %s", a);
    }
#undef NEEDV
  }
  if (strlen(cfg.service) > 200 || strlen(cfg.host) > 100) die("host or service name too long");
  if (uv_ip4_addr(cfg.host, cfg.port, (struct sockaddr_in *)&cfg.addr) != 0 &&
      uv_ip6_addr(cfg.host, cfg.port, (struct sockaddr_in6 *)&cfg.addr) != 0)
    die("--host must be a numeric IP address: %s", cfg.host);
  if (cfg.timeout <= 0) die("--timeout must be > 0");

  if (idle_mode()) {
    cfg.scenario = "options";
    cfg.connections = cfg.idle_n;
    cfg.threads = 1;
    if (cfg.max_time == 0) cfg.max_time = cfg.hold + 120.0 + cfg.timeout;
  } else {
    if (cfg.sweep && !have_duration && !have_requests) {
      cfg.duration = 2.0;
      have_duration = true;
    }
    if (cfg.sweep && have_requests) die("--sweep runs each point for --duration seconds");
    if (have_duration == have_requests) die("give exactly one of --duration and --requests");
    if (have_duration && cfg.duration <= 0) die("--duration must be > 0");
    if (cfg.threads > cfg.connections && !cfg.sweep) cfg.threads = cfg.connections;
    if (cfg.max_time == 0)
      cfg.max_time =
          have_duration ? cfg.warmup + cfg.duration + cfg.timeout + 30.0 : cfg.warmup + 600.0;
  }
  parse_scenario(cfg.scenario);
  build_request();
  if (cfg.sweep) /* the pattern must hold the largest chunk of the sweep */
    for (int k = 0; k < sw_chunks.n; k++)
      if (sw_chunks.v[k] > cfg.chunk) cfg.chunk = sw_chunks.v[k];
  build_pattern();
  raise_nofile();
  signal(SIGPIPE, SIG_IGN);

  if (cfg.sweep) return run_sweep();
  struct total *t = xcalloc(1, sizeof *t);
  run_load(t);
  int rc;
  if (idle_mode()) {
    print_idle(t);
    rc = (t->st.idle_established == (uint64_t)cfg.idle_n && t->st.idle_closed == 0 &&
          t->st.errors == 0 && t->st.invalid == 0)
             ? 0
             : 1;
  } else {
    print_load(t);
    rc = (t->st.errors == 0 && t->st.invalid == 0 && t->st.completed > 0) ? 0 : 1;
  }
  fflush(stdout);
  free(t);
  free(pattern);
  free(req_head);
  return rc;
}
