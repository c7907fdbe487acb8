#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Restart under load: no transaction may fail.

The test holds one listening socket, as systemd does for a socket unit, and
passes it (LISTEN_FDS) to icap-echo A. icap-bench runs 32 keep-alive
connections, 16 with respmod204 and 16 with a 4 KiB echo. In the middle a
new icap-echo B starts on the same socket and A gets SIGTERM: A stops
accepting at once, answers what its connections send with Connection:
close, and exits; the clients reconnect and land on B through the shared
backlog. The load generator must count zero connection errors and zero
invalid answers; a close after a complete answer with Connection: close is
not an error (icap-bench counts those as server_closes).

usage: restart_under_load.py ICAP_ECHO ICAP_BENCH [--duration S]
"""
import argparse
import os
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploy_support as ds  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("echo")
    ap.add_argument("bench")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    t = ds.Checks()
    tmp = tempfile.mkdtemp(prefix="deploy-restart.")
    sock, port = ds.listening_socket()
    echo = [a.echo, "--workers", str(a.workers)]

    log_a, log_b = os.path.join(tmp, "a.log"), os.path.join(tmp, "b.log")
    pa = ds.start(echo, sock=sock, log_path=log_a)
    t.check(ds.wait_log(log_a, "inherited socket") and ds.wait_ready(port), "A serves the socket")

    half = a.duration / 2
    loads = [ds.bench(a.bench, port, "respmod204", 16, a.duration),
             ds.bench(a.bench, port, "echo:4096", 16, a.duration)]
    time.sleep(half)

    pb = ds.start(echo, sock=sock, log_path=log_b)
    t.check(ds.wait_log(log_b, "inherited socket"), "B started on the same socket")
    t0 = time.monotonic()
    rc_a = ds.stop(pa, signal.SIGTERM, timeout=20)
    took = time.monotonic() - t0
    t.check(rc_a == 0, "A exits 0 after SIGTERM", "status %r" % rc_a)
    ds.log("A exited %.2f s after SIGTERM" % took)

    results = [ds.bench_result(p, timeout=a.duration + 60) for p in loads]
    total = {"completed": 0, "errors": 0, "invalid": 0, "server_closes": 0}
    for r in results:
        if not t.check(r is not None, "icap-bench result"):
            continue
        ds.log(ds.summary(r))
        for k in total:
            total[k] += r[k]
        t.check(r["errors"] == 0, "%s: no connection errors" % r["scenario"],
                "%d errors: %s" % (r["errors"], r.get("failure_reasons")))
        t.check(r["invalid"] == 0, "%s: no invalid answers" % r["scenario"],
                "%d invalid: %s" % (r["invalid"], r.get("failure_reasons")))
        t.check(r["completed"] > 0, "%s: transactions completed" % r["scenario"])
    # Every connection was on A when it stopped; each was closed by A after
    # a complete answer and reconnected (to B, since A had stopped accepting).
    t.check(total["server_closes"] >= 32, "all 32 connections were handed over",
            "only %d closes by the server" % total["server_closes"])
    print("restart: %d transactions, %d failed (errors %d, invalid %d), %d handed over"
          % (total["completed"], total["errors"] + total["invalid"], total["errors"],
             total["invalid"], total["server_closes"]), flush=True)

    t.check((ds.icap_options(port) or "").startswith("ICAP/1.0 200"), "B answers after the load")
    rc_b = ds.stop(pb, signal.SIGTERM, timeout=20)
    t.check(rc_b == 0, "B exits 0 after SIGTERM", "status %r" % rc_b)
    for name, path in (("A", log_a), ("B", log_b)):
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
        # A drain that ran into its timeout closed transactions it had not
        # finished; the load generator may not see that if its run ended.
        t.check("drain timeout" not in text, "%s finished its drain before the timeout" % name)
        if t.failed:
            sys.stderr.write("---- %s's log ----\n%s" % (name, text[-3000:]))
    sock.close()
    t.finish()


if __name__ == "__main__":
    main()
