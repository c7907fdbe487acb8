#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Origin HTTP server for squid-examples.sh (python3 standard library only).

Serves the files of --dir on 127.0.0.1 (kernel-chosen port, written to
--port-file once it accepts connections), with a Content-Type taken from
the file name's extension:

  .html -> text/html; charset=utf-8      .txt  -> text/plain
  .png  -> image/png                     .bin  -> application/octet-stream
  .gzhtml -> text/html + Content-Encoding: gzip (bytes served as they are)

Every answer carries "Server: example-origin/1" and "X-Powered-By:
example-origin" (header_rewrite removes both), Content-Length and keep-alive.
POST /echo answers the length of the body it read. Exits on SIGTERM/SIGINT
or after --max-lifetime seconds.
"""
import argparse
import os
import sys
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import origin_serve  # noqa: E402

TYPES = {
    ".html": ("text/html; charset=utf-8", None),
    ".txt": ("text/plain; charset=utf-8", None),
    ".png": ("image/png", None),
    ".bin": ("application/octet-stream", None),
    ".gzhtml": ("text/html; charset=utf-8", "gzip"),
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "example-origin/1"
    sys_version = ""
    timeout = 60

    def log_message(self, fmt, *args):
        pass

    def _head(self, status, length, ctype, encoding=None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if encoding:
            self.send_header("Content-Encoding", encoding)
        self.send_header("Content-Length", str(length))
        self.send_header("X-Powered-By", "example-origin")
        self.end_headers()

    def _get(self, head_only):
        name = urlsplit(self.path).path.lstrip("/")
        full = os.path.join(self.server.files_dir, name)
        ext = os.path.splitext(name)[1]
        if "/" in name or name.startswith(".") or not os.path.isfile(full) or ext not in TYPES:
            body = b"not found\n"
            self._head(404, len(body), "text/plain")
            if not head_only:
                self.wfile.write(body)
            return
        ctype, enc = TYPES[ext]
        self._head(200, os.path.getsize(full), ctype, enc)
        if head_only:
            return
        origin_serve.send_file(self.wfile, full)

    def do_GET(self):
        self._get(False)

    def do_HEAD(self):
        self._get(True)

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        left = n
        while left:
            chunk = self.rfile.read(min(left, 65536))
            if not chunk:
                break
            left -= len(chunk)
        body = ("received %d\n" % n).encode()
        self._head(200, len(body), "text/plain")
        self.wfile.write(body)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    origin_serve.add_arguments(ap)
    return origin_serve.serve(Handler, ap.parse_args())


if __name__ == "__main__":
    sys.exit(main())
