// SPDX-License-Identifier: MIT
/*
 * libicap - a framework for writing ICAP (RFC 3507) services.
 *
 * This header is the whole stable C ABI and its reference documentation.
 *
 * Conventions used throughout:
 *  - Functions return 0 on success or a negative ICAP_E* code; an error never
 *    calls the function's callback, success calls it exactly once.
 *  - Objects are opaque. Constructors give the object through an `out`
 *    parameter; `icap_*_free(NULL)` is a no-op.
 *  - Ownership words: "copied" means the library keeps its own copy and the
 *    caller may reuse its memory at once; "borrowed until X" means a returned
 *    pointer stays valid until event X; "taken" means the library now owns it.
 *  - Strings passed in are NUL-terminated UTF-8/ASCII unless a length is given.
 *    Data handed to callbacks is (pointer, length), not NUL-terminated, valid
 *    only during the callback, and may be split at any byte.
 *  - Threading: an icap_server is configured from one thread before
 *    icap_server_run(). Each connection and every transaction on it belongs
 *    to one worker loop thread; handlers run there and every icap_request_*
 *    function must be called on that thread ("loop thread only") unless it
 *    says "thread-safe". The thread-safe functions are icap_server_stop(),
 *    icap_request_post(), icap_service_set_istag(), the icap_tls_config_*
 *    functions and the pure functions (icap_version*, icap_strerror,
 *    icap_err_name, icap_status_reason).
 */
#ifndef ICAP_ICAP_H
#define ICAP_ICAP_H

#include <stddef.h>
#include <stdint.h>

#include "icap/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ICAP_EXTERN marks the exported functions. The library's own build
 * defines ICAP_BUILDING_LIBRARY (export); a program using the shared library
 * gets the import form on Windows, and one linking libicap.a statically on
 * Windows defines ICAP_STATIC. With GCC and Clang every function is given
 * default visibility, so that a consumer built with -fvisibility=hidden
 * still sees them. */
#if defined(_WIN32) || defined(__CYGWIN__)
#if defined(ICAP_STATIC)
#define ICAP_EXTERN
#elif defined(ICAP_BUILDING_LIBRARY)
#define ICAP_EXTERN __declspec(dllexport)
#else
#define ICAP_EXTERN __declspec(dllimport)
#endif
#elif defined(__GNUC__)
#define ICAP_EXTERN __attribute__((visibility("default")))
#else
#define ICAP_EXTERN
#endif

/* ------------------------------------------------------------ errors --- */

/* X-macro: name, value, message. Codes are only ever appended. */
#define ICAP_ERRNO_MAP(XX)                                                 \
  XX(EINVAL, -1, "invalid argument")                                       \
  XX(ENOMEM, -2, "out of memory")                                          \
  XX(ESTATE, -3, "operation not valid in the current state")               \
  XX(EEXIST, -4, "already exists")                                         \
  XX(ENOENT, -5, "no such entry")                                          \
  XX(EADDRINUSE, -6, "address already in use")                             \
  XX(EADDRNOTAVAIL, -7, "address not available")                           \
  XX(EIO, -8, "I/O error")                                                 \
  XX(ECONNRESET, -9, "the client went away")                               \
  XX(ETIMEDOUT, -10, "timed out")                                          \
  XX(ECANCELED, -11, "operation canceled")                                 \
  XX(EPROTO, -12, "protocol error")                                        \
  XX(ELIMIT, -13, "a configured limit was exceeded")                       \
  XX(EBUSY, -14, "resource busy")                                          \
  XX(ECONSUMED, -15, "the body was already consumed and cannot be echoed") \
  XX(EHANDLER, -16, "the handler failed")                                  \
  XX(ENOTSUP, -17, "not supported")

typedef enum icap_error {
#define ICAP_ERR_ENUM_(name, val, msg) ICAP_##name = val,
  ICAP_ERRNO_MAP(ICAP_ERR_ENUM_)
#undef ICAP_ERR_ENUM_
      ICAP_OK = 0
} icap_error;

/* Static message for an error code; never NULL ("unknown error" otherwise). */
ICAP_EXTERN const char *icap_strerror(int err);
/* Static name of an error code ("ICAP_EINVAL"); never NULL. */
ICAP_EXTERN const char *icap_err_name(int err);

/* Version of the library actually loaded (compare with ICAP_VERSION_*). */
ICAP_EXTERN unsigned icap_version(void);
ICAP_EXTERN const char *icap_version_string(void);

