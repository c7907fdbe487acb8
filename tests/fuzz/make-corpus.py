#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Writes the seed corpus of the fuzz targets (tests/fuzz/corpus/<target>/).

Seeds are real client requests copied from /work/shared/captures (Squid 5.7
and c-icap-client 0.5.10 on loopback; see that folder's README) plus edge
cases written here. Run it again after changing a target's input format; it
rewrites only the seed-* files, so regression inputs (crash-*, regress-*)
added by hand or by run-fuzzers.sh stay.

usage: make-corpus.py [--captures DIR] [--out DIR]
"""
import argparse
import hashlib
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def write(out, target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def transactions(capdir):
    """Yields (capture name, transaction index, request bytes)."""
    with open(os.path.join(capdir, "manifest.json")) as f:
        m = json.load(f)
    for c in m["captures"]:
        with open(os.path.join(capdir, c["request_file"]), "rb") as f:
            req = f.read()
        for i, t in enumerate(c["transactions"]):
            a, b = t["request_range"]
            yield c["name"], i, req[a:b], c


def split_request(req):
    """(icap head, [(section name, bytes)], body bytes) of one request."""
    end = req.find(b"\r\n\r\n")
    head = req[:end + 4]
    rest = req[end + 4:]
    enc = None
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"encapsulated:"):
            enc = line.split(b":", 1)[1].strip().decode()
    if not enc:
        return head, [], b""
    ents = [(n.strip(), int(o)) for n, o in (e.split("=") for e in enc.split(","))]
    secs = []
    for (n, o), nxt in zip(ents, ents[1:]):
        secs.append((n, rest[o:nxt[1]]))
    body = rest[ents[-1][1]:] if ents[-1][0] != "null-body" else b""
    return head, secs, body


def ctl(*bs):
    """16 control bytes for fuzz_session."""
    b = bytes(bs)
    return b + bytes(16 - len(b))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--captures", default="/work/shared/captures")
    ap.add_argument("--out", default=os.path.join(HERE, "corpus"))
    a = ap.parse_args()
    out = a.out
    for t in ("request_head", "chunked", "http_head", "session"):
        d = os.path.join(out, t)
        if os.path.isdir(d):
            for f in os.listdir(d):
                if f.startswith("seed-"):
                    os.remove(os.path.join(d, f))

    seen = set()
    whole = {}
    for name, i, req, cap in transactions(a.captures):
        head, secs, body = split_request(req)
        tag = f"{name}-{i}"
        h = hashlib.sha1(head).hexdigest()
        if h not in seen:
            seen.add(h)
            write(out, "request_head", tag, head)
        for sn, sb in secs:
            # byte 0: bit 0 response, bits 1-2 field limit (2: 200)
            write(out, "http_head", f"{tag}-{sn}", (b"\x04" if sn == "req-hdr" else b"\x05") + sb)
        if body:
            pv = cap["transactions"][i]["preview"]
            pv = None if pv is None else int(pv)
            pb = 255 if pv is None else pv if pv < 200 else 200 + pv // 64
            write(out, "chunked", f"{tag}", b"\x00\x05" + body[:8192])
            write(out, "chunked", f"{tag}-session", b"\x04" + bytes([pb]) + body[:8192])
        if len(req) <= 24000:
            whole[tag] = req
    # Whole connections too (pipelined, keep-alive) for the session target.
    with open(os.path.join(a.captures, "manifest.json")) as f:
        m = json.load(f)
    for c in m["captures"]:
        if c["name"].endswith("-conn") and c["request_bytes"] <= 24000:
            with open(os.path.join(a.captures, c["request_file"]), "rb") as f:
                whole[c["name"]] = f.read()

    # ---- fuzz_session: control bytes + real requests, several decisions.
    decisions = [
        ("noadapt", ctl(0, 0, 3, 0, *[0] * 8)),
        ("readreply", ctl(0, 7, 2, 0, *[1] * 8)),
        ("push-pause", ctl(0, 9, 1, 0, *[4] * 8)),
        ("continue", ctl(0, 5, 2, 0, *[3] * 8)),
        ("mixed-small-limits", ctl(1, 3, 2, 0, 0, 1, 2, 4, 6, 7, 11, 12)),
        ("defer-hold", ctl(8, 1, 3, 0, 0x08, 0x18, 0x48, 0x68, 0xc8, 0xd8, 0x38, 0x28)),
        ("abort-throw", ctl(0, 2, 1, 0, 5, 0x15, 9, 10, 13, 14, 15, 2)),
        ("drain-timer", ctl(0x14 | 4, 4, 2, 2, 0, 1, 0, 1, 0, 1, 0, 1)),
    ]
    for tag, req in sorted(whole.items()):
        for dn, c in decisions:
            if dn != "noadapt" and not tag.endswith("-conn") and int(hashlib.sha1((tag + dn).encode()).hexdigest(), 16) % 3:
                continue  # keep the corpus small: every decision on a few requests
            write(out, "session", f"{tag}-{dn}", c + req)

    opt = b"OPTIONS icap://127.0.0.1/echo ICAP/1.0\r\nHost: x\r\n\r\n"
    reqget = (b"REQMOD icap://127.0.0.1/echo ICAP/1.0\r\nHost: x\r\nAllow: 204\r\n"
              b"Encapsulated: req-hdr=0, null-body=37\r\n\r\n"
              b"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n")
    http_res = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
    resp = (b"RESPMOD icap://127.0.0.1/echo ICAP/1.0\r\nHost: x\r\n"
            b"Encapsulated: res-hdr=0, res-body=%d\r\n\r\n" % len(http_res) + http_res +
            b"5\r\nhello\r\n0\r\n\r\n")
    resp_prev = (b"RESPMOD icap://127.0.0.1/echo ICAP/1.0\r\nHost: x\r\nPreview: 3\r\n"
                 b"Encapsulated: res-hdr=0, res-body=%d\r\n\r\n" % len(http_res) + http_res +
                 b"3\r\nhel\r\n0\r\n\r\n2\r\nlo\r\n0\r\n\r\n")
    resp_ieof = (b"RESPMOD icap://127.0.0.1/echo ICAP/1.0\r\nHost: x\r\nPreview: 5\r\nAllow: 206\r\n"
                 b"Encapsulated: res-hdr=0, res-body=%d\r\n\r\n" % len(http_res) + http_res +
                 b"5\r\nhello\r\n0; ieof\r\n\r\n")
    edge = {
        "garbage": b"\x00\x01\x02hello\r\n\r\n",
        "icap20": b"OPTIONS icap://x/echo ICAP/2.0\r\n\r\n",
        "http11": b"OPTIONS icap://x/echo HTTP/1.1\r\n\r\n",
        "unknown-method": b"FOO icap://x/echo ICAP/1.0\r\nEncapsulated: null-body=0\r\n\r\n",
        "no-service": b"OPTIONS icap://x/nope ICAP/1.0\r\n\r\n",
        "reqonly-respmod": resp.replace(b"/echo", b"/reqonly"),
        "reqmod-no-enc": b"REQMOD icap://x/echo ICAP/1.0\r\nHost: x\r\n\r\n",
        "overlap-enc": reqget.replace(b"null-body=37", b"null-body=0"),
        "huge-chunk": resp.replace(b"5\r\nhello", b"ffffffffffffffffffff\r\nhello"),
        "pipelined-3": opt + reqget + resp,
        "preview-continue": resp_prev,
        "preview-ieof": resp_ieof,
        "smuggle": resp.replace(b"5\r\nhello\r\n", b"5\r\nhello\r\n" + b"0\r\n\r\n" + opt),
        "data-after-ieof": resp_ieof + b"5\r\nextra\r\n0\r\n\r\n",
        "preview-too-long": resp_prev.replace(b"3\r\nhel", b"4\r\nhell"),
        "conn-close": reqget.replace(b"Host: x\r\n", b"Host: x\r\nConnection: close\r\n") + opt,
        "bare-lf-chunk": resp.replace(b"5\r\nhello\r\n", b"5\nhello\n"),
    }
    for n, data in edge.items():
        write(out, "session", "edge-" + n, ctl(0, 1, 3, 0, 0, 1, 2, 3, 4, 6, 7, 13) + data)
        write(out, "request_head", "edge-" + n, data[:data.find(b"\r\n\r\n") + 4] if b"\r\n\r\n" in data else data)

    heads = {
        "enc-reqmod": b"REQMOD icap://h/s ICAP/1.0\r\nEncapsulated: req-hdr=0, req-body=412\r\n\r\n",
        "enc-respmod-all": b"RESPMOD icap://h/s ICAP/1.0\r\nEncapsulated: req-hdr=0, res-hdr=100, res-body=200\r\n\r\n",
        "enc-decreasing": b"RESPMOD icap://h/s ICAP/1.0\r\nEncapsulated: res-hdr=100, res-body=50\r\n\r\n",
        "enc-repeat": b"RESPMOD icap://h/s ICAP/1.0\r\nEncapsulated: res-hdr=0, res-hdr=5, res-body=9\r\n\r\n",
        "enc-body-first": b"RESPMOD icap://h/s ICAP/1.0\r\nEncapsulated: res-body=0, res-hdr=5\r\n\r\n",
        "enc-opt-body": b"OPTIONS icap://h/s ICAP/1.0\r\nEncapsulated: opt-body=0\r\n\r\n",
        "enc-huge": b"REQMOD icap://h/s ICAP/1.0\r\nEncapsulated: req-hdr=0, req-body=999999999999\r\n\r\n",
        "nul-in-header": b"OPTIONS icap://h/s ICAP/1.0\r\nX-A: a\x00b\r\n\r\n",
        "folding": b"OPTIONS icap://h/s ICAP/1.0\r\nX-A: a\r\n b\r\n\r\n",
        "preview-nan": b"REQMOD icap://h/s ICAP/1.0\r\nPreview: abc\r\nEncapsulated: req-hdr=0, null-body=10\r\n\r\n",
        "origin-form": b"OPTIONS /echo?x=1 ICAP/1.0\r\n\r\n",
        "two-spaces": b"OPTIONS  icap://h/s ICAP/1.0\r\n\r\n",
        "many-headers": b"OPTIONS icap://h/s ICAP/1.0\r\n" + b"X: y\r\n" * 150 + b"\r\n",
    }
    for n, data in heads.items():
        write(out, "request_head", n, data)

    hh = {
        "req-simple": b"\x04GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "req-connect": b"\x04CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
        "req-upgrade": b"\x04GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
        "req-cl-dup": b"\x04POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
        "req-cl-conflict": b"\x04POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
        "req-te-cl": b"\x04POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n",
        "req-fold": b"\x04GET / HTTP/1.1\r\nX-A: a\r\n b\r\n\r\n",
        "req-nul": b"\x04GET / HTTP/1.1\r\nX-A: a\x00b\r\n\r\n",
        "req-bare-lf": b"\x04GET / HTTP/1.1\nHost: a\n\n",
        "req-trailing": b"\x04GET / HTTP/1.1\r\nHost: a\r\n\r\nXYZ",
        "res-simple": b"\x05HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n",
        "res-204": b"\x05HTTP/1.1 204 No Content\r\n\r\n",
        "res-no-reason": b"\x05HTTP/1.1 200\r\n\r\n",
        "res-many": b"\x03HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 10 + b"\r\n",
        "res-http10": b"\x05HTTP/1.0 302 Found\r\nLocation: /x\r\n\r\n",
    }
    for n, data in hh.items():
        write(out, "http_head", n, data)

    ch = {
        "simple": b"\x00\x00" + b"5\r\nhello\r\n0\r\n\r\n",
        "ieof": b"\x00\x00" + b"0; ieof\r\n\r\n",
        "ieof-nospace": b"\x00\x01" + b"3\r\nabc\r\n0;ieof\r\n\r\n",
        "ext-quoted": b"\x00\x02" + b"3;name=\"v;a\\\"l\"\r\nabc\r\n0; x=y; ieof\r\n\r\n",
        "ext-ieofx": b"\x00\x03" + b"0; ieofx\r\n\r\n",
        "trailer": b"\x00\x04" + b"1\r\na\r\n0\r\nX-T: 1\r\n\r\n",
        "overflow": b"\x03\x00" + b"ffffffffffffffffffff\r\n",
        "over-limit": b"\x01\x00" + b"11\r\n" + b"a" * 17 + b"\r\n0\r\n\r\n",
        "bare-lf": b"\x00\x00" + b"5\nhello\n0\n\n",
        "long-data": b"\x00\x00" + b"5\r\nhelloXX\r\n0\r\n\r\n",
        "short-data": b"\x00\x00" + b"5\r\nhel\r\n0\r\n\r\n",
        "leading-zeros": b"\x00\x00" + b"0000005\r\nhello\r\n0\r\n\r\n",
        "uppercase": b"\x00\x00" + b"A\r\n0123456789\r\n0\r\n\r\n",
        "ws-ext": b"\x00\x00" + b"5 ; a = b \r\nhello\r\n0\r\n\r\n",
        "long-line": b"\x00\x00" + b"1;" + b"a" * 5000 + b"\r\n",
        "preview-ieof": b"\x04\x05" + b"5\r\nhello\r\n0; ieof\r\n\r\n",
        "preview-continue": b"\x04\x03" + b"3\r\nhel\r\n0\r\n\r\n2\r\nlo\r\n0\r\n\r\n",
        "preview-204": b"\x0c\x03" + b"3\r\nhel\r\n0\r\n\r\n",
        "preview-too-long": b"\x04\x02" + b"3\r\nhel\r\n0\r\n\r\n",
        "preview-zero": b"\x14\x00" + b"0\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "no-preview": b"\x1c\xff" + b"5\r\nhello\r\n0\r\n\r\n",
    }
    for n, data in ch.items():
        write(out, "chunked", n, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
