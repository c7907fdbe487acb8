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
 *  - a verdict that needs the whole body: the body is kept (up to
 *    --max-size) and, if clean, answered with 204 when the client allows
 *    it, else streamed back chunk by chunk; if infected, a 403 page
 *    replaces the response.
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
    std::string("X5O!P%@AP[4\\PZX54(P^)7CC)7}$") +
    "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

struct Config {
  std::vector<std::string> exempt;       // Content-Type prefixes
  std::size_t max_size = 64u << 20;      // bytes kept for the verdict
  std::size_t batch = 64u << 10;         // bytes scanned per offload
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
    bool hit = seam.find(kEicar) != std::string::npos ||
               piece.find(kEicar) != std::string_view::npos;
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
  return std::string("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
                     "<title>403 Forbidden</title></head>\n<body><h1>") +
         what + "</h1>\n<p>The libicap scanner example blocked this "
                "response.</p></body></html>\n";
}

static icap::Task scan(icap::Request req, const Config& cfg) {
  if (!req.has_body() || exempt(cfg, req)) {
    req.no_adaptation_required();  // in the preview: 204 before the body
    co_return;
  }

  Signature sig;
  std::vector<std::string> body;  // kept pieces, sent back if clean
  std::vector<std::string> batch;  // read, not scanned yet
  std::size_t total = 0, batch_bytes = 0;
  bool infected = false;

  while (true) {
    icap::Chunk c = co_await req.read_chunk();  // after the preview, the
    if (c.preview_end()) continue;              // next read sends 100
    bool last = c.end();
    if (!c.empty()) {
      total += c.size();
      batch_bytes += c.size();
      batch.push_back(std::move(c).take());
    }
    if (total > cfg.max_size) {
      example::send_html_page(req, 403, "Forbidden", page("Too large to scan"));
      co_return;  // libicap discards or closes on the unread rest
    }
    if (batch_bytes >= cfg.batch || (last && !batch.empty())) {
      // The coroutine is suspended while the pool thread reads `batch` and
      // `sig`, so nothing else touches them meanwhile.
      infected = co_await req.offload([&] {
        for (const auto& piece : batch)
          if (sig.feed(piece)) return true;
        return false;
      });
      for (auto& piece : batch) body.push_back(std::move(piece));
      batch.clear();
      batch_bytes = 0;
      if (infected) break;
    }
    if (last) break;
  }

  if (infected) {
    req.log(ICAP_LOG_INFO, "EICAR found in " + std::string(req.enc_req().uri));
    example::send_html_page(req, 403, "Forbidden", page("Virus found: EICAR test file"));
    co_return;
  }
  if (req.allows(204)) {  // the client keeps its copy: send nothing back
    req.no_adaptation_required();
    co_return;
  }
  req.copy_http_head();
  req.send_headers(true);
  for (auto& piece : body) req.send_chunk(std::move(piece));  // zero copy
  req.end();
}

static int serve(const example::Args& args, const Config& cfg) {
  icap::Server server;
  example::setup(server, args, "icap-scanner");

  server.service("scanner")
      .preview(1024)
      .respmod([&cfg](icap::Request req) { return scan(req, cfg); });

  return example::run(server, "icap-scanner");
}

int main(int argc, char** argv) {
  Config cfg;
  example::Args args = example::parse_args(
      argc, argv,
      "ICAP RESPMOD service 'scanner': blocks responses containing the EICAR "
      "test string;\n--exempt PREFIX skips Content-Types starting with it.",
      " [--exempt TYPE-PREFIX]... [--max-size BYTES]",
      [&](std::string_view opt, const char* value) {
        if (opt == "--exempt")
          cfg.exempt.push_back(example::lower(value));
        else if (opt == "--max-size")
          cfg.max_size = std::strtoull(value, nullptr, 10);
        else
          return false;
        return true;
      },
      {"--exempt", "--max-size"});
  return example::guarded("icap-scanner", [&] { return serve(args, cfg); });
}
