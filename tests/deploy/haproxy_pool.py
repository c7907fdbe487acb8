#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Three icap-echo instances behind HAProxy (examples/deploy/haproxy.cfg,
TCP mode, leastconn, OPTIONS health check).

1. All three are UP (HAProxy's stats socket, "show stat").
2. Under load through HAProxy one instance is killed with SIGKILL: the
   check marks it DOWN. Only connections that were on it may fail.
3. After that, a new load through HAProxy has no failed transaction.
4. The instance is started again on its port: the check marks it UP and a
   new load reaches it (its session count grows) without failures.

usage: haproxy_pool.py HAPROXY_CFG ICAP_ECHO ICAP_BENCH
"""
import os
import shutil
import signal
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploy_support as ds  # noqa: E402


def show_stat(path):
    """{server name: row} from HAProxy's "show stat" CSV for icap_pool."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(3)
            s.connect(path)
            s.sendall(b"show stat\n")
            data = b""
            while len(data) < 1 << 20:
                more = s.recv(65536)
                if not more:
                    break
                data += more
    except OSError:
        return {}
    lines = data.decode("latin-1").splitlines()
    if not lines or not lines[0].startswith("# "):
        return {}
    cols = lines[0][2:].split(",")
    rows = {}
    for line in lines[1:]:
        v = dict(zip(cols, line.split(",")))
        if v.get("pxname") == "icap_pool" and v.get("svname") not in ("BACKEND", None):
            rows[v["svname"]] = v
    return rows


def status(path, name):
    return show_stat(path).get(name, {}).get("status", "")


def main():
    cfg, echo, bench = sys.argv[1:4]
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not os.access(haproxy, os.X_OK):
        ds.log("SKIP: haproxy missing (Debian package haproxy)")
        sys.exit(ds.SKIP)
    t = ds.Checks()
    tmp = tempfile.mkdtemp(prefix="deploy-haproxy.")
    stats = os.path.join(tmp, "stats.sock")

    socks, ports, procs = [], [], []
    for i in range(3):
        s, port = ds.listening_socket()
        socks.append(s)
        ports.append(port)
        procs.append(ds.start([echo, "--workers", "1"], sock=s,
                              log_path=os.path.join(tmp, "icap%d.log" % (i + 1))))
    front = ds.free_port()
    env = {"ICAP_FRONT": "127.0.0.1:%d" % front, "HAPROXY_STATS": stats}
    for i, port in enumerate(ports):
        env["ICAP%d" % (i + 1)] = "127.0.0.1:%d" % port
    hlog = os.path.join(tmp, "haproxy.log")
    hp = ds.start([haproxy, "-f", cfg, "-db"], log_path=hlog, env=env)
    names = ["icap1", "icap2", "icap3"]
    up = ds.wait_for(lambda: all(status(stats, n) == "UP" for n in names), 20,
                     what="all three UP")
    t.check(up, "HAProxy: the OPTIONS check marks all three instances UP",
            str({n: status(stats, n) for n in names}))
    t.check(ds.wait_ready(front), "HAProxy forwards OPTIONS")

    # -- kill one under load ---------------------------------------------------
    load = ds.bench(bench, front, "respmod204", 16, 6)
    time.sleep(2)
    victim = 1  # icap2
    os.kill(procs[victim].pid, signal.SIGKILL)
    procs[victim].wait(10)
    socks[victim].close()  # nothing listens on its port any more
    t_kill = time.monotonic()
    down = ds.wait_for(lambda: status(stats, "icap2").startswith("DOWN"), 15,
                       what="icap2 DOWN")
    t.check(down, "HAProxy: the check marks the killed instance DOWN")
    ds.log("icap2 DOWN %.1f s after SIGKILL" % (time.monotonic() - t_kill))
    r1 = ds.bench_result(load)
    if t.check(r1 is not None, "load during the kill: result"):
        ds.log("during the kill: " + ds.summary(r1))
        # leastconn put about a third of the 16 connections on the victim.
        t.check(r1["errors"] <= 16 and r1["invalid"] == 0 and r1["completed"] > 0,
                "during the kill: only the killed instance's connections fail",
                ds.summary(r1))

    # -- after the check interval: no failures ---------------------------------
    r2 = ds.bench_result(ds.bench(bench, front, "echo:4096", 16, 3))
    if t.check(r2 is not None, "load after DOWN: result"):
        ds.log("after DOWN: " + ds.summary(r2))
        t.check(r2["errors"] == 0 and r2["invalid"] == 0 and r2["completed"] > 0,
                "after DOWN: no failed transaction", ds.summary(r2))

    # -- restart it on its port: UP again and receiving traffic -------------------
    s, _ = ds.listening_socket(ports[victim])
    socks[victim] = s
    procs[victim] = ds.start([echo, "--workers", "1"], sock=s,
                             log_path=os.path.join(tmp, "icap2-restarted.log"))
    up2 = ds.wait_for(lambda: status(stats, "icap2") == "UP", 20, what="icap2 UP again")
    t.check(up2, "HAProxy: the restarted instance is UP again")
    before = int(show_stat(stats).get("icap2", {}).get("stot", "0") or 0)
    r3 = ds.bench_result(ds.bench(bench, front, "respmod204", 30, 3))
    after = int(show_stat(stats).get("icap2", {}).get("stot", "0") or 0)
    if t.check(r3 is not None, "load after the restart: result"):
        ds.log("after the restart: " + ds.summary(r3))
        t.check(r3["errors"] == 0 and r3["invalid"] == 0, "after the restart: no failures",
                ds.summary(r3))
    t.check(after - before >= 5, "the restarted instance receives connections again",
            "icap2 sessions %d -> %d" % (before, after))
    ds.log("icap2 sessions before/after the last load: %d/%d; per instance: %s" % (
        before, after, {n: v.get("stot") for n, v in show_stat(stats).items()}))

    ds.stop(hp, signal.SIGTERM)
    for p in procs:
        t.check(ds.stop(p, signal.SIGTERM) == 0, "instance exits 0 on SIGTERM")
    if t.failed:
        with open(hlog, "rb") as f:
            sys.stderr.write(f.read().decode("utf-8", "replace")[-3000:])
    shutil.rmtree(tmp, ignore_errors=True)
    t.finish()


if __name__ == "__main__":
    main()
