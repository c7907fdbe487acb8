#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Socket activation: icap-echo and a C++ example serve on sockets they
inherit, by systemd's protocol (LISTEN_FDS, LISTEN_PID, descriptors from 3).

- systemd-socket-activate (Debian package systemd) binds the port, waits for
  the first connection and execs icap-echo with --workers 2: that first
  connection and 40 more (spread over both worker loops) are served;
- the test passes a socket itself (LISTEN_FDS=1) to icap-echo and to
  icap-cpp-echo, each given a --port that is not free: they must not try it;
- LISTEN_PID of another process: the variables are ignored, --port is used;
- a malformed LISTEN_FDS, or a descriptor 3 that is not a listening socket:
  exit status 1 with a message, never a server on the wrong socket.

usage: socket_activation.py ICAP_ECHO ICAP_CPP_ECHO
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploy_support as ds  # noqa: E402


def options_many(port, n):
    return sum(1 for _ in range(n) if (ds.icap_options(port) or "").startswith("ICAP/1.0 200"))


def main():
    echo, cpp_echo = sys.argv[1], sys.argv[2]
    t = ds.Checks()
    tmp = tempfile.mkdtemp(prefix="deploy-activation.")

    # --- systemd-socket-activate -------------------------------------------
    ssa = shutil.which("systemd-socket-activate")
    if not ssa:
        ds.log("SKIP: systemd-socket-activate missing (Debian package systemd)")
        sys.exit(ds.SKIP)
    for attempt in range(3):
        port = ds.free_port()
        logp = os.path.join(tmp, "ssa-%d.log" % attempt)
        p = ds.start([ssa, "-l", "127.0.0.1:%d" % port, echo, "--workers", "2",
                      "--port", "1"], log_path=logp)
        if ds.wait_log(logp, "Listening on", timeout=10) or p.poll() is None:
            break
    # The first connection makes systemd-socket-activate exec icap-echo.
    t.check(ds.wait_ready(port), "systemd-socket-activate: first connection served")
    t.check(ds.wait_log(logp, "1 inherited socket(s), port %d" % port, timeout=5),
            "systemd-socket-activate: icap-echo took the inherited socket")
    t.check(options_many(port, 40) == 40, "systemd-socket-activate: 40 more connections served")
    t.check(ds.stop(p, signal.SIGTERM) == 0, "systemd-socket-activate: exit 0 on SIGTERM")

    # --- LISTEN_FDS from the test, C and C++ -----------------------------------
    busy, busy_port = ds.listening_socket()  # a --port that must not be used
    for name, prog in (("icap-echo", echo), ("icap-cpp-echo", cpp_echo)):
        sock, port = ds.listening_socket()
        logp = os.path.join(tmp, name + ".log")
        p = ds.start([prog, "--workers", "2", "--port", str(busy_port)], sock=sock, log_path=logp)
        t.check(ds.wait_ready(port) and options_many(port, 20) == 20,
                "%s: serves the socket of LISTEN_FDS" % name)
        t.check(ds.stop(p, signal.SIGTERM) == 0, "%s: exit 0 on SIGTERM" % name)
        # The test's socket still listens: the server closed only its copy.
        c = socket.create_connection(("127.0.0.1", port), timeout=3)
        sock.settimeout(3)
        try:
            conn, _ = sock.accept()
            conn.close()
            ok = True
        except OSError:
            ok = False
        c.close()
        t.check(ok, "%s: the shared socket stays open after the server exits" % name)
        sock.close()

    # --- LISTEN_PID of another process: ignored ------------------------------
    sock, port = ds.listening_socket()
    own = ds.free_port()
    logp = os.path.join(tmp, "other-pid.log")
    p = ds.start([echo, "--port", str(own)], log_path=logp,
                 env={"LISTEN_PID": "1", "LISTEN_FDS": "1"})
    t.check(ds.wait_ready(own), "LISTEN_PID of another process: --port is used")
    ds.stop(p)
    sock.close()

    # --- malformed input: a clear failure -------------------------------------
    def must_fail(args, **kw):
        # A program that wrongly starts serving is ended by the timeout.
        try:
            return subprocess.run(args, capture_output=True, timeout=10, **kw)
        except subprocess.TimeoutExpired as e:
            return subprocess.CompletedProcess(args, -1, e.stdout or b"", e.stderr or b"")

    port_arg = ["--port", str(ds.free_port())]
    r = must_fail(["sh", "-c", 'LISTEN_PID=$$ LISTEN_FDS=x exec "$@"', "sh", echo] + port_arg)
    t.check(r.returncode == 1 and b"cannot start" in r.stderr, "malformed LISTEN_FDS: exit 1",
            "status %d, %r" % (r.returncode, r.stderr[-200:]))
    with open(os.path.join(tmp, "notasocket"), "w") as f:
        fd = f.fileno()
        r = must_fail(["sh", "-c", 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$@" 3<&%d' % fd, "sh", echo]
                      + port_arg, pass_fds=(fd,))
    t.check(r.returncode == 1 and b"invalid argument" in r.stderr,
            "descriptor 3 not a listening socket: exit 1",
            "status %d, %r" % (r.returncode, r.stderr[-200:]))
    busy.close()
    shutil.rmtree(tmp, ignore_errors=True)
    t.finish()


if __name__ == "__main__":
    main()
