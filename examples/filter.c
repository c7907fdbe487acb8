// SPDX-License-Identifier: MIT
/*
 * icap-filter: the README's C example, kept here verbatim so that it is
 * built and tested (tests/examples/filter_test.py, tests/examples/cli_test.py).
 *
 * RESPMOD service "filter": a response to a request for the host
 * "ads.example" is replaced by a 403 page; everything else passes
 * unchanged (204 when allowed, otherwise a streamed echo).
 * Listens on 127.0.0.1:1344, or on the port given with --port.
 */
#include <getopt.h>
#include <icap/icap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* RESPMOD: block responses of the site "ads.example", pass the rest. */
static int respmod(icap_request *req, void *user) {
  const char *host = icap_request_header(req, ICAP_HEADERS_HTTP_REQ, "Host", 0);
  if (host && strcmp(host, "ads.example") == 0) {
    static const char page[] = "<h1>Blocked</h1>\n";
    icap_request_set_http_status(req, "HTTP/1.1 403 Forbidden");
    icap_request_add_http_header(req, "Content-Type", "text/html");
    icap_request_add_http_header(req, "Content-Length", "17");
    icap_request_send_headers(req, 1);
    icap_request_send_chunk(req, page, sizeof page - 1);
    return icap_request_end(req);
  }
  return icap_request_no_adaptation(req); /* 204, or a streamed echo */
}

/* "--port N": digits only, 0 to 65535 (0: the kernel picks a free port). */
static int parse_port(const char *s) {
  char *end;
  long port = strtol(s, &end, 10);
  if (*s < '0' || *s > '9' || *end != '\0' || port > 65535) return -1;
  return (int)port;
}

int main(int argc, char **argv) {
  static const struct option options[] = {
      {"port", required_argument, NULL, 'p'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
  int port = 1344, opt;
  while ((opt = getopt_long(argc, argv, "p:h", options, NULL)) != -1) {
    if (opt == 'p' && (port = parse_port(optarg)) >= 0) continue;
    if (opt == 'p') fprintf(stderr, "%s: --port '%s': not a port number\n", argv[0], optarg);
    fprintf(opt == 'h' ? stdout : stderr, "usage: %s [--port N]\n", argv[0]);
    return opt == 'h' ? 0 : 2;
  }
  if (optind < argc) {
    fprintf(stderr, "usage: %s [--port N]\n", argv[0]);
    return 2;
  }

  icap_server *srv = NULL;
  icap_service *svc;
  int rc = icap_server_new(&srv);
  if (rc == 0) rc = icap_server_add_service(srv, "filter", &svc); /* icap://host:1344/filter */
  if (rc == 0) rc = icap_service_set_handler(svc, ICAP_METHOD_RESPMOD, respmod, NULL);
  if (rc == 0) rc = icap_server_listen(srv, "127.0.0.1", port);
  if (rc == 0) rc = icap_server_run(srv); /* until icap_server_stop() */
  if (rc != 0) fprintf(stderr, "%s: port %d: %s\n", argv[0], port, icap_strerror(rc));
  icap_server_free(srv);
  return rc == 0 ? 0 : 1;
}
