#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""echo.py - pyicap's README example on libicap, with command-line options.

    export PYTHONPATH=bindings/python
    python3 bindings/python/examples/echo.py --port 1344

Service "echo" answers OPTIONS, REQMOD and RESPMOD.  In the default mode
(``--mode noadapt``, the README's) it calls no_adaptation_required(): 204
when the client allows it, else libicap echoes the message unchanged.
``--mode copy`` reads the body with pyicap's blocking read_chunk() (preview,
cont(), rest) and sends the same message back with send_headers() and
send_chunk(), to exercise the blocking path.  Ctrl-C (SIGINT) stops it.
"""

import argparse
import socketserver

from libicap.pyicap import *


class ThreadingSimpleServer(socketserver.ThreadingMixIn, ICAPServer):
    daemon_threads = True


class ICAPHandler(BaseICAPRequestHandler):
    mode = 'noadapt'
    options_preview = '0'
    quiet = False

    def echo_OPTIONS(self):
        self.set_icap_response(200)
        self.set_icap_header(b'Methods', b'REQMOD, RESPMOD')
        if self.options_preview != 'none':
            self.set_icap_header(b'Preview', self.options_preview.encode())
        self.send_headers(False)

    def echo_REQMOD(self):
        self._echo()

    def echo_RESPMOD(self):
        self._echo()

    def _echo(self):
        if self.mode == 'noadapt' or not self.has_body:
            self.no_adaptation_required()
            return
        # copy: read the preview, ask for the rest, send everything back
        # (pyicap's fields are bytes: self.preview is b'0' with Preview: 0)
        preview = b''
        if self.preview is not None:
            while True:
                chunk = self.read_chunk()
                if chunk == b'':
                    break
                preview += chunk
            if not self.ieof:
                self.cont()
        self.set_icap_response(200)
        if self.command == b'RESPMOD':
            self.set_enc_status(b' '.join(self.enc_res_status))
            headers = self.enc_res_headers
        else:
            self.set_enc_request(b' '.join(self.enc_req))
            headers = self.enc_req_headers
        for name, values in headers.items():
            for value in values:
                self.set_enc_header(name, value)
        self.send_headers(True)
        if preview:
            self.send_chunk(preview)
        if self.preview is not None and self.ieof:
            self.send_chunk(b'')
            return
        while True:
            chunk = self.read_chunk()
            self.send_chunk(chunk)
            if chunk == b'':
                break

    def log_message(self, format, *args):
        if not self.quiet:
            super().log_message(format, *args)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--host', default='')
    ap.add_argument('--port', type=int, default=13440)
    ap.add_argument('--workers', type=int, default=1,
                    help='libicap event loops (default 1)')
    ap.add_argument('--mode', choices=('noadapt', 'copy'), default='noadapt')
    ap.add_argument('--preview', default='0',
                    help="Preview advertised in OPTIONS ('none' to leave "
                         "libicap's default; the README uses 0)")
    ap.add_argument('--quiet', action='store_true',
                    help='no access log lines on stderr')
    args = ap.parse_args()
    ICAPHandler.mode = args.mode
    ICAPHandler.options_preview = args.preview
    ICAPHandler.quiet = args.quiet

    server = ThreadingSimpleServer((args.host, args.port), ICAPHandler,
                                   workers=args.workers)
    print('echo.py: listening on %s:%d (mode %s)' % (
        server.server_address[0], server.server_address[1], args.mode),
        flush=True)
    try:
        while 1:
            server.handle_request()
    except KeyboardInterrupt:
        print("Finished")
    finally:
        server.server_close()


if __name__ == '__main__':
    main()