/* Standard reason phrase for an ICAP status code ("OK", "No Content"...). */
ICAP_EXTERN const char *icap_status_reason(int code);

/* ------------------------------------------------------------- types --- */

typedef struct icap_server icap_server;
typedef struct icap_service icap_service;
typedef struct icap_request icap_request;

typedef enum icap_method {
  ICAP_METHOD_OPTIONS = 0,
  ICAP_METHOD_REQMOD = 1,
  ICAP_METHOD_RESPMOD = 2,
  /* Not part of the ABI, never use: the number of methods today, which
   * grows when one is added (kept for the library's own tables). */
  ICAP_METHOD_COUNT_ = 3
} icap_method;

typedef enum icap_log_level {
  ICAP_LOG_ERROR = 0,
  ICAP_LOG_WARN = 1,
  ICAP_LOG_INFO = 2,
  ICAP_LOG_DEBUG = 3
} icap_log_level;

/* Called on whichever thread logs (a worker loop or the caller of
 * icap_server_run). `msg` is NUL-terminated and borrowed for the call. */
typedef void (*icap_log_cb)(icap_server *srv, icap_log_level level, const char *msg, void *user);

/* A handler for one method of one service. Called on the loop thread once
 * the ICAP head and the encapsulated HTTP headers have arrived (the body, if
 * any, is read with icap_request_read_chunk() or icap_request_set_body_cb()).
 * The handler must eventually answer: send an error, call
 * icap_request_no_adaptation(), or send headers (and a body). It may answer
 * before returning or later from another callback on the same loop.
 * Return 0, or a negative code to fail the transaction: the client then gets
 * 500 (if no response started yet), the connection is closed and the error
 * is logged. */
typedef int (*icap_handler_cb)(icap_request *req, void *user);

/* ------------------------------------------------------------ limits --- */

/* Configurable limits and timeouts; defaults in brackets (see README). */
typedef enum icap_limit {
  ICAP_LIMIT_HEADER_BYTES = 0,        /* ICAP head, request line + headers [16384] */
  ICAP_LIMIT_HEADER_COUNT = 1,        /* ICAP header fields [100] */
  ICAP_LIMIT_HTTP_HEADER_BYTES = 2,   /* all encapsulated header blocks [65536] */
  ICAP_LIMIT_HTTP_HEADER_COUNT = 3,   /* fields per encapsulated block [200] */
  ICAP_LIMIT_CHUNK_SIZE = 4,          /* largest accepted chunk [16 MiB] */
  ICAP_LIMIT_PREVIEW_BYTES = 5,       /* largest Preview: accepted [65536] */
  ICAP_LIMIT_BUFFER_BYTES = 6,        /* buffered input/output per connection
                                         before reading/echoing pauses [262144] */
  ICAP_LIMIT_CONNECTIONS = 7,         /* hard limit, whole server; above it the
                                         new connection gets 503 + close [10000] */
  ICAP_LIMIT_IDLE_TIMEOUT_MS = 8,     /* keep-alive idle before close [60000] */
  ICAP_LIMIT_READ_TIMEOUT_MS = 9,     /* a started request must progress within
                                         this; else 408 + close [30000] */
  ICAP_LIMIT_HANDLER_TIMEOUT_MS = 10, /* handler must answer within this while
                                       not waiting for client data; else 500
                                       + close [30000] */
  ICAP_LIMIT_DRAIN_TIMEOUT_MS = 11,   /* icap_server_stop(): longest wait for
                                         in-flight transactions [10000] */
  ICAP_LIMIT_WRITE_TIMEOUT_MS = 12,   /* a client that reads nothing of a pending
                                         response for this long is closed [60000] */
  /* Not part of the ABI, never use: grows when a limit is added. */
  ICAP_LIMIT_COUNT_ = 13
} icap_limit;

/* ------------------------------------------------------------ server --- */

/* Create a server with default settings. `*out` is yours to free with
 * icap_server_free(). Returns 0, ICAP_EINVAL or ICAP_ENOMEM. */
ICAP_EXTERN int icap_server_new(icap_server **out);

/* Free a server that is not running (after icap_server_run() returned, or
 * never run). Services and their handlers go with it. NULL is a no-op. */
ICAP_EXTERN void icap_server_free(icap_server *srv);

/* Number of worker loops (threads); 0 means the number of CPUs [0].
 * Before run only. Returns 0, ICAP_EINVAL, ICAP_ESTATE. */
ICAP_EXTERN int icap_server_set_workers(icap_server *srv, unsigned workers);

