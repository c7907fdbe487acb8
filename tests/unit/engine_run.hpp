// SPDX-License-Identifier: MIT
// One run of the engine over an input: a session with every test service,
// fed in pieces, its output taken like the server takes it, then ended (EOF,
// timeout, or nothing), and summarised in a form that must not depend on how
// the input was split.
#ifndef ICAP_TESTS_UNIT_ENGINE_RUN_HPP
#define ICAP_TESTS_UNIT_ENGINE_RUN_HPP

#include <deque>
#include <string>
#include <vector>

#include "engine_services.hpp"
#include "harness.hpp"

namespace icaptest {

enum class End { kNone, kEof, kTimeout };

struct EngineRun {
  Limits limits;
  ServiceTable services;
  Ctx ctx;
  std::unique_ptr<EngineDriver> d;
  bool closing = false, dead = false;
  Session::Wait wait = Session::Wait::kNone;

  EngineRun(const std::vector<std::pair<icap_limit, uint64_t>> &lims, bool draining) {
    for (auto &l : lims) limits.v[l.first] = l.second;
    add_services(services, &ctx);
    d = std::make_unique<EngineDriver>(&services, &limits);
    d->draining = draining;
  }
  ~EngineRun() { close(); }

  Session &s() { return d->session(); }
  // Everything the session wrote.
  const std::string &out() const { return d->wire; }

  // Takes output and resumes paused push readers until nothing moves.
  void pump() {
    for (int guard = 0; guard < 10000000; guard++) {
      d->drain();
      if (ctx.paused.empty()) break;
      icap_request *r = ctx.paused.front();
      ctx.paused.erase(ctx.paused.begin());
      icap_request_resume(r);
      icap_request_unref(r);
    }
    d->drain();
  }

  void feed(std::string_view in, const std::vector<size_t> &cuts) {
    size_t prev = 0;
    for (size_t c : cuts) {
      if (c <= prev || c >= in.size()) continue;
      d->feed(in.data() + prev, c - prev);
      pump();
      prev = c;
    }
    if (prev < in.size()) d->feed(in.data() + prev, in.size() - prev);
    pump();
  }

  void feed_pieces(std::string_view in, size_t piece) {
    for (size_t i = 0; i < in.size(); i += piece) {
      d->feed(in.data() + i, std::min(piece, in.size() - i));
      pump();
    }
  }

  void finish(End e) {
    if (e == End::kEof) s().eof();
    if (e == End::kTimeout && s().wait() != Session::Wait::kNone) s().timed_out(s().wait());
    pump();
    // Deferred answers come after all input arrived.
    for (int guard = 0; guard < 1000 && !ctx.deferred.empty(); guard++) {
      icap_request *r = ctx.deferred.front();
      ctx.deferred.erase(ctx.deferred.begin());
      ctx.ev("late:na=" + std::to_string(icap_request_no_adaptation(r)));
      icap_request_unref(r);
      pump();
    }
    for (int guard = 0; guard < 1000 && !ctx.deferred_abort.empty(); guard++) {
      icap_request *r = ctx.deferred_abort.front();
      ctx.deferred_abort.erase(ctx.deferred_abort.begin());
      ctx.ev("late:abort=" + std::to_string(icap_request_abort(r, ICAP_EIO)));
      icap_request_unref(r);
      pump();
    }
    closing = s().closing();
    dead = s().dead();
    wait = s().wait();
    close();
  }

  // Destroys the session (ending a pending transaction with ECONNRESET,
  // which shows in the trace), then drops the test's references.
  void close() {
    if (!d->open()) return;
    d->close();
    for (icap_request *r : ctx.paused) icap_request_unref(r);
    for (icap_request *r : ctx.deferred) icap_request_unref(r);
    for (icap_request *r : ctx.deferred_abort) icap_request_unref(r);
    ctx.deferred_abort.clear();
    ctx.paused.clear();
    ctx.deferred.clear();
  }
};

struct Parsed {
  bool ok = false;
  std::string err;
  std::vector<Resp> resps;
  size_t rest = 0;
  std::string partial_start;  // status line of an incomplete last response
};

inline Parsed parse_output(const std::string &out) {
  Parsed p;
  p.ok = parse_responses(out, p.resps, p.rest, p.err);
  if (p.ok && p.rest) {
    std::string_view tail(out.data() + out.size() - p.rest, p.rest);
    p.partial_start.assign(tail.substr(0, tail.find("\r\n")));
  }
  return p;
}

// Everything a run produced that must be the same however the input was
// split. Body data delivered to handlers is not in it (pieces differ), but
// the totals at each END are (in the trace).
inline std::string summary(const EngineRun &run, const Parsed &p) {
  std::string s;
  if (!p.ok) s += "PARSE ERROR: " + p.err + "\n";
  for (const Resp &r : p.resps) s += r.canonical();
  if (p.rest) s += "[incomplete: " + p.partial_start + "]\n";
  s += "closing=" + std::to_string(run.closing) + " dead=" + std::to_string(run.dead) +
       " wait=" + wait_name(run.wait) + " handlers=" + std::to_string(run.ctx.handler_calls) +
       " done=" + std::to_string(run.ctx.done_calls) + "\ntrace: " + run.ctx.trace + "\n";
  for (const std::string &v : run.ctx.views) s += "view: " + v + "\n";
  return s;
}

// Where two summaries first differ, with context, for failure messages.
inline std::string first_difference(const std::string &a, const std::string &b) {
  size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) i++;
  size_t from = i > 120 ? i - 120 : 0;
  auto excerpt = [&](const std::string &s) {
    std::string e = s.substr(from, 360);
    std::string o;
    for (char c : e) {
      if (c == '\r')
        o += "\\r";
      else if (c == '\n')
        o += "\\n\n";
      else if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f)
        o += '.';
      else
        o += c;
    }
    return o;
  };
  return "at byte " + std::to_string(i) + " of the summary\n--- reference:\n" + excerpt(a) +
         "\n--- this run:\n" + excerpt(b);
}

}  // namespace icaptest

#endif
