# SPDX-License-Identifier: MIT
"""Start a private clamd for the icap-clamav tests (python3 stdlib only).

The clamd gets a configuration of its own in a temporary directory: a
LocalSocket there, Foreground, no TCP, and a DatabaseDirectory holding only
the two signatures written here (an .ndb file: the EICAR test string and a
test pattern), so nothing is downloaded and no system clamd is involved.
Verified with Debian 12's clamd 1.4.6: it starts with only an .ndb database
(no main.cvd) and reports "Libicap.Test.EICAR.UNOFFICIAL FOUND" for the
EICAR string.
"""
import os
import shutil
import socket
import subprocess
import tempfile
import time

# In two halves so that this file is not itself taken for the test virus.
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
PATTERN = b"LIBICAP-TEST-PATTERN-5f3a9c0e"
EICAR_NAME = "Libicap.Test.EICAR.UNOFFICIAL"
PATTERN_NAME = "Libicap.Test.Pattern.UNOFFICIAL"


def clamd_binary():
    for p in (shutil.which("clamd"), "/usr/sbin/clamd"):
        if p and os.access(p, os.X_OK):
            return p
    return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Clamd:
    """A clamd on a Unix socket in its own directory; start() / stop().
    With tcp=True it listens on 127.0.0.1:self.tcp_port as well (a port the
    kernel chose free just before)."""

    def __init__(self, workdir=None, tcp=False):
        # Unix socket paths are limited to 107 bytes: keep the dir short.
        self.dir = workdir or tempfile.mkdtemp(prefix="clamd.", dir="/tmp")
        self.socket = os.path.join(self.dir, "clamd.sock")
        self.proc = None
        db = os.path.join(self.dir, "db")
        os.makedirs(db, exist_ok=True)
        with open(os.path.join(db, "libicap-test.ndb"), "w") as f:
            f.write("%s:0:*:%s\n" % (EICAR_NAME.rsplit(".", 1)[0], EICAR.hex()))
            f.write("%s:0:*:%s\n" % (PATTERN_NAME.rsplit(".", 1)[0], PATTERN.hex()))
        conf = [
            "LocalSocket %s" % self.socket,
            "DatabaseDirectory %s" % db,
            "TemporaryDirectory %s" % self.dir,
            "LogFile %s" % os.path.join(self.dir, "clamd.log"),
            "PidFile %s" % os.path.join(self.dir, "clamd.pid"),
            "Foreground yes",
            "StreamMaxLength 64M",
            "SelfCheck 0",
        ]
        self.tcp_port = None
        if tcp:
            self.tcp_port = free_port()
            conf += ["TCPSocket %d" % self.tcp_port, "TCPAddr 127.0.0.1"]
        if os.getuid() == 0:
            conf.append("User root")  # Debian's default would be clamav
        self.conf = os.path.join(self.dir, "clamd.conf")
        with open(self.conf, "w") as f:
            f.write("\n".join(conf) + "\n")

    def start(self, timeout=60):
        binary = clamd_binary()
        if not binary:
            raise FileNotFoundError("clamd")
        with open(os.path.join(self.dir, "clamd.out"), "wb") as out:
            self.proc = subprocess.Popen([binary, "-c", self.conf], stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("clamd exited: " + self.log_tail())
            if self.ping():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("clamd did not answer PING within %s s" % timeout)

    def ping(self):
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(2)
                s.connect(self.socket)
                s.sendall(b"zPING\0")
                return s.recv(100).startswith(b"PONG")
        except OSError:
            return False

    def log_tail(self):
        for name in ("clamd.log", "clamd.out"):
            try:
                with open(os.path.join(self.dir, name), errors="replace") as f:
                    return f.read()[-2000:]
            except OSError:
                pass
        return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