/* Set a limit (see icap_limit). Before run only. Returns 0, ICAP_EINVAL
 * (unknown limit or value 0 where 0 makes no sense), ICAP_ESTATE. */
ICAP_EXTERN int icap_server_set_limit(icap_server *srv, icap_limit which, uint64_t value);
/* Current value of a limit, or 0 for an unknown one. */
ICAP_EXTERN uint64_t icap_server_get_limit(const icap_server *srv, icap_limit which);

/* Value of the Server: header on responses [libicap/VERSION]. Copied.
 * Before run only. Returns 0, ICAP_EINVAL, ICAP_ESTATE, ICAP_ENOMEM (the
 * old value is kept). */
ICAP_EXTERN int icap_server_set_server_header(icap_server *srv, const char *value);

/* Log callback (NULL: no logging; the library never writes to stderr on its
 * own). `min_level` filters. Before run only. */
ICAP_EXTERN int icap_server_set_log(icap_server *srv, icap_log_level min_level, icap_log_cb cb,
                                    void *user);

/* Bind and listen on host:port (IPv4 or IPv6 literal, or a name resolved
 * once now). Port 0 lets the kernel choose; read it back with
 * icap_server_port(). May be called several times for several addresses.
 * Returns 0, ICAP_EINVAL, ICAP_EADDRINUSE, ICAP_EADDRNOTAVAIL, ICAP_EIO,
 * ICAP_ESTATE (running). Errors happen here, not later in run. */
ICAP_EXTERN int icap_server_listen(icap_server *srv, const char *host, int port);

/* Adopt `fd`, a TCP socket (IPv4 or IPv6) that is already bound and
 * listening, for example one passed by systemd socket activation
 * (LISTEN_FDS) or by a supervisor that keeps it open across restarts. On
 * success the fd is taken: the server accepts from it (every worker loop
 * polls it; the kernel hands each connection to one of them), sets
 * close-on-exec and non-blocking mode on it, and closes its descriptors
 * when icap_server_stop() begins the drain (or in icap_server_free() if
 * the server never ran). The socket itself may stay open in other
 * processes: a stopping server only stops accepting from it, and
 * connections still waiting in its backlog are left to whoever else
 * accepts from it (the new instance during a restart). No socket of its own is ever opened on that
 * port, SO_REUSEPORT or not. It counts as a listen address for
 * icap_server_port(), in the order of the calls. On failure the fd is left
 * untouched and still the caller's. Before run only. Returns 0,
 * ICAP_EINVAL (not a listening TCP socket), ICAP_ESTATE, ICAP_ENOMEM. */
ICAP_EXTERN int icap_server_listen_fd(icap_server *srv, int fd);

/* The port of the idx-th listen address (0-based), or a negative code. */
ICAP_EXTERN int icap_server_port(const icap_server *srv, unsigned idx);

/* Run the worker loops on the calling thread plus workers-1 new threads, and
 * return after icap_server_stop() once in-flight transactions finished (or
 * the drain timeout passed). Returns 0, ICAP_ESTATE (no listener, already
 * running), ICAP_EIO. A server runs once. */
ICAP_EXTERN int icap_server_run(icap_server *srv);

/* Ask a server to stop: stop accepting, finish in-flight transactions
 * (bounded by ICAP_LIMIT_DRAIN_TIMEOUT_MS), and return from
 * icap_server_run(). Every response that starts after the stop says
 * Connection: close. A kept-alive connection that is idle stays open for a
 * short grace (1 s, at most half the drain timeout) so that a request
 * already on its way is answered rather than lost, then is closed. Thread-safe and async-signal-safe; may be
 * called before run (run then returns at once) and more than once. */
ICAP_EXTERN void icap_server_stop(icap_server *srv);

/* ----------------------------------------------------------- service --- */

/* Register a service reachable as icap://host:port/NAME (NAME may contain
 * '/', and is matched exactly, without query). The service belongs to the
 * server (borrowed, valid until icap_server_free()). Before run only.
 * Returns 0, ICAP_EINVAL, ICAP_EEXIST, ICAP_ESTATE, ICAP_ENOMEM. */
ICAP_EXTERN int icap_server_add_service(icap_server *srv, const char *name, icap_service **out);

