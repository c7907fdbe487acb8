#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Checks the README's C example (icap-filter) over TCP: a RESPMOD for the
host ads.example gets a 403 page inside a 200, any other host gets 204 (the
client allows it) or, without Allow: 204, its own message back unchanged.

usage: filter_test.py PORT"""
import socket
import sys


def transact(port, host, allow204):
    req_hdr = f"GET http://{host}/x HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    res_hdr = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n"
    body = b"5\r\nhello\r\n0\r\n\r\n"
    head = (f"RESPMOD icap://127.0.0.1:{port}/filter ICAP/1.0\r\n"
            f"Host: 127.0.0.1:{port}\r\n"
            + ("Allow: 204\r\n" if allow204 else "")
            + f"Encapsulated: req-hdr=0, res-hdr={len(req_hdr)}, "
              f"res-body={len(req_hdr) + len(res_hdr)}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head + req_hdr + res_hdr + body)
        data = b""
        while not data.endswith(b"0\r\n\r\n") and b" 204 " not in data.split(b"\r\n")[0]:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return data


def main():
    port = int(sys.argv[1])
    failures = 0

    def check(name, ok, detail):
        nonlocal failures
        print(("PASS " if ok else "FAIL ") + name + ("" if ok else ": " + detail))
        failures += not ok

    r = transact(port, "ads.example", True)
    check("blocked-host-403", r.startswith(b"ICAP/1.0 200 ")
          and b"HTTP/1.1 403 Forbidden" in r and b"<h1>Blocked</h1>" in r, repr(r[:300]))
    r = transact(port, "www.example", True)
    check("other-host-204", r.startswith(b"ICAP/1.0 204 "), repr(r[:200]))
    r = transact(port, "www.example", False)
    check("other-host-echo", r.startswith(b"ICAP/1.0 200 ")
          and b"HTTP/1.1 200 OK" in r and b"5\r\nhello\r\n0\r\n\r\n" in r, repr(r[:300]))
    print(f"{3 - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
