// SPDX-License-Identifier: MIT
/*
 * clamav.cpp - icap-clamav: an ICAP anti-virus service (RESPMOD for
 * downloads, REQMOD for uploads) that scans bodies with a real clamd.
 *
 *   icap-clamav --clamd unix:/run/clamav/clamd.ctl --port 1344
 *   squid.conf: icap_service av_resp respmod_precache icap://127.0.0.1:1344/avscan
 *
 * Each body is streamed to clamd's INSTREAM as it arrives, through the
 * ClamdClient I/O thread (clamd_client.hpp): no thread per scan, and the
 * handler, a C++20 coroutine, never blocks its loop.
 *
 * What the answer is (README.md in this directory has the details):
 *  - no body, a skipped type or extension, an object above --max-size with
 *    --oversize pass: 204 at once (in the preview);
 *  - a body of at most --hold bytes is held whole until clamd's verdict:
 *    clean -> 204 (in the preview when it fitted there, or with Allow: 204)
 *    or the body sent back; infected -> a 403 page;
 *  - a longer body: its first --hold bytes get a scan of their own (clamd
 *    answers only for a complete stream), infected -> 403 page; clean -> a
 *    200 answer starts and the body is released as it streams to clamd,
 *    except the last --hold bytes, which wait for the verdict on the whole
 *    body: clean -> released, infected -> the transaction is aborted, so the
 *    client never gets the complete object;
 *  - clamd unreachable, failing or slower than --scan-timeout: --fail-open
 *    treats the body as clean, the default (fail-closed) answers a 403 page
 *    saying the scan failed (or aborts an answer already started).
 */
#include "clamd_client.hpp"
#include "scan_wait.hpp"
#include "../cpp/example_common.hpp"

#include <icap/coro.hpp>

#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr const char* kName = "icap-clamav";
// Bytes queued for clamd above which the body is read no further until
// clamd has taken them down to the low-water mark.
constexpr std::size_t kHighWater = 1u << 20;
constexpr std::size_t kLowWater = 256u << 10;

struct Config {
  std::string clamd = "unix:/run/clamav/clamd.ctl";  // Debian's LocalSocket
  std::string service = "avscan";
  bool fail_open = false;
  std::uint64_t max_size = 25u << 20;  // clamd's default StreamMaxLength
  bool oversize_block = false;
  std::uint64_t scan_timeout_ms = 20000;
  std::vector<std::string> skip_types;  // Content-Type prefixes, lower case
  std::vector<std::string> skip_exts;   // without the dot, lower case
  std::string istag;                    // fixed; empty: from clamd's VERSION
  std::uint64_t istag_refresh_ms = 60000;
  std::size_t hold = 32u << 10;
  std::size_t pool = 32;
};

struct Stats {
  std::atomic<std::uint64_t> scans{0}, clean{0}, infected{0}, errors{0}, skipped{0}, oversize{0},
      latency_us{0}, latency_max_us{0};

  void latency(std::chrono::steady_clock::time_point since) {
    auto us = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                             std::chrono::steady_clock::now() - since)
                                             .count());
    latency_us += us;
    std::uint64_t m = latency_max_us.load();
    while (us > m && !latency_max_us.compare_exchange_weak(m, us)) {
    }
  }
};

struct Service {
  Config cfg;
  clamav::ClamdClient* clamd = nullptr;
  Stats stats;
};

/* A log line from the I/O thread, in the format of example::setup's. */
void note(const char* level, const std::string& msg) {
  std::fprintf(stderr, "%s: %s: %s\n", kName, level, msg.c_str());
}

/* ------------------------------------------------------------ the ISTag */

std::uint32_t fnv1a(std::string_view s, std::uint32_t h = 2166136261u) {
  for (unsigned char c : s) h = (h ^ c) * 16777619u;
  return h;
}

/* Everything of the configuration that changes verdicts. */
std::string config_text(const Config& c) {
  std::string s =
      std::to_string(c.max_size) + (c.oversize_block ? "b" : "p") + (c.fail_open ? "o" : "c");
  for (const auto& t : c.skip_types) s += "|t" + t;
  for (const auto& e : c.skip_exts) s += "|e" + e;
  return s;
}

