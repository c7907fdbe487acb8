#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# tls-idle-rss.py ICAP_ECHO CERT_DIR - resident memory per idle TLS connection:
# starts icap-echo (one worker) with a TLS port on 127.0.0.1, opens 1000 TLS
# connections that each made one OPTIONS request, and prints the growth of
# the server's VmRSS divided by 1000. CERT_DIR holds server.pem, server.key
# and ca.pem (tests/tls/make-certs.sh DIR makes them). Needs ulimit -n > 2100.
import socket, ssl, subprocess, sys, time, os
exe, certs = sys.argv[1], sys.argv[2]
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
p = subprocess.Popen([exe, "--port", "0", "--workers", "1", "--tls-port", str(port),
                      "--tls-cert", certs + "/server.pem", "--tls-key", certs + "/server.key"],
                     stderr=subprocess.DEVNULL)
def rss():
    for l in open(f"/proc/{p.pid}/status"):
        if l.startswith("VmRSS"): return int(l.split()[1])
ctx = ssl.create_default_context(cafile=certs + "/ca.pem")
for _ in range(100):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close(); break
    except OSError: time.sleep(0.1)
def one():
    c = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname="127.0.0.1")
    c.sendall(b"OPTIONS icap://127.0.0.1/echo ICAP/1.0\r\nHost: x\r\n\r\n")
    d = b""
    while b"\r\n\r\n" not in d: d += c.recv(4096)
    return c
warm = [one() for _ in range(20)]
time.sleep(0.5); base = rss()
held = [one() for _ in range(1000)]
time.sleep(1); after = rss()
print(f"RSS before {base} KiB, with 1000 more idle TLS connections {after} KiB: {(after-base)/1000:.1f} KiB per connection")
for c in held + warm: c.close()
p.send_signal(2); p.wait(timeout=20)