/* Set the handler of one method. A service answers 405 to a REQMOD/RESPMOD
 * without a handler. OPTIONS needs no handler: it is generated from the
 * registration; a handler set for OPTIONS may add or override headers with
 * icap_request_set_icap_header() before icap_request_send_headers(), and
 * every header it does not set keeps its generated value. `user` is
 * borrowed for the life of the server. Before run only: once the server
 * runs, this and the other "before run only" service setters below return
 * ICAP_ESTATE and change nothing. Returns 0, ICAP_EINVAL, ICAP_ESTATE. */
ICAP_EXTERN int icap_service_set_handler(icap_service *svc, icap_method method, icap_handler_cb cb,
                                         void *user);

/* ISTag value (without quotes, at most 30 printable chars, no '"' or '\\').
 * Default: derived from the service name and the start time. Thread-safe:
 * a new tag is used by every response that starts after the call; the one
 * service setter that may be called while the server runs.
 * Returns 0, ICAP_EINVAL or ICAP_ENOMEM (the old tag is kept). */
ICAP_EXTERN int icap_service_set_istag(icap_service *svc, const char *tag);

/* OPTIONS values. Preview: bytes advertised (-1: no Preview header) [1024];
 * Options-TTL seconds (-1: omit) [3600]; Max-Connections (0: derived from
 * ICAP_LIMIT_CONNECTIONS, 7/8 of it) [0]. Before run only.
 * Each returns 0, ICAP_EINVAL, ICAP_ESTATE. */
ICAP_EXTERN int icap_service_set_preview(icap_service *svc, int64_t bytes);
ICAP_EXTERN int icap_service_set_options_ttl(icap_service *svc, int64_t seconds);
ICAP_EXTERN int icap_service_set_max_connections(icap_service *svc, uint64_t n);

/* Whether OPTIONS advertises Allow: 204 [1] and Allow: 206 [0]. Advertising
 * 206 makes Squid offer it. Before run only. Returns 0, ICAP_EINVAL,
 * ICAP_ESTATE. */
ICAP_EXTERN int icap_service_set_allow(icap_service *svc, int allow_204, int allow_206);

/* Transfer-Preview / Transfer-Ignore / Transfer-Complete lists (NULL: omit).
 * Default Transfer-Preview is "*" so that Squid sends previews. Copied.
 * Before run only. Returns 0, ICAP_EINVAL, ICAP_ESTATE, ICAP_ENOMEM (then
 * none of the three changed). */
ICAP_EXTERN int icap_service_set_transfer(icap_service *svc, const char *preview,
                                          const char *ignore, const char *complete);

/* Add an extra header to every OPTIONS answer (e.g. X-Include). Copied.
 * Before run only. Returns 0, ICAP_EINVAL, ICAP_ESTATE, ICAP_ENOMEM. */
ICAP_EXTERN int icap_service_add_options_header(icap_service *svc, const char *name,
                                                const char *value);

/* The service's name, borrowed until icap_server_free(). */
ICAP_EXTERN const char *icap_service_name(const icap_service *svc);

/* ----------------------------------------------------------- request --- */
/* An icap_request is one ICAP transaction. It stays valid (loop thread only)
 * from the handler call until its done callback has run - that is, until the
 * response is complete and the request body is consumed, or the client is
 * gone - and longer while references from icap_request_ref() are held. */

/* Which header block a header function looks at. */
typedef enum icap_headers {
  ICAP_HEADERS_ICAP = 0,     /* the ICAP request's own headers */
  ICAP_HEADERS_HTTP_REQ = 1, /* encapsulated HTTP request headers (req-hdr) */
  ICAP_HEADERS_HTTP_RES = 2  /* encapsulated HTTP response headers (res-hdr) */
} icap_headers;

/* Encapsulated sections, as in "Encapsulated: req-hdr=0, res-body=120". */
typedef enum icap_section {
  ICAP_SECTION_REQ_HDR = 0,
  ICAP_SECTION_RES_HDR = 1,
  ICAP_SECTION_REQ_BODY = 2,
  ICAP_SECTION_RES_BODY = 3,
  ICAP_SECTION_NULL_BODY = 4,
  ICAP_SECTION_OPT_BODY = 5,
  /* Not part of the ABI, never use: grows when a section is added. */
  ICAP_SECTION_COUNT_ = 6
} icap_section;

/* The name a section has in an Encapsulated header ("req-hdr", "res-hdr",
 * "req-body", "res-body", "null-body", "opt-body"): a static string, never
 * to be freed. NULL for a value outside the enum. Any thread. */
ICAP_EXTERN const char *icap_section_name(icap_section section);