/* "ClamAV 1.0.7/27150/Tue Dec  3 09:30:27 2026" -> "AV-27150-1a2b3c4d": the
 * database version when clamd has one (main/daily .cvd files; "nodb" when
 * it has only local signatures, "unknown" before clamd first answered),
 * and a hash of the whole reply and the configuration, so that any change
 * of engine, database or options gives a new tag (at most 30 characters). */
std::string make_istag(const std::string& version, const Config& cfg) {
  std::string db = version.empty() ? "unknown" : "nodb";
  std::size_t a = version.find('/');
  if (a != std::string::npos) {
    std::size_t b = version.find('/', a + 1);
    std::string v = version.substr(a + 1, b == std::string::npos ? b : b - a - 1);
    bool digits = !v.empty() && v.size() <= 12;
    for (char ch : v) digits = digits && ch >= '0' && ch <= '9';
    if (digits) db = v;
  }
  char hash[9];
  std::snprintf(hash, sizeof hash, "%08" PRIx32, fnv1a(config_text(cfg), fnv1a(version)));
  return "AV-" + db + "-" + hash;
}

/* --------------------------------------------------------- the decisions */

std::string lower(std::string_view s) { return example::lower(s); }

/* The extension of the URL's last path segment, lower case ("" if none). */
std::string url_extension(std::string_view uri) {
  std::size_t scheme = uri.find("://");
  if (scheme != std::string_view::npos) {
    std::size_t path = uri.find('/', scheme + 3);
    uri = path == std::string_view::npos ? std::string_view() : uri.substr(path);
  }
  uri = uri.substr(0, uri.find_first_of("?#"));
  std::size_t slash = uri.rfind('/');
  std::string_view last = slash == std::string_view::npos ? uri : uri.substr(slash + 1);
  std::size_t dot = last.rfind('.');
  if (dot == std::string_view::npos || dot + 1 == last.size()) return "";
  return lower(last.substr(dot + 1));
}

bool skipped(const Config& cfg, const std::string& type, std::string_view uri) {
  for (const auto& p : cfg.skip_types)
    if (type.rfind(p, 0) == 0) return true;
  if (!cfg.skip_exts.empty()) {
    std::string ext = url_extension(uri);
    for (const auto& e : cfg.skip_exts)
      if (!ext.empty() && ext == e) return true;
  }
  return false;
}

std::optional<std::uint64_t> parse_size(std::optional<std::string_view> v) {
  if (!v || v->empty() || v->size() > 19) return std::nullopt;
  std::uint64_t n = 0;
  for (char c : *v) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return n;
}

/* A signature name as header text: clamd's names are plain ASCII, but a
 * header value must never carry CR, LF or the field's own ';'. */
std::string threat_text(std::string_view name) {
  std::string out;
  for (char c : name) out += (c >= 0x21 && c <= 0x7e && c != ';') ? c : '_';
  return out.empty() ? std::string("unknown") : out;
}

std::string page(const std::string& title, const std::string& text) {
  return "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>" + title +
         "</title></head>\n<body><h1>" + title + "</h1>\n<p>" + text + "</p></body></html>\n";
}

void block_infected(icap::Request& req, const std::string& threat) {
  std::string name = threat_text(threat);
  req.set_icap_header("X-Infection-Found", "Type=0; Resolution=2; Threat=" + name + ";");
  std::string what = req.method() == ICAP_METHOD_REQMOD ? "upload" : "download";
  example::send_html_page(
      req, 403, "Forbidden",
      page("Virus found", "The " + what + " of " + example::html_escape(req.enc_req().uri) +
                              " was blocked: it contains <b>" + example::html_escape(name) +
                              "</b>."));
}

void block_failed(icap::Request& req, const std::string& why) {
  example::send_html_page(
      req, 403, "Forbidden",
      page("Virus scan failed", "This object could not be scanned for viruses (" +
                                    example::html_escape(why) + ") and was blocked."));
}

void block_oversize(icap::Request& req, std::uint64_t max) {
  example::send_html_page(
      req, 403, "Forbidden",
      page("Too large to scan", "This object is larger than the " + std::to_string(max) +
                                    " bytes the virus scanner accepts, and was blocked."));
}

