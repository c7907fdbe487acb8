# SPDX-License-Identifier: MIT
"""The native layer: libicap.Server, decorators, Request, Headers."""

import logging
import os
import queue
import socket
import threading
import time
import unittest

from icapclient import (Client, build, http_request_head, http_response_head,
                        request)

import libicap

SEEN = queue.Queue()

REQ = http_request_head('GET', 'http://example.test/a?b=c',
                        [('Host', 'example.test'), ('Accept', 'x/y'),
                         ('ACCEPT', 'z/w')])
RES = http_response_head('HTTP/1.1 404 Not Found',
                         [('Content-Type', 'text/html'),
                          ('Content-Length', '5')])


class EchoService:
    """A handler class: methods named after the ICAP methods."""

    def options(self, req):
        req.set_icap_header('X-Class', 'yes')
        req.send_headers()

    def respmod(self, req):
        req.no_adaptation()


def make_server(logs):
    srv = libicap.Server(workers=2, log=lambda lvl, msg: logs.append(
        (lvl, msg)), limits={'handler_timeout_ms': 5000})

    @srv.respmod('echo')
    @srv.reqmod('echo')
    def echo(req):
        req.no_adaptation()

    @srv.reqmod('inspect', preview=4, options_headers=[('X-Opt', '1')])
    def inspect(req):
        h = req.icap_headers
        SEEN.put({
            'method': req.method, 'uri': req.uri, 'version': req.version,
            'service': req.service_name, 'client': req.client_address,
            'host': h['host'], 'HOST': h.get('HOST'),
            'x_multi': h.getall('x-multi'), 'has_x': 'X-MULTI' in h,
            'http_method': req.http_method, 'http_uri': req.http_uri,
            'http_version': req.http_request_version,
            'accept': req.http_request_headers.getall('accept'),
            'encapsulated': req.encapsulated, 'has_body': req.has_body,
            'preview': req.preview, 'allow': req.allow,
            'allows204': req.allows(204), 'raw': req.raw_section('req-hdr'),
            'http_status': req.http_status, 'worker': req.worker,
            'service_obj': req.service.name,
        })
        req.send_error(403)

    @srv.respmod('inspect')
    def inspect_res(req):
        SEEN.put({'status': req.http_status, 'reason': req.http_reason,
                  'version': req.http_response_version,
                  'ctype': req.http_response_headers['content-type']})
        req.no_adaptation()

    @srv.respmod('readbody')
    def readbody(req):
        def got(req, body):
            SEEN.put({'len': None if body is None else len(body),
                      'ieof': req.ieof})
            req.respond(body[::-1], http_status='HTTP/1.1 200 OK',
                        headers=[('X-Reversed', 'yes')])
        req.read_body(got)

    @srv.reqmod('block')
    def block(req):
        req.copy_http_head(skip=['Accept'])
        req.add_http_header('X-Blocked', '1')
        req.set_icap_header('X-Icap', 'v')
        req.send_headers()

    @srv.reqmod('raises')
    def raises(req):
        raise KeyError('native handler failure for the test')

    @srv.reqmod('offload')
    def offload(req):
        def work():
            time.sleep(0.05)           # blocking is fine here
            return 'HTTP/1.1 451 Unavailable'

        def done(req, result, exc):
            req.respond(b'', http_status=result)
        req.offload(work, done)

    @srv.reqmod('thread')
    def from_thread(req):
        hold = req.hold()

        def worker():
            time.sleep(0.05)
            hold.post(lambda req, status: req.send_error(
                503 if status == 0 else 500))
        threading.Thread(target=worker).start()

    @srv.reqmod('wrongthread')
    def wrongthread(req):
        box = {}

        def worker():
            try:
                req.send_error(400)
            except RuntimeError as e:
                box['e'] = e
        t = threading.Thread(target=worker)
        t.start()
        t.join()
        SEEN.put({'error': type(box.get('e')).__name__})
        req.send_error(409)

    @srv.respmod('stream')
    def stream(req):
        req.set_http_status('HTTP/1.1 200 OK')
        req.send_headers(True)
        n = [0]

        def piece(req, data, flags):
            if data is None:
                return
            n[0] += len(data)
            if data:
                req.send_chunk(data)
            if flags & libicap.BODY_END and not (
                    flags & libicap.BODY_PREVIEW_END):
                req.end()
                SEEN.put({'streamed': n[0]})
            else:
                req.read_chunk(piece)
        req.read_chunk(piece)

    @srv.respmod('push')
    def push(req):
        parts = []

        def piece(req, data, flags):
            if data is None:
                return
            parts.append(data)
            if flags & libicap.BODY_PREVIEW_END:
                req.continue_()
            elif flags & libicap.BODY_END:
                SEEN.put({'pieces': len(parts), 'ieof': req.ieof})
                req.respond(b''.join(parts), http_status='HTTP/1.1 200 OK')
        req.on_body(piece)

    @srv.reqmod('done')
    def with_done(req):
        req.on_done(lambda r, status: SEEN.put({'done': status}))
        req.send_error(204 if req.allows(204) else 403)

    srv.add_service('cls', EchoService)
    srv.add_service('istag', istag='fixed-tag-1').options(
        lambda req: req.send_headers())
    return srv


class NativeServerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.logs = []
        cls.srv = make_server(cls.logs)
        cls.port = cls.srv.listen('127.0.0.1', 0)
        cls.srv.start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()
        assert cls.srv.wait(20)
        cls.srv.close()

    def setUp(self):
        while not SEEN.empty():
            SEEN.get_nowait()

    def test_port(self):
        self.assertEqual(self.srv.port, self.port)
        self.assertEqual(self.srv.ports, [self.port])
        self.assertTrue(self.srv.running)

    def test_generated_options(self):
        r = request(self.port, 'OPTIONS', 'echo')
        self.assertEqual(r.status, 200)
        self.assertIn('REQMOD', r.header('Methods'))
        self.assertIn('RESPMOD', r.header('Methods'))
        self.assertTrue(r.header('ISTag').startswith('"'))
        r = request(self.port, 'OPTIONS', 'inspect')
        self.assertEqual(r.header('Preview'), '4')
        self.assertEqual(r.header('X-Opt'), '1')

    def test_options_handler_class_and_istag(self):
        r = request(self.port, 'OPTIONS', 'cls')
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header('X-Class'), 'yes')
        self.assertEqual(r.header('Methods'), 'RESPMOD')
        r = request(self.port, 'OPTIONS', 'istag')
        self.assertEqual(r.header('ISTag'), '"fixed-tag-1"')

    def test_request_fields_and_headers(self):
        r = request(self.port, 'REQMOD', 'inspect', req_hdr=REQ,
                    allow=(204,), preview=0,
                    headers=[('X-Multi', '1'), ('x-multi', '2')])
        self.assertEqual(r.status, 403)
        f = SEEN.get(timeout=5)
        self.assertEqual(f['method'], 'REQMOD')
        self.assertEqual(f['uri'], 'icap://127.0.0.1:%d/inspect' % self.port)
        self.assertEqual(f['version'], 'ICAP/1.0')
        self.assertEqual(f['service'], 'inspect')
        self.assertEqual(f['service_obj'], 'inspect')
        self.assertEqual(f['client'][0], '127.0.0.1')
        self.assertIsInstance(f['client'][1], int)
        self.assertEqual(f['host'], '127.0.0.1:%d' % self.port)
        self.assertEqual(f['HOST'], f['host'])
        self.assertEqual(f['x_multi'], ['1', '2'])
        self.assertTrue(f['has_x'])
        self.assertEqual(f['http_method'], 'GET')
        self.assertEqual(f['http_uri'], 'http://example.test/a?b=c')
        self.assertEqual(f['http_version'], 'HTTP/1.1')
        self.assertEqual(f['accept'], ['x/y', 'z/w'])
        self.assertEqual(f['encapsulated'],
                         {'req-hdr': 0, 'null-body': len(REQ)})
        self.assertFalse(f['has_body'])
        self.assertEqual(f['preview'], 0)
        self.assertEqual(f['allow'], frozenset([204]))
        self.assertTrue(f['allows204'])
        self.assertEqual(f['raw'], REQ)
        self.assertIsNone(f['http_status'])
        self.assertIn(f['worker'], (0, 1))

    def test_response_fields(self):
        r = request(self.port, 'RESPMOD', 'inspect', res_hdr=RES,
                    body=b'hello', allow=(204,))
        self.assertEqual(r.status, 204)
        f = SEEN.get(timeout=5)
        self.assertEqual(f['status'], 404)
        self.assertEqual(f['reason'], 'Not Found')
        self.assertEqual(f['version'], 'HTTP/1.1')
        self.assertEqual(f['ctype'], 'text/html')

    def test_no_adaptation_204_or_echo(self):
        r = request(self.port, 'RESPMOD', 'echo', res_hdr=RES, body=b'hello',
                    allow=(204,))
        self.assertEqual(r.status, 204)
        body = os.urandom(5 << 20)
        head, _ = build('RESPMOD', 'echo', self.port, res_hdr=RES, body=body,
                        chunk=65536)
        with Client(self.port, timeout=60) as c:
            t = threading.Thread(target=c.send, args=(head,), daemon=True)
            t.start()
            r = c.read_response()
            t.join(60)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, body)
        self.assertEqual(r.section_lines('res-hdr')[0],
                         'HTTP/1.1 404 Not Found')

    def test_read_body_with_preview_and_respond(self):
        body = os.urandom(3000)
        head, rest = build('RESPMOD', 'readbody', self.port, res_hdr=RES,
                           body=body, preview=1024)
        with Client(self.port) as c:
            r, got_100 = c.transact(head, rest)
        self.assertTrue(got_100)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, body[::-1])
        self.assertEqual(SEEN.get(timeout=5)['len'], 3000)
        self.assertIn(('X-Reversed', 'yes'), r.http_headers('res-hdr'))

    def test_stream_5mib(self):
        body = os.urandom(5 << 20)
        head, _ = build('RESPMOD', 'stream', self.port, res_hdr=RES,
                        body=body, chunk=100000)
        with Client(self.port, timeout=60) as c:
            t = threading.Thread(target=c.send, args=(head,), daemon=True)
            t.start()
            r = c.read_response()
            t.join(60)
        self.assertEqual(r.body, body)
        self.assertEqual(SEEN.get(timeout=10)['streamed'], len(body))

    def test_push_mode_across_preview(self):
        body = os.urandom(300000)
        head, rest = build('RESPMOD', 'push', self.port, res_hdr=RES,
                           body=body, preview=1000, chunk=7000)
        with Client(self.port) as c:
            r, got_100 = c.transact(head, rest)
        self.assertTrue(got_100)
        self.assertEqual(r.body, body)
        self.assertFalse(SEEN.get(timeout=5)['ieof'])
        head, rest = build('RESPMOD', 'push', self.port, res_hdr=RES,
                           body=b'tiny', preview=1000)
        with Client(self.port) as c:
            r, got_100 = c.transact(head, rest)
        self.assertFalse(got_100)
        self.assertEqual(r.body, b'tiny')
        self.assertTrue(SEEN.get(timeout=5)['ieof'])

    def test_copy_http_head_skip(self):
        r = request(self.port, 'REQMOD', 'block', req_hdr=REQ)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.section_lines('req-hdr')[0],
                         'GET http://example.test/a?b=c HTTP/1.1')
        names = [k.lower() for k, _ in r.http_headers('req-hdr')]
        self.assertNotIn('accept', names)
        self.assertIn('x-blocked', names)
        self.assertEqual(r.header('X-Icap'), 'v')

    def test_exception_gives_500_and_traceback(self):
        n = len(self.logs)
        with Client(self.port) as c:
            head, _ = build('REQMOD', 'raises', self.port, req_hdr=REQ)
            r, _ = c.transact(head)
            self.assertEqual(r.status, 500)
            self.assertTrue(c.closed_by_peer())
        text = '\n'.join(m for _, m in self.logs[n:])
        self.assertIn('Traceback (most recent call last)', text)
        self.assertIn("KeyError: 'native handler failure for the test'", text)
        self.assertTrue(any(lvl == logging.ERROR for lvl, _ in self.logs[n:]))

    def test_offload(self):
        r = request(self.port, 'REQMOD', 'offload', req_hdr=REQ)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.section_lines('res-hdr')[0],
                         'HTTP/1.1 451 Unavailable')

    def test_hold_post_from_thread(self):
        r = request(self.port, 'REQMOD', 'thread', req_hdr=REQ)
        self.assertEqual(r.status, 503)

    def test_wrong_thread_refused(self):
        r = request(self.port, 'REQMOD', 'wrongthread', req_hdr=REQ)
        self.assertEqual(r.status, 409)
        self.assertEqual(SEEN.get(timeout=5)['error'], 'RuntimeError')

    def test_done_callback(self):
        r = request(self.port, 'REQMOD', 'done', req_hdr=REQ)
        self.assertEqual(r.status, 403)
        self.assertEqual(SEEN.get(timeout=5)['done'], 0)

    def test_unknown_service_and_method(self):
        self.assertEqual(request(self.port, 'REQMOD', 'nope',
                                 req_hdr=REQ).status, 404)
        self.assertEqual(request(self.port, 'REQMOD', 'cls',
                                 req_hdr=REQ).status, 405)


