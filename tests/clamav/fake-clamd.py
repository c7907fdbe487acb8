#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A fake clamd on a Unix socket for the icap-clamav tests (stdlib only).

  --mode stall     accept connections, read everything, never answer: a
                   clamd that hangs (the scan timeout must apply)
  --mode version   answer VERSION with the first line of --version-file
                   (re-read every time) and every INSTREAM with "stream: OK"
  --mode error     the same, but every INSTREAM gets clamd's reply to a
                   stream over its StreamMaxLength (an ERROR)

--accept-log FILE gets one line per accepted connection. Runs until
SIGTERM/SIGINT or --max-lifetime seconds.
"""
import argparse
import os
import signal
import socket
import struct
import sys
import threading
import time


def serve_version(conn, version_file, verdict=b"stream: OK"):
    buf = b""
    session = False
    n = 0

    def need(k):
        nonlocal buf
        while len(buf) < k:
            d = conn.recv(65536)
            if not d:
                raise EOFError
            buf += d

    def reply(text):
        conn.sendall(((b"%d: " % n) if session else b"") + text + b"\0")

    while True:
        need(1)
        z = buf.find(b"\0")
        while z < 0:
            need(len(buf) + 1)
            z = buf.find(b"\0")
        cmd, buf = buf[:z], buf[z + 1:]
        n += 1
        if cmd == b"zIDSESSION":
            session = True
            n -= 1
        elif cmd == b"zVERSION":
            with open(version_file, "rb") as f:
                reply(f.readline().strip())
        elif cmd == b"zINSTREAM":
            while True:
                need(4)
                (length,) = struct.unpack("!I", buf[:4])
                buf = buf[4:]
                if length == 0:
                    break
                need(length)
                buf = buf[length:]
            reply(verdict)
        elif cmd == b"zEND":
            return
        else:
            reply(b"UNKNOWN COMMAND")
        if not session:
            return


def handle(conn, mode, version_file):
    try:
        if mode == "stall":
            while conn.recv(65536):
                pass
        elif mode == "error":
            serve_version(conn, version_file, b"INSTREAM size limit exceeded. ERROR")
        else:
            serve_version(conn, version_file)
    except (OSError, EOFError):
        pass
    finally:
        conn.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--socket", required=True)
    ap.add_argument("--mode", choices=("stall", "version", "error"), required=True)
    ap.add_argument("--version-file")
    ap.add_argument("--accept-log")
    ap.add_argument("--max-lifetime", type=float, default=600)
    a = ap.parse_args()
    if os.path.exists(a.socket):
        os.unlink(a.socket)
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(a.socket)
    srv.listen(64)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    deadline = time.monotonic() + a.max_lifetime
    srv.settimeout(0.5)
    while time.monotonic() < deadline:
        try:
            conn, _ = srv.accept()
        except socket.timeout:
            continue
        if a.accept_log:
            with open(a.accept_log, "a") as f:
                f.write("accepted\n")
        threading.Thread(target=handle, args=(conn, a.mode, a.version_file), daemon=True).start()
    return 0


if __name__ == "__main__":
    sys.exit(main())