/* Cancels the scan when the handler leaves it before the verdict (the
 * client went away, an error, a block decision on the first bytes). */
struct ScanGuard {
  std::shared_ptr<clamav::Scan> scan;
  ~ScanGuard() {
    if (scan && !scan->done()) scan->cancel();
  }
};

bool failed(const clamav::Verdict& v) {
  return v.outcome == clamav::Outcome::Error || v.outcome == clamav::Outcome::Timeout;
}

/* ------------------------------------------------------------ the handler */

icap::Task handle(icap::Request req, Service& svc) {
  const Config& cfg = svc.cfg;
  if (!req.has_body()) {
    req.no_adaptation_required();
    co_return;
  }
  const bool reqmod = req.method() == ICAP_METHOD_REQMOD;
  auto header = [&](const char* name) {
    return reqmod ? req.enc_req_header(name) : req.enc_res_header(name);
  };
  if (skipped(cfg, lower(header("Content-Type").value_or("")), req.enc_req().uri)) {
    svc.stats.skipped++;
    req.no_adaptation_required();  // in the preview: 204 before the body
    co_return;
  }
  if (auto length = parse_size(header("Content-Length")); length && *length > cfg.max_size) {
    svc.stats.oversize++;
    if (cfg.oversize_block)
      block_oversize(req, cfg.max_size);
    else
      req.no_adaptation_required();
    co_return;
  }

  svc.stats.scans++;
  const auto t0 = std::chrono::steady_clock::now();
  ScanGuard guard{svc.clamd->scan()};  // connects while the body arrives
  clamav::Scan& scan = *guard.scan;
  std::deque<std::string> held;  // read, not sent to the client yet
  std::size_t held_bytes = 0;
  std::uint64_t total = 0;
  bool scanning = true;    // false: pass the rest unscanned (fail-open, oversize)
  bool answering = false;  // the 200 answer has started
  bool whole_preview = false;

  auto start_answer = [&] {
    req.copy_http_head();
    req.send_headers(true);
    answering = true;
  };
  // Send held pieces to the client, keeping at least `keep` bytes back.
  auto release = [&](std::size_t keep) {
    while (!held.empty() && held_bytes - held.front().size() >= keep) {
      held_bytes -= held.front().size();
      req.send_chunk(std::move(held.front()));  // zero copy
      held.pop_front();
    }
  };
  // clamd could not scan: fail-open passes the body, fail-closed blocks it.
  // Returns true when the transaction is over.
  auto scan_failed = [&](const clamav::Verdict& v) {
    svc.stats.errors++;
    req.log(ICAP_LOG_WARN, "scan of " + std::string(req.enc_req().uri) + " failed (" + v.detail +
                               "); " +
                               (cfg.fail_open ? "passing it (--fail-open)" : "blocking it"));
    scan.cancel();
    scanning = false;
    if (cfg.fail_open) return false;
    if (answering)
      req.abort(ICAP_EHANDLER);
    else
      block_failed(req, v.detail);
    return true;
  };

  while (true) {
    icap::Chunk c = co_await req.read_chunk();  // after the preview, the
    if (c.preview_end()) continue;              // next read sends 100
    const bool last = c.end();
    if (last) whole_preview = c.ieof();
    if (!c.empty()) {
      total += c.size();
      if (scanning && total > cfg.max_size) {  // no Content-Length said so
        svc.stats.oversize++;
        scan.cancel();
        scanning = false;
        if (cfg.oversize_block) {
          if (answering)
            req.abort(ICAP_EHANDLER);
          else
            block_oversize(req, cfg.max_size);
          co_return;
        }
      }
      if (scanning) scan.write(std::string(c.data()));
      held_bytes += c.size();
      held.push_back(std::move(c).take());
    }
    if (scanning && scan.pending() > kHighWater)
      co_await clamav::ScanWait(req, scan, true, kLowWater);  // clamd is slower
    if (scanning && scan.done()) {  // a verdict before the end is an error
      if (scan_failed(scan.verdict())) co_return;
    }
    if (!answering && !last && held_bytes > cfg.hold) {
      if (scanning) {
        // clamd answers only for a complete stream: scan the first bytes
        // on their own, so that what is found there gets a block page.
        ScanGuard first{svc.clamd->scan()};
        for (const auto& piece : held) first.scan->write(piece);
        first.scan->finish();
        co_await clamav::ScanWait(req, *first.scan);
        clamav::Verdict v = first.scan->verdict();
        if (v.outcome == clamav::Outcome::Infected) {
          svc.stats.infected++;
          svc.stats.latency(t0);
          req.log(ICAP_LOG_INFO, v.detail + " found in " + std::string(req.enc_req().uri));
          block_infected(req, v.detail);
          co_return;
        }
        if (failed(v) && scan_failed(v)) co_return;
      }
      start_answer();
    }
    if (answering) release(scanning ? cfg.hold : 0);
    if (last) break;
  }

  clamav::Verdict v{clamav::Outcome::Clean, ""};
  if (scanning) {
    scan.finish();
    co_await clamav::ScanWait(req, scan);
    v = scan.verdict();
    svc.stats.latency(t0);
    if (v.outcome == clamav::Outcome::Infected) {
      svc.stats.infected++;
      req.log(ICAP_LOG_INFO, v.detail + " found in " + std::string(req.enc_req().uri) +
                                 (answering ? " after the answer started: aborting" : ""));
      if (answering)
        req.abort(ICAP_EHANDLER);  // the client never gets the whole object
      else
        block_infected(req, v.detail);
      co_return;
    }
    if (failed(v) && scan_failed(v)) co_return;
    if (v.outcome == clamav::Outcome::Clean) svc.stats.clean++;
  }
  if (answering) {
    release(0);
    req.end();
  } else if (req.allows(204) || whole_preview) {
    req.no_adaptation_required();  // the client keeps its copy
  } else {
    start_answer();
    release(0);
    req.end();
  }
}