/* All returned strings are NUL-terminated and borrowed until the request is
 * released. Absent values are "" for strings and -1 for numbers unless noted. */
ICAP_EXTERN icap_method icap_request_method(const icap_request *req);
ICAP_EXTERN const char *icap_request_method_name(const icap_request *req);
ICAP_EXTERN const char *icap_request_uri(const icap_request *req);
ICAP_EXTERN const char *icap_request_version(const icap_request *req);
ICAP_EXTERN const char *icap_request_service_name(const icap_request *req);
ICAP_EXTERN icap_service *icap_request_service(const icap_request *req);
/* Peer address as text ("127.0.0.1") and port. */
ICAP_EXTERN const char *icap_request_client_ip(const icap_request *req);
ICAP_EXTERN int icap_request_client_port(const icap_request *req);
/* Index of the worker loop this request runs on (0-based). */
ICAP_EXTERN unsigned icap_request_worker(const icap_request *req);

/* Header access, case-insensitive. icap_request_header() returns the n-th
 * (0-based) value of `name` in block `which`, or NULL. Repeated headers keep
 * their order. icap_request_header_at() gives the i-th field in arrival
 * order. Returns 0 or ICAP_ENOENT. */
ICAP_EXTERN const char *icap_request_header(const icap_request *req, icap_headers which,
                                            const char *name, size_t n);
ICAP_EXTERN size_t icap_request_header_count(const icap_request *req, icap_headers which);
ICAP_EXTERN int icap_request_header_at(const icap_request *req, icap_headers which, size_t i,
                                       const char **name, const char **value);

/* Offset of an Encapsulated section, or -1 if absent. */
ICAP_EXTERN int64_t icap_request_encapsulated(const icap_request *req, icap_section section);

/* The encapsulated HTTP request line (REQMOD, or RESPMOD with req-hdr):
 * method, URI and version, "" when absent. */
ICAP_EXTERN const char *icap_request_http_method(const icap_request *req);
ICAP_EXTERN const char *icap_request_http_uri(const icap_request *req);
ICAP_EXTERN const char *icap_request_http_req_version(const icap_request *req);
/* The encapsulated HTTP status line (RESPMOD): code (-1 if absent), reason
 * and version. */
ICAP_EXTERN int icap_request_http_status(const icap_request *req);
ICAP_EXTERN const char *icap_request_http_reason(const icap_request *req);
ICAP_EXTERN const char *icap_request_http_res_version(const icap_request *req);
/* The raw bytes of a header section exactly as received (for echoing). */
ICAP_EXTERN const char *icap_request_raw_section(const icap_request *req, icap_section section,
                                                 size_t *len);

/* 1 if the request has an encapsulated body (req-body or res-body). */
ICAP_EXTERN int icap_request_has_body(const icap_request *req);
/* The Preview: value, or -1 if the request has no preview. */
ICAP_EXTERN int64_t icap_request_preview(const icap_request *req);
/* 1 once a "0; ieof" chunk was read: the preview held the whole body. */
ICAP_EXTERN int icap_request_ieof(const icap_request *req);
/* 1 if the client's Allow headers list `code` (204 or 206). */
ICAP_EXTERN int icap_request_allows(const icap_request *req, int code);
/* 1 while the request is in its preview (the preview's last chunk not read
 * yet, or read without ieof and no 100 Continue sent). */
ICAP_EXTERN int icap_request_in_preview(const icap_request *req);
/* The ICAP status set so far with icap_request_set_status() (or sent), or 0. */
ICAP_EXTERN int icap_request_response_code(const icap_request *req);

/* Per-request user data, NULL by default. */
ICAP_EXTERN void icap_request_set_data(icap_request *req, void *data);
ICAP_EXTERN void *icap_request_get_data(const icap_request *req);

/* Called exactly once when the transaction ends: status 0 when the response
 * was completely queued for the socket, ICAP_ECONNRESET when the client went
 * away first, ICAP_ETIMEDOUT when a timeout ended it, ICAP_ECANCELED when the
 * server stopped, ICAP_EPROTO when the client sent a malformed body,
 * ICAP_EHANDLER after icap_request_abort() or a failed handler. After it
 * returns the request is released unless referenced.
 * Setting it again replaces the previous one. */
typedef void (*icap_done_cb)(icap_request *req, int status, void *user);
ICAP_EXTERN int icap_request_on_done(icap_request *req, icap_done_cb cb, void *user);

/* ----- reading the body ----- */

