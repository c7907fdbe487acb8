# SPDX-License-Identifier: MIT
"""What the deploy tests share: a listening socket the test holds and hands
to the programs it starts (socket activation), the start of icap-echo on
it, an ICAP OPTIONS probe, the icap-bench load generator, and bounded
waits. Everything listens on 127.0.0.1 on ports the kernel picks.

Every wait is bounded; every process started is stopped by stop_all()
(run at exit), by pid.
"""
import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import time

SKIP = 77
_started = []


def log(msg):
    print("[deploy] " + msg, file=sys.stderr, flush=True)


def listening_socket(port=0):
    """A TCP socket bound to 127.0.0.1:port (0: the kernel picks) and
    listening, and its port. SO_REUSEADDR lets an instance that was killed
    be started again on its port while old connections are in TIME_WAIT."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(1024)
    return s, s.getsockname()[1]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start(args, sock=None, log_path=None, env=None):
    """Starts `args`. With `sock`, the way systemd's socket activation does:
    the socket as descriptor 3, LISTEN_FDS=1 and LISTEN_PID set to the pid
    of the program itself (the shell execs it, so its $$ is that pid)."""
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL
    e = dict(os.environ)
    e.update(env or {})
    kw = {}
    if sock is not None:
        fd = sock.fileno()
        move = "" if fd == 3 else " 3<&%d %d<&-" % (fd, fd)
        args = ["sh", "-c", 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$@"' + move, "sh"] + list(args)
        kw["pass_fds"] = (fd,)
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=e, **kw)
    _started.append(p)
    return p


def stop(p, sig=signal.SIGTERM, timeout=15.0):
    """Sends `sig`, waits (bounded), SIGKILL as the last resort; the exit
    status, or None if it had to be killed."""
    if p.poll() is None:
        try:
            p.send_signal(sig)
        except ProcessLookupError:
            pass
        try:
            return p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)
            return None
    return p.returncode


def stop_all():
    for p in reversed(_started):
        if p.poll() is None:
            stop(p, signal.SIGTERM, 10)


atexit.register(stop_all)


def icap_options(port, service="echo", timeout=3.0):
    """The status line of an OPTIONS answer from 127.0.0.1:port, or None."""
    req = ("OPTIONS icap://127.0.0.1:%d/%s ICAP/1.0\r\nHost: 127.0.0.1\r\n"
           "Connection: close\r\n\r\n" % (port, service)).encode()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as c:
            c.settimeout(timeout)
            c.sendall(req)
            data = b""
            while b"\r\n\r\n" not in data and len(data) < 65536:
                more = c.recv(4096)
                if not more:
                    break
                data += more
    except OSError:
        return None
    line = data.split(b"\r\n", 1)[0].decode("latin-1")
    return line or None


def wait_for(pred, timeout, step=0.1, what="condition"):
    """Polls pred() until it is true or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    log("timed out after %.1f s waiting for %s" % (timeout, what))
    return None


def wait_ready(port, service="echo", timeout=20.0):
    return wait_for(lambda: (icap_options(port, service) or "").startswith("ICAP/1.0 200"),
                    timeout, what="OPTIONS 200 on port %d" % port)


def wait_log(path, text, timeout=20.0):
    """Waits until the file at `path` contains `text`."""
    def seen():
        try:
            with open(path, "rb") as f:
                return text.encode() in f.read()
        except OSError:
            return False
    return wait_for(seen, timeout, what="%r in %s" % (text, path))


def bench(bench_bin, port, scenario, connections, duration, service="echo"):
    """Starts icap-bench in JSON mode; finish it with bench_result()."""
    args = [bench_bin, "--host", "127.0.0.1", "--port", str(port), "--service", service,
            "--scenario", scenario, "--connections", str(connections), "--duration",
            str(duration), "--warmup", "0", "--timeout", "10",
            "--max-time", str(int(duration) + 30), "--json"]
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    _started.append(p)
    return p


def bench_result(p, timeout=120.0):
    """icap-bench's JSON result (with its exit status as "exit"), or None."""
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate(10)
    if err:
        sys.stderr.write(err.decode("utf-8", "replace")[-4000:])
    try:
        r = json.loads(out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        log("icap-bench printed no JSON: %r" % out[-500:])
        return None
    r["exit"] = p.returncode
    return r


def summary(r):
    return ("%s: %d transactions, %d errors, %d invalid, %d server closes, %d reconnects"
            % (r["scenario"], r["completed"], r["errors"], r["invalid"], r["server_closes"],
               r["reconnects"]))


class Checks:
    """PASS/FAIL lines and the closing 'N passed, N failed' line."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, ok, name, detail=""):
        if ok:
            self.passed += 1
            print("PASS " + name, flush=True)
        else:
            self.failed += 1
            print("FAIL %s: %s" % (name, detail), flush=True)
        return ok

    def finish(self):
        print("%d passed, %d failed" % (self.passed, self.failed), flush=True)
        stop_all()
        sys.exit(0 if self.failed == 0 and self.passed > 0 else 1)
