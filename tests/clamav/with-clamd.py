#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Run a command while a private clamd runs (clamd_fixture.Clamd).

usage: with-clamd.py CMD [ARGS...]

Starts clamd with its own configuration and test-only signatures, replaces
the token @CLAMD@ in every argument by its Unix socket path, runs CMD,
stops clamd and exits with CMD's status. SIGINT and SIGTERM are passed on
to CMD, so that tests/interop/with-server.sh can run
`with-clamd.py icap-clamav --clamd unix:@CLAMD@ ...` as its server and stop
it as usual. Exits 77 (ctest's SKIP) when clamd is not installed, 3 when it
does not start.
"""
import os
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clamd_fixture  # noqa: E402


def main():
    cmd = sys.argv[1:]
    if not cmd or cmd[0].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    if not clamd_fixture.clamd_binary():
        print("[with-clamd] SKIP: clamd is not installed (Debian: clamav-daemon)", file=sys.stderr)
        return 77
    clamd = clamd_fixture.Clamd()
    try:
        try:
            clamd.start()
        except (RuntimeError, OSError) as e:
            print("[with-clamd] clamd did not start: %s" % e, file=sys.stderr)
            return 3
        print("[with-clamd] clamd (pid %d) on %s" % (clamd.proc.pid, clamd.socket), file=sys.stderr)
        cmd = [a.replace("@CLAMD@", clamd.socket) for a in cmd]
        child = subprocess.Popen(cmd)

        def forward(sig, _frame):
            child.send_signal(sig)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        rc = child.wait()
        return rc if rc >= 0 else 128 - rc
    finally:
        clamd.cleanup()


if __name__ == "__main__":
    sys.exit(main())