/* Flags given to body callbacks (a non-negative `status`). */
/* The last piece of what can be read now: the body, or the preview when
 * ICAP_BODY_PREVIEW_END is set too. */
#define ICAP_BODY_END 1u
/* The preview ended with ieof: it held the whole body. */
#define ICAP_BODY_IEOF 2u
/* The preview is over without ieof: the rest comes after
 * icap_request_continue(). */
#define ICAP_BODY_PREVIEW_END 4u

/* status < 0: the read failed (ICAP_ECONNRESET, ICAP_ETIMEDOUT,
 * ICAP_ECANCELED, ICAP_EPROTO for a malformed body) and data is NULL.
 * status >= 0: ICAP_BODY_* flags; data/len is the next piece of the body
 * (may be empty when only flags are reported), borrowed for the call. */
typedef void (*icap_body_cb)(icap_request *req, int status, const char *data, size_t len,
                             void *user);

/* pyicap's read_chunk(): deliver the next piece of the body once, to `cb`.
 * After a preview that ended without ieof, it first sends 100 Continue
 * (as icap_request_continue()). Returns 0, ICAP_EBUSY (a read is already
 * pending or push mode is on), ICAP_ESTATE (no body or body fully read). */
ICAP_EXTERN int icap_request_read_chunk(icap_request *req, icap_body_cb cb, void *user);

/* Backpressure: while more than ICAP_LIMIT_BUFFER_BYTES of this
 * connection's output wait to be written, body pieces are not delivered
 * (to read_chunk, push mode or the echo); delivery resumes as the client
 * reads. A handler that streams its answer from the body is thus paced by
 * the client without checks of its own. */

/* Push streaming: `cb` is called for every piece until END (or an error),
 * unless paused. Passing NULL stops push mode. Returns 0, ICAP_EBUSY, ICAP_ESTATE. */
ICAP_EXTERN int icap_request_set_body_cb(icap_request *req, icap_body_cb cb, void *user);
/* Pause/resume push delivery. While paused the client's data stays in
 * libicap's bounded buffer and then in the socket (backpressure). */
ICAP_EXTERN int icap_request_pause(icap_request *req);
ICAP_EXTERN int icap_request_resume(icap_request *req);

/* Send 100 Continue after a preview that ended without ieof. Returns 0, or
 * ICAP_ESTATE (no preview, preview not over, ieof seen, already sent, or a
 * final response started). */
ICAP_EXTERN int icap_request_continue(icap_request *req);

/* ----- answering ----- */

/* Send a complete bodiless response with this status code, e.g. 403, 500
 * (204 behaves as icap_request_no_adaptation()). The rest of the request
 * body, if any, is read and discarded so the connection stays usable. A
 * pending body read is called with ICAP_ECANCELED. Returns 0, ICAP_EINVAL,
 * ICAP_ESTATE (a response already started). */
ICAP_EXTERN int icap_request_send_error(icap_request *req, int code);

/* pyicap's no_adaptation_required(): 204 when the client allowed it (Allow:
 * 204, or during a preview); otherwise 200 with the original message echoed
 * unchanged, its body streamed through as it arrives (never buffered whole).
 * Returns 0, ICAP_ESTATE (a response already started), ICAP_ECONSUMED (204
 * not allowed and body bytes after the preview were already read). */
ICAP_EXTERN int icap_request_no_adaptation(icap_request *req);

/* Set the ICAP status of the response [200]. */
ICAP_EXTERN int icap_request_set_status(icap_request *req, int code);
/* Add an ICAP response header (repeatable). ISTag, Date, Server,
 * Connection and Encapsulated are written by the library and refused here
 * (ICAP_EINVAL), except ISTag in an OPTIONS handler. Copied. */
ICAP_EXTERN int icap_request_set_icap_header(icap_request *req, const char *name,
                                             const char *value);
/* Encapsulated HTTP start line of the response: a status line
 * ("HTTP/1.1 403 Forbidden") makes the answer carry an HTTP response
 * (res-hdr; allowed in REQMOD for a block page), a request line
 * ("GET http://x/ HTTP/1.1") an HTTP request (REQMOD only). Copied. */
ICAP_EXTERN int icap_request_set_http_status(icap_request *req, const char *status_line);
ICAP_EXTERN int icap_request_set_http_request(icap_request *req, const char *request_line);
/* Add an encapsulated HTTP header (repeatable, kept in order). Copied. */
ICAP_EXTERN int icap_request_add_http_header(icap_request *req, const char *name,
                                             const char *value);
