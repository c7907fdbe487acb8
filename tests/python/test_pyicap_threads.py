# SPDX-License-Identifier: MIT
"""libicap.pyicap's threads, as pyicap's: with ThreadingMixIn one thread
(and one handler instance) per connection, reused for its keep-alive
transactions; a handler that blocks stalls only its own connection;
without ThreadingMixIn the handlers run in the thread that calls
handle_request(), one connection at a time.

Nothing here measures time: the blocking test holds a handler on an Event
while other connections complete a counted number of transactions, then
releases it.
"""

import queue
import socketserver
import threading
import unittest

from icapclient import Client, build, http_response_head, request

from libicap.pyicap import BaseICAPRequestHandler, ICAPServer
from serving import Serving

RES = http_response_head('HTTP/1.1 200 OK', [('Content-Length', '5')])
ENTERED = queue.Queue()
RELEASE = threading.Event()
WHO = queue.Queue()
WAIT = 30      # bound of every wait; the test fails long before


class Handler(BaseICAPRequestHandler):
    def log_message(self, format, *args):
        pass

    def block_RESPMOD(self):
        ENTERED.put(threading.get_ident())
        released = RELEASE.wait(WAIT)
        self.no_adaptation_required()
        ENTERED.put(('released', released))

    def quick_RESPMOD(self):
        self.no_adaptation_required()

    def who_RESPMOD(self):
        WHO.put((threading.get_ident(), id(self),
                 self.headers.get(b'x-conn', [b''])[0]))
        self.no_adaptation_required()


class Threading(socketserver.ThreadingMixIn, ICAPServer):
    daemon_threads = True


def respmod(port, service, client=None, headers=()):
    head, _ = build('RESPMOD', service, port, res_hdr=RES, body=b'hello',
                    allow=(204,), headers=headers)
    if client is not None:
        return client.transact(head)[0]
    with Client(port) as c:
        return c.transact(head)[0]


class ThreadingTest(unittest.TestCase):
    def setUp(self):
        self.serving = Serving(Threading(('127.0.0.1', 0), Handler))
        self.port = self.serving.port

    def tearDown(self):
        RELEASE.set()
        self.serving.close()

    def test_blocking_handler_does_not_stall_others(self):
        RELEASE.clear()
        blocked = {}

        def blocked_client():
            blocked['r'] = respmod(self.port, 'block')

        t = threading.Thread(target=blocked_client, daemon=True)
        t.start()
        ENTERED.get(timeout=WAIT)           # the handler is blocked now
        # 4 other connections complete 25 transactions each meanwhile.
        done = []
        errors = []

        def other():
            try:
                with Client(self.port) as c:
                    for _ in range(25):
                        done.append(respmod(self.port, 'quick', c).status)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))

        others = [threading.Thread(target=other) for _ in range(4)]
        for o in others:
            o.start()
        for o in others:
            o.join(WAIT)
        self.assertEqual(errors, [])
        self.assertEqual(done, [204] * 100)
        # ... while the blocked one still has no answer.
        self.assertNotIn('r', blocked)
        self.assertTrue(t.is_alive())
        RELEASE.set()
        t.join(WAIT)
        self.assertEqual(ENTERED.get(timeout=WAIT), ('released', True))
        self.assertEqual(blocked['r'].status, 204)

    def test_one_thread_and_handler_per_connection(self):
        with Client(self.port) as a, Client(self.port) as b:
            for i in range(5):
                for c, name in ((a, b'a'), (b, b'b')):
                    r = respmod(self.port, 'who', c,
                                headers=[('X-Conn', name.decode())])
                    self.assertEqual(r.status, 204)
        seen = {}
        for _ in range(10):
            ident, handler, conn = WHO.get(timeout=WAIT)
            seen.setdefault(conn, set()).add((ident, handler))
        # Every transaction of a connection: one thread, one instance (as
        # pyicap's StreamRequestHandler serves a connection) ...
        self.assertEqual(len(seen[b'a']), 1)
        self.assertEqual(len(seen[b'b']), 1)
        # ... and each connection its own thread.
        (ta, _), = seen[b'a']
        (tb, _), = seen[b'b']
        self.assertNotEqual(ta, tb)
        self.assertNotEqual(ta, threading.get_ident())


class PlainServerTest(unittest.TestCase):
    def test_handlers_run_in_the_callers_thread(self):
        server = ICAPServer(('127.0.0.1', 0), Handler)
        server.timeout = WAIT       # handle_request() never waits longer
        port = server.server_address[1]
        results = []

        def client():
            with Client(port) as c:
                for _ in range(3):
                    results.append(respmod(port, 'who', c,
                                           headers=[('X-Conn', 'p')]).status)

        try:
            t = threading.Thread(target=client, daemon=True)
            t.start()
            # One handle_request() serves the connection's transactions
            # while they keep coming (pyicap's handle() loop).
            for _ in range(3):
                if len(results) == 3 or not t.is_alive():
                    break
                server.handle_request()
            t.join(WAIT)
            self.assertEqual(results, [204] * 3)
            idents = {WHO.get(timeout=WAIT)[0] for _ in range(3)}
            self.assertEqual(idents, {threading.get_ident()})
        finally:
            server.server_close()


if __name__ == '__main__':
    unittest.main()
