// SPDX-License-Identifier: MIT
/*
 * scanner.cpp - a RESPMOD "virus scanner" that looks for the EICAR test
 * string, written as a C++20 coroutine that scans on the thread pool.
 *
 * Shows:
 *  - deciding during the preview: content types given with --exempt
 *    (prefixes such as image/) get 204 at once, before any body is sent;
 *  - `co_await req.offload(...)`: the search runs on libuv's thread pool
 *    (where a real scanner would block), and the coroutine resumes on the
 *    loop thread with the result;
 *  - a search that finds the signature across chunk boundaries (it carries
 *    the last 67 bytes of each piece over to the next);
 *  - streaming only data that was scanned clean.
 *
 * The verdict and the answer: a body of up to --hold bytes (default 32 KiB)
 * is read and scanned completely before answering, so an infected one is
 * replaced by a 403 page, and a clean one gets 204 (when the client allows
 * it) or is sent back. A longer body cannot be held whole: Squid stops
 * sending the body after about 64 KiB until the ICAP answer starts. So
 * after --hold bytes scanned clean the scanner starts a 200 answer with the
 * original head and streams each piece once it is scanned; if the signature
 * turns up after that, the transaction is aborted and the client gets a
 * cut-off response that never contains the complete signature.
 *
 *   icap-scanner --port 1344 --exempt image/ --exempt video/
 *   squid.conf: icap_service av respmod_precache icap://127.0.0.1:1344/scanner
 */
#include "example_common.hpp"

#include <icap/coro.hpp>

#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

// The EICAR anti-virus test file, in two halves so that this source file is
// not itself taken for a test virus.
static const std::string kEicar =
    std::string("X5O!P%@AP[4\\PZX54(P^)7CC)7}$") + "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

struct Config {
  std::vector<std::string> exempt;  // Content-Type prefixes
  std::size_t hold = 32u << 10;     // scanned before any answer starts
  std::size_t batch = 64u << 10;    // bytes scanned per offload, at most
};

/* Finds kEicar in a stream given piece by piece; used on the thread pool,
 * by one transaction at a time. */
class Signature {
 public:
  bool feed(std::string_view piece) {
    const std::size_t keep = kEicar.size() - 1;
    // A match across the boundary starts in the carried tail and ends in
    // the first len-1 bytes of this piece.
    std::string seam = tail_;
    seam.append(piece.substr(0, keep));
    bool hit =
        seam.find(kEicar) != std::string::npos || piece.find(kEicar) != std::string_view::npos;
    // Carry the stream's last len-1 bytes (they may span short pieces).
    if (piece.size() >= keep) {
      tail_.assign(piece.substr(piece.size() - keep));
    } else {
      tail_.append(piece);
      if (tail_.size() > keep) tail_.erase(0, tail_.size() - keep);
    }
    return hit;
  }

 private:
  std::string tail_;
};

static bool exempt(const Config& cfg, const icap::Request& req) {
  std::string type = example::lower(req.enc_res_header("Content-Type").value_or(""));
  for (const auto& prefix : cfg.exempt)
    if (type.rfind(prefix, 0) == 0) return true;
  return false;
}

static std::string page(const char* what) {
  return std::string(
             "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
             "<title>403 Forbidden</title></head>\n<body><h1>") +
         what +
         "</h1>\n<p>The libicap scanner example blocked this "
         "response.</p></body></html>\n";
}

static icap::Task scan(icap::Request req, const Config& cfg) {
  if (!req.has_body() || exempt(cfg, req)) {
    req.no_adaptation_required();  // in the preview: 204 before the body
    co_return;
  }

  Signature sig;
  std::vector<std::string> unscanned;  // read, not scanned yet
  std::vector<std::string> clean;      // scanned, not sent yet
  std::size_t total = 0, unscanned_bytes = 0;
  bool answering = false;  // the 200 answer has started

  while (true) {
    icap::Chunk c = co_await req.read_chunk();  // after the preview, the
    if (c.preview_end()) continue;              // next read sends 100
    const bool last = c.end();
    if (!c.empty()) {
      total += c.size();
      unscanned_bytes += c.size();
      unscanned.push_back(std::move(c).take());
    }
    const bool commit = !answering && !last && total >= cfg.hold;
    if (!unscanned.empty() && (last || commit || answering || unscanned_bytes >= cfg.batch)) {
      // The coroutine is suspended while a pool thread reads `unscanned`
      // and `sig`, so nothing else touches them meanwhile.
      bool infected = co_await req.offload([&] {
        for (const auto& piece : unscanned)
          if (sig.feed(piece)) return true;
        return false;
      });
      if (infected) {
        req.log(ICAP_LOG_INFO, "EICAR found in " + std::string(req.enc_req().uri));
        if (!answering) {
          example::send_html_page(req, 403, "Forbidden", page("Virus found: EICAR test file"));
        } else {
          req.abort(ICAP_EHANDLER);  // cut the answer off; never deliver it
        }
        co_return;  // libicap discards (or closes on) the unread rest
      }
      for (auto& piece : unscanned) clean.push_back(std::move(piece));
      unscanned.clear();
      unscanned_bytes = 0;
    }
    if (commit) {  // too long to hold: answer now, stream the rest
      answering = true;
      req.copy_http_head();
      req.send_headers(true);
    }
    if (answering) {
      for (auto& piece : clean) req.send_chunk(std::move(piece));  // zero copy
      clean.clear();
      co_await example::writable(req);  // a slow client slows the reading
    }
    if (last) break;
  }

  if (answering) {
    req.end();
  } else if (req.allows(204)) {  // the client keeps its copy: send nothing
    req.no_adaptation_required();
  } else {
    req.copy_http_head();
    req.send_headers(true);
    for (auto& piece : clean) req.send_chunk(std::move(piece));
    req.end();
  }
}

int main(int argc, char** argv) {
  Config cfg;
  example::Args args = example::parse_args(
      argc, argv,
      "ICAP RESPMOD service 'scanner': blocks responses containing the EICAR "
      "test string;\n--exempt PREFIX skips Content-Types starting with it.",
      " [--exempt TYPE-PREFIX]... [--hold BYTES]",
      {{"--exempt", [&](const char* value) { cfg.exempt.push_back(example::lower(value)); }},
       {"--hold", [&](const char* value) {
          cfg.hold = example::number_option(argv[0], "--hold", value, 1u << 30);
        }}});

  return example::serve(args, "icap-scanner", [&](icap::Server& server) {
    server.service("scanner").preview(1024).respmod(
        [&cfg](icap::Request req) { return scan(req, cfg); });
  });
}