/* Copy the original encapsulated message's start line and headers (of the
 * HTTP response for RESPMOD, of the HTTP request for REQMOD) into the
 * response, except the headers named in the NULL-terminated list `skip`
 * (may be NULL). Useful to rewrite a header or two. */
ICAP_EXTERN int icap_request_copy_http_head(icap_request *req, const char *const *skip);

/* Send the response head. has_body=1 means a body follows through
 * icap_request_send_chunk() and ends with icap_request_end(). Without any
 * HTTP start line the answer has no encapsulated HTTP message
 * (Encapsulated: null-body=0). Returns 0, ICAP_ESTATE, ICAP_EINVAL. */
ICAP_EXTERN int icap_request_send_headers(icap_request *req, int has_body);

/* Send a piece of the body as one chunk; the data is copied. len 0 ends the
 * body (same as icap_request_end()). Returns 0, ICAP_ESTATE. */
ICAP_EXTERN int icap_request_send_chunk(icap_request *req, const char *data, size_t len);
/* Zero-copy variant: `data` is borrowed until `release(data, user)` is
 * called (on the loop thread) once the bytes were written or dropped. On an
 * error return, release is not called and the data stays the caller's. */
typedef void (*icap_release_cb)(const char *data, size_t len, void *user);
ICAP_EXTERN int icap_request_send_chunk_zc(icap_request *req, const char *data, size_t len,
                                           icap_release_cb release, void *user);
/* End the body (last chunk). */
ICAP_EXTERN int icap_request_end(icap_request *req);
/* End a 206 body: the client uses the original body from `offset` on
 * ("0; use-original-body=offset"). Requires status 206 and Allow: 206. */
ICAP_EXTERN int icap_request_end_use_original(icap_request *req, uint64_t offset);

/* Fail the transaction from any loop-thread callback (for example a body
 * callback that cannot go on): 500 if no response started, and the
 * connection is closed after what was already queued. `err` is logged.
 * Returns 0 or ICAP_ESTATE (already ended). */
ICAP_EXTERN int icap_request_abort(icap_request *req, int err);

/* Bytes queued for this connection and not yet written; a streaming handler
 * may pause its source while this is above ICAP_LIMIT_BUFFER_BYTES. */
ICAP_EXTERN size_t icap_request_write_queue_size(const icap_request *req);

/* ----- references, cross-thread and blocking work ----- */

/* Keep the request's memory valid past its done callback (loop thread).
 * Every ref needs one unref (or is transferred by icap_request_post()). */
ICAP_EXTERN void icap_request_ref(icap_request *req);
ICAP_EXTERN void icap_request_unref(icap_request *req);

/* Run cb(req, status, user) on the request's loop thread. Thread-safe: the
 * ONE function that may be called from any thread with a request. The caller
 * must own a reference (icap_request_ref() taken on the loop thread); the
 * reference is transferred and released after cb returns. status is 0, or
 * ICAP_ECANCELED if the transaction already ended (the request is then only
 * readable). Returns 0, ICAP_ENOMEM, or ICAP_ECANCELED when the server has
 * stopped running; on an error the reference stays yours (release it with
 * icap_request_unref() once no loop runs). */
typedef void (*icap_post_cb)(icap_request *req, int status, void *user);
ICAP_EXTERN int icap_request_post(icap_request *req, icap_post_cb cb, void *user);

/* Run work(user) on libuv's thread pool (blocking work allowed there, no
 * icap_request_* calls except icap_request_post), then done(req, status,
 * user) on the loop thread, status as for icap_request_post. The request is
 * referenced meanwhile. Loop thread only. Returns 0 or ICAP_ENOMEM. */
typedef void (*icap_work_cb)(void *user);
ICAP_EXTERN int icap_request_offload(icap_request *req, icap_work_cb work, icap_post_cb done,
                                     void *user);

/* --------------------------------------------------------------- TLS --- */
/* ICAP over TLS ("icaps://", OpenSSL 3). A TLS listener runs the same
 * services as a plain one; plain and TLS listeners may be mixed on one
 * server. No OpenSSL type appears here. */

typedef struct icap_tls_config icap_tls_config;

/* Lowest protocol version accepted (the values are the wire versions). */
typedef enum icap_tls_version { ICAP_TLS_1_2 = 0x0303, ICAP_TLS_1_3 = 0x0304 } icap_tls_version;

/* Client certificate verification. OPTIONAL asks for a certificate and
 * refuses one that does not verify, but lets a client without one in;
 * REQUIRED also refuses a client without one. */