class HeadFieldCacheTest(unittest.TestCase):
    """Head fields are fetched from C once per transaction, then cached."""

    def test_uri_read_twice_costs_one_call(self):
        from libicap import _lib
        calls = []
        real = _lib.lib.icap_request_uri

        def counting(p):
            calls.append(p)
            return real(p)

        srv = libicap.Server(workers=1)
        seen = []

        @srv.respmod('twice')
        def twice(req):
            seen.append((req.uri, req.uri, req.preview, req.preview))
            req.no_adaptation()

        port = srv.listen('127.0.0.1', 0)
        _lib.lib.icap_request_uri = counting
        try:
            srv.start()
            for _ in range(2):
                r = request(port, 'RESPMOD', 'twice', res_hdr=RES,
                            body=b'hello', allow=(204,))
                self.assertEqual(r.status, 204)
        finally:
            srv.close()
            _lib.lib.icap_request_uri = real
        uri = 'icap://127.0.0.1:%d/twice' % port
        self.assertEqual(seen, [(uri, uri, None, None)] * 2)
        self.assertEqual(len(calls), 2)      # one per transaction


class LifecycleTest(unittest.TestCase):
    def test_stop_from_other_thread_and_handler(self):
        srv = libicap.Server(workers=1)

        @srv.reqmod('stop')
        def stop(req):
            req.send_error(503)
            srv.stop()                 # from the loop thread

        port = srv.listen()
        srv.start()
        self.assertEqual(request(port, 'REQMOD', 'stop',
                                 req_hdr=REQ).status, 503)
        self.assertTrue(srv.wait(20))
        srv.close()
        srv.close()                    # idempotent

    def test_serve_forever_and_stop(self):
        with libicap.Server(workers=1) as srv:
            srv.add_service('x').reqmod(lambda req: req.send_error(403))
            port = srv.listen('127.0.0.1', 0)
            threading.Timer(0.3, srv.stop).start()
            t0 = time.monotonic()
            srv.serve_forever()
            self.assertLess(time.monotonic() - t0, 15)
            with self.assertRaises(libicap.Error) as cm:
                srv.start()            # a server runs once
            self.assertEqual(cm.exception.code, libicap.ErrorCode.ESTATE)

    def test_listen_errors(self):
        # A port held by a plain socket (libicap itself binds with
        # SO_REUSEPORT, so two libicap servers may share a port).
        sock = socket.socket()
        sock.bind(('127.0.0.1', 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        with libicap.Server() as b:
            with self.assertRaises(libicap.Error) as cm:
                b.listen('127.0.0.1', port)
            sock.close()
            e = cm.exception
            self.assertEqual(e.code, libicap.ErrorCode.EADDRINUSE)
            self.assertEqual(e.name, 'ICAP_EADDRINUSE')
            self.assertIsInstance(e, OSError)
            self.assertIn('icap_server_listen', str(e))

    def test_duplicate_handler_and_bad_method(self):
        with libicap.Server() as srv:
            with self.assertRaises(ValueError):
                srv.add_service('a').set_handler('GET', lambda r: None)
            with self.assertRaises(TypeError):
                srv.add_service('b', object())

    def test_limits(self):
        with libicap.Server(limits={'idle_timeout_ms': 1234}) as srv:
            self.assertEqual(srv.get_limit('IDLE_TIMEOUT_MS'), 1234)
            srv.set_limit(libicap.Limit.DRAIN_TIMEOUT_MS, 500)
            self.assertEqual(srv.get_limit(libicap.Limit.DRAIN_TIMEOUT_MS),
                             500)
            with self.assertRaises(libicap.Error):
                srv.set_limit('connections', 0)


class HeadersTest(unittest.TestCase):
    def test_multidict(self):
        h = libicap.Headers([('Host', 'a'), ('X-A', '1'), ('x-a', '2'),
                             ('Allow', '204, trailers'), ('allow', '206')])
        self.assertEqual(h['HOST'], 'a')
        self.assertEqual(h['x-A'], '1')
        self.assertEqual(h.getall('X-A'), ['1', '2'])
        self.assertEqual(h.getall('nope'), [])
        self.assertIsNone(h.get('nope'))
        self.assertEqual(h.getlist('ALLOW'), ['204', 'trailers', '206'])
        self.assertIn('x-a', h)
        self.assertNotIn('x-b', h)
        self.assertEqual(len(h), 5)
        self.assertEqual(list(h)[:3], ['Host', 'X-A', 'x-a'])
        self.assertEqual(h.to_dict()['x-a'], ['1', '2'])
        with self.assertRaises(KeyError):
            h['nope']
        self.assertEqual(h, libicap.Headers(h.items()))


if __name__ == '__main__':
    unittest.main()
