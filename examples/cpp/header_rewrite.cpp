// SPDX-License-Identifier: MIT
/*
 * header_rewrite.cpp - a RESPMOD service that edits HTTP response headers
 * and streams the body through unchanged. Plain C++17 callbacks, no
 * coroutines (compare body_rewrite.cpp).
 *
 * Shows:
 *  - copy_http_head(skip list) + set_enc_header(): copy the origin's status
 *    line and headers minus a few (Server, X-Powered-By) and add
 *    "X-Libicap: rewritten";
 *  - the preview dance every modifying service needs: a final answer may
 *    not start before the preview is read and 100 Continue is sent;
 *  - streaming chunk by chunk with backpressure: the next piece of the body
 *    is read only after the previous one was handed to libicap, and not
 *    while the connection's write queue is above a high-water mark, so a
 *    slow ICAP client slows the reading down instead of growing memory.
 *
 *   icap-header-rewrite --port 1344 [--remove Via]...
 *   squid.conf: icap_service hdr respmod_precache icap://127.0.0.1:1344/header_rewrite
 */
#include "example_common.hpp"

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

// Read-only once the server runs.
static std::vector<std::string> g_remove;
// Stop reading while more than this is queued for the client.
static constexpr std::size_t kHighWater = 256 * 1024;

static void send_head(icap::Request& req, bool has_body) {
  req.copy_http_head(g_remove);
  req.set_enc_header("X-Libicap", "rewritten");
  req.send_headers(has_body);
}

/* Call next(req) once the write queue is below the high-water mark.
 * libicap has no "queue drained" event in its C API yet, so wait in short
 * naps on the thread pool; the loop thread itself never blocks. */
static void when_writable(icap::Request& req, void (*next)(icap::Request&)) {
  if (req.write_queue_size() <= kHighWater) {
    next(req);
    return;
  }
  req.offload([] { std::this_thread::sleep_for(std::chrono::milliseconds(2)); },
              [next](icap::Request& r) { when_writable(r, next); });
}

/* Copy the rest of the body, one piece per read. */
static void pump(icap::Request& req) {
  req.read_chunk([](icap::Request& r, const icap::ChunkView& c) {
    if (c.error()) return;                   // the client went away: nobody to answer
    if (!c.empty()) r.send_chunk(c.data());  // copied; c is only borrowed
    if (c.end()) {
      r.end();
      return;
    }
    when_writable(r, pump);
  });
}

/* Collect the preview, then answer and stream the rest. */
static void read_preview(icap::Request& req, std::shared_ptr<std::string> buf) {
  req.read_chunk([buf](icap::Request& r, const icap::ChunkView& c) {
    if (c.error()) return;
    buf->append(c.data());
    if (!c.end() && !c.preview_end()) {
      read_preview(r, buf);
      return;
    }
    if (c.preview_end()) r.cont();  // 100 Continue first, then our answer
    send_head(r, true);
    if (!buf->empty()) r.send_chunk(std::move(*buf));
    if (c.end())
      r.end();  // "0; ieof": the preview was the whole body
    else
      pump(r);
  });
}

/* The head alone, or the preview first, or the body at once. */
static void rewrite(icap::Request& req) {
  if (!req.has_body()) {  // 204/304 answers, HEAD, empty objects
    send_head(req, false);
  } else if (req.in_preview()) {
    read_preview(req, std::make_shared<std::string>());
  } else {
    send_head(req, true);
    pump(req);
  }
}

int main(int argc, char** argv) {
  example::Args args =
      example::parse_args(argc, argv,
                          "ICAP RESPMOD service 'header_rewrite': adds X-Libicap: rewritten and "
                          "removes headers\n(default: Server, X-Powered-By).",
                          " [--remove HEADER]...",
                          {{"--remove", [](const char* value) { g_remove.emplace_back(value); }}});
  if (g_remove.empty()) g_remove = {"Server", "X-Powered-By"};

  return example::serve(args, "icap-header-rewrite", [](icap::Server& server) {
    server.service("header_rewrite").respmod(rewrite);
  });
}
