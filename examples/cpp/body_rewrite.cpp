// SPDX-License-Identifier: MIT
/*
 * body_rewrite.cpp - a RESPMOD service that replaces a word in HTML pages
 * while they stream through, written as a C++20 coroutine.
 *
 * Shows:
 *  - a handler written as straight-line code with `co_await
 *    req.read_chunk()`, while the server stays event-driven;
 *  - deciding from the headers: only uncompressed text/html is rewritten,
 *    everything else gets no_adaptation_required() (a 204 in the preview);
 *  - a streaming replacement that also finds matches spanning two chunks:
 *    it holds back the last len(from)-1 bytes of each piece;
 *  - the body length changes, so Content-Length (and validators that
 *    describe the original bytes) are dropped from the copied head;
 *  - output backpressure: the next piece is read only while little is
 *    queued for the client (example::writable in example_common.hpp).
 *
 *   icap-body-rewrite --port 1344 --from Squid --to Calamari
 *   squid.conf: icap_service body respmod_precache icap://127.0.0.1:1344/body_rewrite
 */
#include "example_common.hpp"

#include <icap/coro.hpp>

#include <string>
#include <string_view>

/* Replaces `from` by `to` in a stream given piece by piece. */
class Replacer {
 public:
  Replacer(std::string from, std::string to) : from_(std::move(from)), to_(std::move(to)) {}

  /* The output that is final so far. */
  std::string feed(std::string_view in) {
    buf_.append(in);
    std::string out;
    std::size_t pos = 0;
    for (std::size_t hit; (hit = buf_.find(from_, pos)) != std::string::npos;
         pos = hit + from_.size()) {
      out.append(buf_, pos, hit - pos);
      out += to_;
    }
    // The last len(from)-1 bytes may begin a match that the next piece
    // completes: keep them.
    std::size_t keep = std::min(buf_.size() - pos, from_.size() - 1);
    out.append(buf_, pos, buf_.size() - pos - keep);
    buf_.erase(0, buf_.size() - keep);
    return out;
  }
  /* Whatever is held back, at the end of the body. */
  std::string finish() { return std::exchange(buf_, std::string()); }

 private:
  std::string from_, to_, buf_;
};

static bool is_plain_html(const icap::Request& req) {
  std::string type = example::lower(req.enc_res_header("Content-Type").value_or(""));
  std::string coding = example::lower(req.enc_res_header("Content-Encoding").value_or("identity"));
  return type.rfind("text/html", 0) == 0 && (coding == "identity" || coding.empty());
}

static icap::Task rewrite(icap::Request req, std::string from, std::string to) {
  if (!req.has_body() || !is_plain_html(req)) {
    req.no_adaptation_required();
    co_return;
  }
  Replacer replacer(std::move(from), std::move(to));
  bool body_done = false;

  // The answer may start only after the preview: read it (at most the
  // Preview size, usually 1 KiB) and send 100 Continue unless it was the
  // whole body.
  std::string preview;
  while (req.in_preview()) {
    icap::Chunk c = co_await req.read_chunk();
    if (c.end()) {  // "0; ieof"
      body_done = true;
      break;
    }
    if (c.preview_end()) {
      req.cont();
      break;
    }
    preview += c.data();
  }

  req.copy_http_head(
      {"Content-Length", "Content-MD5", "ETag", "Accept-Ranges", "Transfer-Encoding"});
  req.set_enc_header("X-Libicap", "body-rewritten");
  req.send_headers(true);
  if (std::string out = replacer.feed(preview); !out.empty())
    req.send_chunk(std::move(out));  // moved into libicap, no copy

  while (!body_done) {
    co_await example::writable(req);            // a slow client slows the reading
    icap::Chunk c = co_await req.read_chunk();  // throws if the client left
    if (c.end()) break;
    if (std::string out = replacer.feed(c.data()); !out.empty()) req.send_chunk(std::move(out));
  }
  if (std::string out = replacer.finish(); !out.empty()) req.send_chunk(std::move(out));
  req.end();
}

int main(int argc, char** argv) {
  std::string from = "libicap", to = "LIBICAP";
  example::Args args =
      example::parse_args(argc, argv,
                          "ICAP RESPMOD service 'body_rewrite': replaces FROM by TO in text/html "
                          "bodies (default: libicap -> LIBICAP).",
                          " [--from WORD] [--to WORD]",
                          {{"--from", [&](const char* value) { from = value; }},
                           {"--to", [&](const char* value) { to = value; }}});
  if (from.empty()) {
    std::fprintf(stderr, "icap-body-rewrite: --from must not be empty\n");
    return 2;
  }

  return example::serve(args, "icap-body-rewrite", [&](icap::Server& server) {
    server.service("body_rewrite").respmod([from, to](icap::Request req) {
      return rewrite(req, from, to);  // the Task runs on by itself
    });
  });
}
