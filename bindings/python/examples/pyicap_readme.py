#!/bin/env python
# SPDX-License-Identifier: MIT
# -*- coding: utf8 -*-

# pyicap's README example, in Python 3 syntax (socketserver instead of
# SocketServer, print()), with only its import line changed to run on
# libicap.  tests/python/test_examples.py runs it as it is (on a free port).

import random
import socketserver

from libicap.pyicap import *

class ThreadingSimpleServer(socketserver.ThreadingMixIn, ICAPServer):
    pass

class ICAPHandler(BaseICAPRequestHandler):

    def echo_OPTIONS(self):
        self.set_icap_response(200)
        self.set_icap_header(b'Methods', b'RESPMOD')
        self.set_icap_header(b'Preview', b'0')
        self.send_headers(False)

    def echo_RESPMOD(self):
        self.no_adaptation_required()

port = 13440

server = ThreadingSimpleServer(('', port), ICAPHandler)
try:
    while 1:
        server.handle_request()
except KeyboardInterrupt:
    print("Finished")
