#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The command line of an example program: malformed options are errors
(a message naming the option, exit status 2) instead of atoi()'s silent
guesses (`--port abc` listened on a random port, `--port 13x0` on 13), and
a port that is already taken gives icap_strerror()'s text and exit status 1.

usage: cli_test.py PROGRAM [--no-workers]
  --no-workers  the program has no --workers option (icap-filter)

A program that wrongly starts serving is killed after 10 s and counts as a
failure; nothing here waits longer than that per case."""
import signal
import socket
import subprocess
import sys

TIMEOUT = 10


def run(argv):
    """Runs argv; returns (status, stdout, stderr), status None if it had
    to be killed."""
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        out, err = p.communicate(timeout=TIMEOUT)
        return p.returncode, out, err
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGKILL)
        out, err = p.communicate()
        return None, out, err


def main():
    prog = sys.argv[1]
    has_workers = "--no-workers" not in sys.argv[2:]
    failures = 0
    cases = 0

    def check(name, ok, detail):
        nonlocal failures, cases
        cases += 1
        print(("PASS " if ok else "FAIL ") + name + ("" if ok else ": " + detail))
        failures += not ok

    # Every malformed value is one that atoi() reads as 0, or one that
    # fails to listen, so that a program that wrongly accepts it listens
    # on a port the kernel chooses and never on a fixed one (the issue's
    # `--port 13x0` is `0x13` here: the same digits-then-garbage case).
    bad = [["--port", "abc"], ["--port", "0x13"], ["--port", "70000"], ["--port", "-1"],
           ["--port", ""], ["--port", " 0"], ["--port=99999999999999999999999"]]
    if has_workers:
        bad += [["--port", "0", "--workers", w] for w in ("abc", "-1", "2k")]
    for args in bad:
        rc, out, err = run([prog] + args)
        option, value = (args[-2], args[-1]) if len(args) > 1 else args[0].split("=", 1)
        check("rejects " + " ".join(repr(a) for a in args),
              rc == 2 and f"{option} '{value}'" in err, f"status {rc}, stderr {err!r}")

    for args in (["--no-such-option"], ["--port"], ["stray-argument"]):
        rc, out, err = run([prog] + args)
        check("rejects " + " ".join(args), rc == 2 and "usage:" in err,
              f"status {rc}, stderr {err!r}")

    rc, out, err = run([prog, "--help"])
    check("--help", rc == 0 and "usage:" in out and "--port" in out,
          f"status {rc}, stdout {out!r}")

    # A port someone else listens on: the program must say so and exit 1.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        rc, out, err = run([prog, "--port", str(port)])
    check("taken port", rc == 1 and "address already in use" in err,
          f"status {rc}, stderr {err!r}")

    print(f"{cases - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