/* ---------------------------------------------------------------- main */

int serve(const example::Args& args, Service& svc, const clamav::Address& address) {
  Config& cfg = svc.cfg;
  clamav::ClamdClient clamd({address, cfg.scan_timeout_ms, cfg.pool, 10000});
  svc.clamd = &clamd;
  clamd.start();

  icap::Server server;
  example::setup(server, args, kName);
  // libicap fails a handler that does not answer for this long while it is
  // not waiting for the client; a clamd wait (at most --scan-timeout each,
  // two for a long body) must end first, so the fail-open/-closed choice is
  // ours, not a 500.
  server.limit(ICAP_LIMIT_HANDLER_TIMEOUT_MS,
               std::max<std::uint64_t>(30000, 3 * cfg.scan_timeout_ms + 5000));

  icap::Service& service = server.service(cfg.service).preview(1024);
  if (!cfg.skip_exts.empty()) {
    // Transfer-Ignore makes Squid skip these files without asking.
    std::string list;
    for (const auto& e : cfg.skip_exts) list += (list.empty() ? "" : ", ") + e;
    service.transfer("*", list);
  }
  auto handler = [&svc](icap::Request req) { return handle(req, svc); };
  service.reqmod(handler).respmod(handler);

  icap_service* native = service.native_handle();
  if (!cfg.istag.empty()) {
    service.istag(cfg.istag);
  } else {
    service.istag(make_istag("", cfg));
    auto last = std::make_shared<std::string>();
    clamd.version(
        [native, last, &cfg](bool ok, const std::string& text) {
          if (!ok) {
            note("warn", "clamd VERSION failed: " + text);
            return;
          }
          std::string tag = make_istag(text, cfg);
          if (tag == *last) return;
          *last = tag;
          icap_service_set_istag(native, tag.c_str());  // thread-safe
          note("info", "clamd is " + text + "; ISTag " + tag);
        },
        cfg.istag_refresh_ms);
  }

  int rc = example::run(server, kName);
  clamd.stop();
  const Stats& s = svc.stats;
  std::uint64_t done = s.clean + s.infected + s.errors;
  std::fprintf(stderr,
               "%s: scans %" PRIu64 ", clean %" PRIu64 ", infected %" PRIu64
               ", clamd errors %" PRIu64 ", skipped %" PRIu64 ", oversize %" PRIu64
               ", scan latency avg %.1f ms max %.1f ms\n",
               kName, s.scans.load(), s.clean.load(), s.infected.load(), s.errors.load(),
               s.skipped.load(), s.oversize.load(),
               done ? static_cast<double>(s.latency_us) / 1000.0 / static_cast<double>(done) : 0.0,
               static_cast<double>(s.latency_max_us) / 1000.0);
  return rc;
}

