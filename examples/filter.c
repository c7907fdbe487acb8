/*
 * icap-filter: the README's C example, kept here verbatim so that it is
 * built and tested (tests/examples/filter_test.py).
 *
 * RESPMOD service "filter": a response to a request for the host
 * "ads.example" is replaced by a 403 page; everything else passes
 * unchanged (204 when allowed, otherwise a streamed echo).
 * Listens on 127.0.0.1:1344, or on the port given as the only argument.
 */
#include <icap/icap.h>
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

int main(int argc, char **argv) {
  int port = argc > 1 ? atoi(argv[1]) : 1344;
  icap_server *srv;
  icap_service *svc;
  icap_server_new(&srv);
  icap_server_add_service(srv, "filter", &svc); /* icap://host:1344/filter */
  icap_service_set_handler(svc, ICAP_METHOD_RESPMOD, respmod, NULL);
  if (icap_server_listen(srv, "127.0.0.1", port) != 0) return 1;
  icap_server_run(srv); /* until icap_server_stop() */
  icap_server_free(srv);
  return 0;
}
