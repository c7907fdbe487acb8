#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""pyicap's classic copy service on libicap.pyicap (used by the tests).

    python3 tests/python/pyicap_copy_server.py --port N

Service "copy": OPTIONS advertises ``Preview: 0`` (so Squid previews 0
bytes), RESPMOD copies the message as pyicap's examples/respmod_copy.py
does: the head field by field, the preview read, and the rest asked for
with ``cont()`` only ``if self.preview and not self.ieof``.  That branch
is taken only when ``preview`` is pyicap's bytes (b'0' is true; an int 0
would skip it and truncate every body).  SIGINT or SIGTERM stops it.
"""

import argparse
import queue
import signal
import socketserver

from libicap.pyicap import BaseICAPRequestHandler, ICAPServer

#: {'took_branch': bool} per RESPMOD with a body, for in-process tests
SEEN = queue.Queue()


class CopyHandler(BaseICAPRequestHandler):
    def log_message(self, format, *args):
        pass

    def copy_OPTIONS(self):
        self.set_icap_response(200)
        self.set_icap_header(b'Methods', b'RESPMOD')
        self.set_icap_header(b'Preview', b'0')
        self.set_icap_header(b'Transfer-Preview', b'*')
        self.send_headers(False)

    def _read_into(self, parts):
        while True:
            chunk = self.read_chunk()
            if chunk == b'':
                return
            parts.append(chunk)

    def copy_RESPMOD(self):
        self.set_icap_response(200)
        self.set_enc_status(b' '.join(self.enc_res_status))
        for h in self.enc_res_headers:
            for v in self.enc_res_headers[h]:
                self.set_enc_header(h, v)
        if not self.has_body:
            self.send_headers(False)
            return
        parts = []
        self._read_into(parts)
        took_branch = bool(self.preview and not self.ieof)
        if took_branch:
            self.cont()
            self._read_into(parts)
        SEEN.put({'took_branch': took_branch})
        self.send_headers(True)
        self.send_chunk(b''.join(parts))
        self.send_chunk(b'')


class Server(socketserver.ThreadingMixIn, ICAPServer):
    daemon_threads = True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--host', default='127.0.0.1')
    ap.add_argument('--port', type=int, required=True)
    args = ap.parse_args()
    # SIGTERM as SIGINT: KeyboardInterrupt, then server_close() on the way
    # out of the with block.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with Server((args.host, args.port), CopyHandler) as server:
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            return


if __name__ == '__main__':
    main()