bool parse_number(const char* v, std::uint64_t& out) {
  char* end = nullptr;
  if (!v || !*v || *v == '-') return false;
  out = std::strtoull(v, &end, 10);
  return end && *end == '\0';
}

}  // namespace

int main(int argc, char** argv) {
  Service svc;
  Config& cfg = svc.cfg;
  bool bad = false;
  example::Args args = example::parse_args(
      argc, argv,
      "ICAP anti-virus service (REQMOD and RESPMOD) scanning with clamd.\n"
      "  --clamd unix:PATH|HOST:PORT  clamd's socket [unix:/run/clamav/clamd.ctl]\n"
      "  --service NAME               service name [avscan]\n"
      "  --fail-open                  pass bodies clamd could not scan [block them]\n"
      "  --max-size BYTES             largest body scanned [26214400]\n"
      "  --oversize pass|block        what happens to larger ones [pass]\n"
      "  --scan-timeout MS            longest wait on clamd [20000]\n"
      "  --skip-type PREFIX           Content-Type not scanned (repeatable)\n"
      "  --skip-ext EXT               URL extension not scanned (repeatable)\n"
      "  --istag TAG                  fixed ISTag [from clamd's VERSION]\n"
      "  --istag-refresh MS           how often VERSION is asked [60000]\n"
      "  --hold BYTES                 held before answering / withheld until the verdict "
      "[32768]\n"
      "  --pool N                     idle clamd connections kept [32]",
      " [--clamd ADDR] [--service NAME] [--fail-open] [--max-size N] [--oversize pass|block]\n"
      "       [--scan-timeout MS] [--skip-type PREFIX]... [--skip-ext EXT]... [--istag TAG]",
      [&](std::string_view opt, const char* value) {
        std::uint64_t n = 0;
        if (opt == "--clamd") {
          cfg.clamd = value;
        } else if (opt == "--service") {
          cfg.service = value;
        } else if (opt == "--fail-open") {
          cfg.fail_open = true;
        } else if (opt == "--fail-closed") {
          cfg.fail_open = false;
        } else if (opt == "--max-size") {
          bad |= !parse_number(value, cfg.max_size);
        } else if (opt == "--oversize") {
          std::string_view v = value;
          bad |= v != "pass" && v != "block";
          cfg.oversize_block = v == "block";
        } else if (opt == "--scan-timeout") {
          bad |= !parse_number(value, cfg.scan_timeout_ms) || cfg.scan_timeout_ms == 0;
        } else if (opt == "--skip-type") {
          cfg.skip_types.push_back(lower(value));
        } else if (opt == "--skip-ext") {
          std::string e = lower(value);
          if (!e.empty() && e[0] == '.') e.erase(0, 1);
          cfg.skip_exts.push_back(e);
        } else if (opt == "--istag") {
          cfg.istag = value;
        } else if (opt == "--istag-refresh") {
          bad |= !parse_number(value, cfg.istag_refresh_ms) || cfg.istag_refresh_ms == 0;
        } else if (opt == "--hold") {
          bad |= !parse_number(value, n) || n == 0;
          cfg.hold = static_cast<std::size_t>(n);
        } else if (opt == "--pool") {
          bad |= !parse_number(value, n);
          cfg.pool = static_cast<std::size_t>(n);
        } else {
          return false;
        }
        return true;
      },
      {"--clamd", "--service", "--max-size", "--oversize", "--scan-timeout", "--skip-type",
       "--skip-ext", "--istag", "--istag-refresh", "--hold", "--pool"},
      {"--fail-open", "--fail-closed"});
  if (bad) {
    std::fprintf(stderr, "%s: a numeric option has a bad value (see --help)\n", kName);
    return 2;
  }
  std::string error;
  std::optional<clamav::Address> address = clamav::Address::parse(cfg.clamd, error);
  if (!address) {
    std::fprintf(stderr, "%s: %s\n", kName, error.c_str());
    return 2;
  }
  return example::guarded(kName, [&] { return serve(args, svc, *address); });
}
