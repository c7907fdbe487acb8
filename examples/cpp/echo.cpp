// SPDX-License-Identifier: MIT
/*
 * echo.cpp - the smallest libicap C++ service: pyicap's echo example.
 *
 * Shows: registering a service with lambdas, an OPTIONS handler that adds to
 * the generated OPTIONS answer, and no_adaptation_required() for REQMOD and
 * RESPMOD. libicap then answers 204 when the client allows it (Allow: 204
 * or during a preview) and otherwise echoes the message back unchanged,
 * streaming the body through without buffering it.
 *
 *   icap-cpp-echo --host 127.0.0.1 --port 1344 --workers 2
 *   squid.conf: icap_service echo_req reqmod_precache icap://127.0.0.1:1344/echo
 *               icap_service echo_resp respmod_precache icap://127.0.0.1:1344/echo
 */
#include "example_common.hpp"

int main(int argc, char** argv) {
  example::Args args = example::parse_args(
      argc, argv, "ICAP service 'echo': REQMOD and RESPMOD without adaptation.");

  return example::serve(args, "icap-cpp-echo", [](icap::Server& server) {
    server
        .service("echo")
        // OPTIONS is generated from the registration (Methods, ISTag, Preview,
        // Allow: 204, Transfer-Preview: * ...); a handler may add or override
        // headers before send_headers(), like pyicap's echo_OPTIONS.
        .options([](icap::Request& req) {
          req.set_icap_header("Service", "libicap C++ echo example");
          req.send_headers(false);
        })
        .reqmod([](icap::Request& req) { req.no_adaptation_required(); })
        .respmod([](icap::Request& req) { req.no_adaptation_required(); });
  });
}
