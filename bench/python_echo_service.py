#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""python_echo_service.py - pyicap's README echo service, for benchmarks.

    python3 bench/python_echo_service.py [--port N] [--pyicap PATH]

Without ``--pyicap`` it imports ``libicap.pyicap``; with it, the pyicap.py
file at PATH (or in the directory PATH).  The handler code is the same
either way, so the two servers differ only in the import, as for a user who
migrates.  Services: ``echo`` (OPTIONS, and REQMOD/RESPMOD answered with
``no_adaptation_required()``, as in pyicap's README) and ``sleep`` (the
same after ``time.sleep(0.1)``: a handler that blocks).  A
``ThreadingMixIn`` server as in pyicap's README; access log lines are
dropped.  Under pyicap each accepted socket gets TCP_NODELAY, as libicap
sets it, so that neither side waits for delayed ACKs.  SIGTERM or SIGINT
stops it.
"""

import argparse
import os
import signal
import socket
import socketserver
import sys
import time

ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
ap.add_argument('--port', type=int, default=0,
                help='0 (the default): the kernel picks one')
ap.add_argument('--pyicap', help='pyicap.py, or the directory holding it')
args = ap.parse_args()

if args.pyicap:
    d = args.pyicap
    if os.path.isfile(d):
        d = os.path.dirname(os.path.abspath(d))
    sys.path.insert(0, d)
    from pyicap import BaseICAPRequestHandler, ICAPServer
else:
    from libicap.pyicap import BaseICAPRequestHandler, ICAPServer


class ThreadingSimpleServer(socketserver.ThreadingMixIn, ICAPServer):
    daemon_threads = True


class ICAPHandler(BaseICAPRequestHandler):
    def setup(self):
        if isinstance(self.request, socket.socket):
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().setup()

    def echo_OPTIONS(self):
        self.set_icap_response(200)
        self.set_icap_header(b'Methods', b'REQMOD, RESPMOD')
        self.set_icap_header(b'Preview', b'0')
        self.send_headers(False)

    def echo_RESPMOD(self):
        self.no_adaptation_required()

    echo_REQMOD = echo_RESPMOD
    sleep_OPTIONS = echo_OPTIONS

    def sleep_RESPMOD(self):
        time.sleep(0.1)
        self.no_adaptation_required()

    def log_message(self, format, *args):
        pass


def _stop(signum, frame):
    raise KeyboardInterrupt


signal.signal(signal.SIGTERM, _stop)
signal.signal(signal.SIGINT, _stop)
server = ThreadingSimpleServer(('127.0.0.1', args.port), ICAPHandler)
print('python_echo_service.py: listening on 127.0.0.1:%d (%s)'
      % (server.server_address[1],
         'pyicap' if args.pyicap else 'libicap.pyicap'),
      flush=True)
try:
    server.serve_forever()
except KeyboardInterrupt:
    pass
finally:
    server.server_close()