typedef enum icap_tls_verify {
  ICAP_TLS_VERIFY_NONE = 0,
  ICAP_TLS_VERIFY_OPTIONAL = 1,
  ICAP_TLS_VERIFY_REQUIRED = 2
} icap_tls_verify;

/* Create a TLS configuration (minimum TLS 1.2, OpenSSL's default ciphers,
 * no client certificates). `*out` is yours: free it with
 * icap_tls_config_free(). Returns 0, ICAP_EINVAL or ICAP_ENOMEM. */
ICAP_EXTERN int icap_tls_config_new(icap_tls_config **out);
/* Release your handle. A server that listens with it keeps its own
 * reference, so the configuration lives on until that server is freed
 * too. NULL is a no-op. */
ICAP_EXTERN void icap_tls_config_free(icap_tls_config *cfg);

/* The setters copy their strings and are thread-safe. They take effect when
 * the files are read: at icap_server_listen_tls() (the first time) and at
 * each icap_tls_config_reload(). Each returns 0, ICAP_EINVAL or
 * ICAP_ENOMEM. */

/* PEM file with the server certificate first, then its intermediates. */
ICAP_EXTERN int icap_tls_config_set_cert_file(icap_tls_config *cfg, const char *path);
/* PEM private key; `passphrase` (may be NULL) decrypts an encrypted key. */
ICAP_EXTERN int icap_tls_config_set_key_file(icap_tls_config *cfg, const char *path,
                                             const char *passphrase);
/* Minimum protocol version [ICAP_TLS_1_2]. */
ICAP_EXTERN int icap_tls_config_set_min_version(icap_tls_config *cfg, icap_tls_version v);
/* OpenSSL cipher list for TLS 1.2 ("ECDHE+AESGCM") and TLS 1.3 suites
 * ("TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"); NULL keeps
 * OpenSSL's default for that version. */
ICAP_EXTERN int icap_tls_config_set_ciphers(icap_tls_config *cfg, const char *tls12_ciphers,
                                            const char *tls13_suites);
/* Client certificates: `mode` and the trusted CAs, a PEM file and/or a
 * directory prepared with `openssl rehash` (at least one unless mode is
 * NONE). A refused certificate (unknown CA, expired, ...) fails that
 * handshake, and the log says why. */
ICAP_EXTERN int icap_tls_config_set_verify_client(icap_tls_config *cfg, icap_tls_verify mode,
                                                  const char *ca_file, const char *ca_dir);

/* Re-read the certificate, key and CA files with the current settings.
 * Thread-safe; may be called while a server runs (not from a signal
 * handler). On success new handshakes use the new pair at once and open
 * connections keep the one they started with. On failure nothing changes
 * and icap_tls_config_error() says why. Returns 0 or ICAP_EINVAL. */
ICAP_EXTERN int icap_tls_config_reload(icap_tls_config *cfg);

/* Why the last load or reload failed ("" after a success), copied into
 * `buf` (NUL-terminated, truncated to `len`). Thread-safe. Returns the
 * length of the whole message. */
ICAP_EXTERN size_t icap_tls_config_error(icap_tls_config *cfg, char *buf, size_t len);

/* Like icap_server_listen(), for TLS: loads `cfg`'s files now unless they
 * were loaded before, and keeps a reference to `cfg` (release yours when you
 * like; reload through it while the server runs). Returns what
 * icap_server_listen() returns, and ICAP_EINVAL when the files cannot be
 * loaded (icap_tls_config_error() says why). The port counts in
 * icap_server_port()'s order like any other. */
ICAP_EXTERN int icap_server_listen_tls(icap_server *srv, const char *host, int port,
                                       icap_tls_config *cfg);

/* The transaction's connection: 1 if it is TLS, else 0. */
ICAP_EXTERN int icap_request_is_tls(const icap_request *req);
/* Its protocol version ("TLSv1.3"), cipher suite name, and the subject of
 * the client certificate it presented and that verified, as an RFC 2253
 * string ("CN=proxy1,O=Example"); "" when not TLS or no such certificate.
 * Borrowed until the request's done callback has run. Loop thread only. */
ICAP_EXTERN const char *icap_request_tls_version(const icap_request *req);
ICAP_EXTERN const char *icap_request_tls_cipher(const icap_request *req);
ICAP_EXTERN const char *icap_request_tls_peer_subject(const icap_request *req);

#ifdef __cplusplus
}
#endif

#endif /* ICAP_ICAP_H */
