# SPDX-License-Identifier: MIT
"""libicap.pyicap: every pyicap field and helper against known requests."""

import logging
import os
import queue
import socketserver
import threading
import time
import unittest

from icapclient import (Client, build, http_request_head, http_response_head,
                        request)

from libicap.pyicap import *  # noqa: F401,F403 - as pyicap users do
from libicap.pyicap import ICAPServer, BaseICAPRequestHandler, ICAPError
from serving import Serving

RESULTS = queue.Queue()
FIELDS = ('command', 'request_uri', 'version', 'request_version',
          'servicename', 'enc_req', 'enc_req_headers', 'enc_res_status',
          'enc_res_headers', 'has_body', 'encapsulated', 'ieof', 'preview',
          'allow', 'icap_response_code', 'headers', 'client_address')


def record(h, **extra):
    d = {k: getattr(h, k) for k in FIELDS}
    d.update(extra)
    RESULTS.put(d)


def result(service, tid=None, timeout=10):
    """The next record made by a handler of `service` (and, with `tid`, for
    the request carrying ``X-Test-Id: tid``).  Other records (late ones of
    an earlier test) are dropped."""
    deadline = time.monotonic() + timeout
    while True:
        d = RESULTS.get(timeout=max(0.01, deadline - time.monotonic()))
        if d.get('servicename') != service.encode():
            continue
        if tid is None or d['headers'].get(b'x-test-id') == [tid.encode()]:
            return d


_tids = iter(range(1, 1 << 30))


def test_id():
    return 'tid-%d' % next(_tids)


def read_all(h):
    parts = []
    while True:
        c = h.read_chunk()
        if c == b'':
            return b''.join(parts)
        parts.append(c)


class Handler(BaseICAPRequestHandler):
    def log_message(self, format, *args):
        pass

    # --- fields
    def fields_OPTIONS(self):
        record(self)
        self.set_icap_response(200)
        self.set_icap_header('Methods', 'REQMOD, RESPMOD')
        self.set_icap_header('X-Test', 'options')
        self.send_headers(False)

    def fields_REQMOD(self):
        before = self.icap_response_code
        body = read_all(self)
        record(self, body=body, code_before=before, eob=self.eob)
        self.no_adaptation_required()

    def fields_RESPMOD(self):
        body = read_all(self)
        record(self, body=body)
        self.set_icap_response(200)
        record(self, after_set=True)
        self.no_adaptation_required()

    # --- preview: read it, cont(), read the rest, echo
    def preview_RESPMOD(self):
        pre = []
        while True:
            c = self.read_chunk()
            if c == b'':
                break
            pre.append(c)
        ieof = self.ieof
        again = self.read_chunk()     # still b'' before cont()
        rest = []
        if not ieof:
            self.cont()
            while True:
                c = self.read_chunk()
                if c == b'':
                    break
                rest.append(c)
        record(self, pre=b''.join(pre), rest=b''.join(rest), ieof_now=ieof,
               again=again)
        self.set_icap_response(200)
        self.set_enc_status(b' '.join(self.enc_res_status))
        for k, vs in self.enc_res_headers.items():
            for v in vs:
                self.set_enc_header(k, v)
        self.send_headers(True)
        if pre:
            self.send_chunk(b''.join(pre))
        if rest:
            self.send_chunk(b''.join(rest))
        self.send_chunk(b'')

    def preview_OPTIONS(self):
        self.set_icap_response(200)
        self.set_icap_header('Methods', 'RESPMOD')
        self.send_headers(False)

    # --- copy: stream the body back chunk by chunk while reading
    def copy_RESPMOD(self):
        self.set_icap_response(200)
        self.set_enc_status(b' '.join(self.enc_res_status))
        self.send_headers(True)
        n = 0
        while True:
            c = self.read_chunk()
            n += len(c)
            self.send_chunk(c)
            if c == b'':
                break
        record(self, nbytes=n)

    copy_REQMOD = copy_RESPMOD

    # --- no adaptation: 204 or echo, as Allow says
    def noadapt_REQMOD(self):
        self.no_adaptation_required()
        record(self)

    noadapt_RESPMOD = noadapt_REQMOD

    # --- helpers
    def modify_REQMOD(self):
        body = read_all(self)
        self.set_icap_response(200)
        self.set_enc_request('POST http://changed.test/new HTTP/1.1')
        self.set_enc_header('Host', 'changed.test')
        self.set_enc_header('Cookie', 'a=1')
        self.set_enc_header('Cookie', 'b=2')
        self.set_enc_header('Content-Length', str(len(body) + 4))
        self.set_icap_header('X-Modified', 'yes')
        self.set_icap_header('X-Multi', '1')
        self.set_icap_header('X-Multi', '2')
        self.send_headers(True)
        self.send_chunk(body)
        self.send_chunk('more')        # str is accepted too
        self.send_chunk(b'')
        record(self)

    def block_REQMOD(self):
        self.set_icap_response(200)
        self.set_enc_status('HTTP/1.1 403 Forbidden')
        self.set_enc_header('Content-Type', 'text/plain')
        self.set_enc_header('Content-Length', '7')
        self.send_headers(True)
        self.send_chunk(b'blocked')
        self.send_chunk(b'')

    def blockhead_REQMOD(self):
        self.set_icap_response(200)
        self.set_enc_status('HTTP/1.1 403 Forbidden')
        self.set_enc_header('Content-Length', '0')
        self.send_headers(False)

    def encerror_REQMOD(self):
        self.send_enc_error(403, body='<p>no</p>')

    def error_REQMOD(self):
        self.send_error(403)
        record(self)

    def raises_REQMOD(self):
        raise ValueError('handler failure for the test')

    def raises_late_RESPMOD(self):
        self.set_icap_response(200)
        self.set_enc_status('HTTP/1.1 200 OK')
        self.send_headers(True)
        self.send_chunk(b'partial')
        raise RuntimeError('late failure for the test')

    def icaperror_REQMOD(self):
        raise ICAPError(403)

    def silent_REQMOD(self):
        pass                           # never answers: 500

    def unended_RESPMOD(self):
        self.set_icap_response(200)
        self.set_enc_status('HTTP/1.1 200 OK')
        self.send_headers(True)
        self.send_chunk(b'abc')        # no final b'': the body is ended

    def endtwice_RESPMOD(self):
        self.set_icap_response(200)
        self.set_enc_status(b'HTTP/1.1 200 OK')
        self.send_headers(True)
        self.send_chunk(b'')           # the body is empty: this ends it
        self.send_chunk(b'')           # pyicap's customary last chunk
        record(self, after=True)

    def partial_RESPMOD(self):
        data = read_all(self)
        record(self, got=len(data))
        self.no_adaptation_required()

    def stuck_RESPMOD(self):
        RESULTS.put({'entered': True, 'servicename': self.servicename})
        data = read_all(self)          # the client stalls mid-body
        record(self, got=len(data))
        self.no_adaptation_required()  # the server is gone: swallowed

    def only_OPTIONS(self):
        self.set_icap_response(200)
        self.send_headers(False)

    def istag_OPTIONS(self):
        self.set_icap_response(200)
        self.set_icap_header('ISTag', '"tag-from-handler"')
        self.set_icap_header('Date', 'ignored')
        self.send_headers(False)

    def istag_REQMOD(self):
        self.no_adaptation_required()


class ThreadingServer(socketserver.ThreadingMixIn, ICAPServer):
    daemon_threads = True


class LogCapture(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, rec):
        self.records.append(rec.getMessage())


class PyicapTestBase(unittest.TestCase):
    server_class = ThreadingServer

    @classmethod
    def setUpClass(cls):
        cls.logs = []
        cls.server = cls.server_class(
            ('127.0.0.1', 0), Handler, workers=2,
            log=lambda level, msg: cls.logs.append((level, msg)))
        cls.serving = Serving(cls.server)
        cls.port = cls.serving.port

    @classmethod
    def tearDownClass(cls):
        cls.serving.close()

    def setUp(self):
        while not RESULTS.empty():
            RESULTS.get_nowait()


REQ = http_request_head('POST', 'http://example.test/upload',
                        [('Host', 'example.test'), ('X-Multi', 'a'),
                         ('x-multi', 'b'), ('Content-Length', '11')])
RES = http_response_head('HTTP/1.1 200 OK',
                         [('Content-Type', 'text/plain'),
                          ('Set-Cookie', 'x=1'),
                          ('Set-Cookie', 'y=2'), ('Content-Length', '11')])


class FieldsTest(PyicapTestBase):
    def test_reqmod_fields(self):
        r = request(self.port, 'REQMOD', 'fields', req_hdr=REQ,
                    body=b'hello world', allow=(204,),
                    headers=[('X-Client-IP', '10.1.2.3')])
        self.assertEqual(r.status, 204)
        f = result('fields')
        self.assertEqual(f['command'], b'REQMOD')
        self.assertEqual(f['request_uri'],
                         b'icap://127.0.0.1:%d/fields' % self.port)
        self.assertEqual(f['version'], b'ICAP/1.0')
        self.assertEqual(f['request_version'], b'ICAP/1.0')
        self.assertEqual(f['servicename'], b'fields')
        self.assertEqual(f['enc_req'],
                         [b'POST', b'http://example.test/upload', b'HTTP/1.1'])
        self.assertEqual(f['enc_req_headers'],
                         {b'host': [b'example.test'], b'x-multi': [b'a', b'b'],
                          b'content-length': [b'11']})
        self.assertIsNone(f['enc_res_status'])
        self.assertEqual(f['enc_res_headers'], {})
        self.assertEqual(f['encapsulated'],
                         {b'req-hdr': 0, b'req-body': len(REQ)})
        self.assertTrue(f['has_body'])
        self.assertIsNone(f['preview'])
        self.assertEqual(f['allow'], [b'204'])
        self.assertFalse(f['ieof'])
        self.assertIsNone(f['code_before'])
        self.assertTrue(f['eob'])
        self.assertEqual(f['body'], b'hello world')
        self.assertEqual(f['headers'][b'x-client-ip'], [b'10.1.2.3'])
        self.assertEqual(f['client_address'][0], '127.0.0.1')

    def test_respmod_fields_preview_ieof(self):
        r = request(self.port, 'RESPMOD', 'fields', req_hdr=REQ, res_hdr=RES,
                    body=b'hello world', preview=20, allow=(204, 'trailers'))
        self.assertEqual(r.status, 204)
        f = result('fields')
        self.assertEqual(f['command'], b'RESPMOD')
        self.assertEqual(f['enc_req'][0], b'POST')
        self.assertEqual(f['enc_res_status'], [b'HTTP/1.1', b'200', b'OK'])
        self.assertEqual(f['enc_res_headers'][b'set-cookie'],
                         [b'x=1', b'y=2'])
        self.assertEqual(f['enc_res_headers'][b'content-type'],
                         [b'text/plain'])
        self.assertEqual(f['encapsulated'],
                         {b'req-hdr': 0, b'res-hdr': len(REQ),
                          b'res-body': len(REQ) + len(RES)})
        self.assertEqual(f['preview'], b'20')
        self.assertTrue(f['ieof'])
        self.assertEqual(f['allow'], [b'204', b'trailers'])
        self.assertEqual(f['body'], b'hello world')
        f2 = result('fields')
        self.assertEqual(f2['icap_response_code'], 200)

    def test_options_fields_and_merged_headers(self):
        # Squid's OPTIONS: no Encapsulated header at all.
        r = request(self.port, 'OPTIONS', 'fields', allow=(206, 'trailers'))
        self.assertEqual(r.status, 200)
        f = result('fields')
        self.assertEqual(f['command'], b'OPTIONS')
        self.assertFalse(f['has_body'])
        self.assertIsNone(f['preview'])
        self.assertIsNone(f['enc_req'])
        self.assertEqual(r.header('X-Test'), 'options')
        self.assertEqual(r.header('Methods'), 'REQMOD, RESPMOD')
        self.assertTrue(r.header('ISTag'))
        # generated headers the handler did not set are kept
        self.assertIsNotNone(r.header('Preview'))

    def test_options_methods_from_handler_class(self):
        # The OPTIONS handler of "preview" sets Methods itself; "only" has
        # no REQMOD/RESPMOD and does not set it.
        r = request(self.port, 'OPTIONS', 'preview')
        self.assertEqual(r.header('Methods'), 'RESPMOD')
        r = request(self.port, 'OPTIONS', 'copy', headers=[
            ('Encapsulated', 'null-body=0')])
        self.assertEqual(r.status, 404)   # no copy_OPTIONS: 404 like pyicap

    def test_istag_from_handler(self):
        r = request(self.port, 'OPTIONS', 'istag')
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header('ISTag'), '"tag-from-handler"')
        self.assertNotEqual(r.header('Date'), 'ignored')
        # Methods not set by the handler: the class's methods are listed
        self.assertEqual(r.header('Methods'), 'REQMOD')
        r = request(self.port, 'REQMOD', 'istag', req_hdr=REQ, allow=(204,))
        self.assertEqual(r.header('ISTag'), '"tag-from-handler"')


class HelpersTest(PyicapTestBase):
    def test_preview_cont_read_until_end(self):
        body = bytes(range(256)) * 40          # 10240 bytes
        head, rest = build('RESPMOD', 'preview', self.port, res_hdr=RES,
                           body=body, preview=1024, chunk=300)
        with Client(self.port) as c:
            r, got_100 = c.transact(head, rest)
        self.assertTrue(got_100)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, body)
        f = result('preview')
        self.assertEqual(f['pre'], body[:1024])
        self.assertEqual(f['rest'], body[1024:])
        self.assertFalse(f['ieof_now'])
        self.assertEqual(f['again'], b'')
        self.assertEqual(r.section_lines('res-hdr')[0], 'HTTP/1.1 200 OK')

    def test_preview_ieof_no_continue(self):
        head, rest = build('RESPMOD', 'preview', self.port, res_hdr=RES,
                           body=b'short', preview=1024)
        self.assertIsNone(rest)
        with Client(self.port) as c:
            r, got_100 = c.transact(head)
        self.assertFalse(got_100)
        self.assertEqual(r.body, b'short')
        f = result('preview')
        self.assertTrue(f['ieof_now'])
        self.assertTrue(f['ieof'])
        self.assertEqual(f['rest'], b'')

    def test_preview_zero(self):
        body = b'x' * 5000
        head, rest = build('RESPMOD', 'preview', self.port, res_hdr=RES,
                           body=body, preview=0)
        with Client(self.port) as c:
            r, got_100 = c.transact(head, rest)
        self.assertTrue(got_100)
        self.assertEqual(r.body, body)

    def test_echo_5mib(self):
        body = os.urandom(5 << 20)
        tid = test_id()
        head, _ = build('RESPMOD', 'copy', self.port, res_hdr=RES, body=body,
                        chunk=65536, headers=[('X-Test-Id', tid)])
        with Client(self.port, timeout=60) as c:
            # send while reading: the handler echoes as it reads
            t = threading.Thread(target=c.send, args=(head,), daemon=True)
            t.start()
            r = c.read_response()
            t.join(60)
        self.assertEqual(r.status, 200)
        self.assertEqual(len(r.body), len(body))
        self.assertEqual(r.body, body)
        self.assertEqual(result('copy', tid, 30)['nbytes'], len(body))

    def test_204_when_allowed(self):
        tid = test_id()
        r = request(self.port, 'RESPMOD', 'noadapt', res_hdr=RES,
                    body=b'abc' * 1000, allow=(204,),
                    headers=[('X-Test-Id', tid)])
        self.assertEqual(r.status, 204)
        self.assertEqual(result('noadapt', tid)['icap_response_code'], 204)

    def test_echo_when_204_not_allowed(self):
        body = os.urandom(300000)
        tid = test_id()
        r = request(self.port, 'RESPMOD', 'noadapt', res_hdr=RES, body=body,
                    headers=[('X-Test-Id', tid)])
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, body)
        self.assertEqual(r.section_lines('res-hdr')[0], 'HTTP/1.1 200 OK')
        self.assertIn(('Set-Cookie', 'y=2'), r.http_headers('res-hdr'))
        self.assertEqual(result('noadapt', tid)['icap_response_code'], 200)

    def test_204_during_preview_without_allow(self):
        head, rest = build('RESPMOD', 'noadapt', self.port, res_hdr=RES,
                           body=b'z' * 5000, preview=100)
        with Client(self.port) as c:
            r, got_100 = c.transact(head, rest)
        self.assertFalse(got_100)
        self.assertEqual(r.status, 204)

    def test_echo_bodyless_reqmod(self):
        r = request(self.port, 'REQMOD', 'noadapt',
                    req_hdr=http_request_head('GET', 'http://a.test/x'))
        self.assertEqual(r.status, 200)
        self.assertEqual(r.section_lines('req-hdr')[0],
                         'GET http://a.test/x HTTP/1.1')

    def test_set_enc_request_headers_and_chunks(self):
        r = request(self.port, 'REQMOD', 'modify', req_hdr=REQ,
                    body=b'hello world', allow=(204,))
        self.assertEqual(r.status, 200)
        lines = r.section_lines('req-hdr')
        self.assertEqual(lines[0], 'POST http://changed.test/new HTTP/1.1')
        hdrs = r.http_headers('req-hdr')
        self.assertEqual([v for k, v in hdrs if k == 'Cookie'],
                         ['a=1', 'b=2'])
        self.assertIn(('Host', 'changed.test'), hdrs)
        self.assertEqual(r.body, b'hello worldmore')
        self.assertEqual(r.header('X-Modified'), 'yes')
        self.assertEqual(r.header_all('X-Multi'), ['1', '2'])
        self.assertIn('req-body', r.encapsulated)
        self.assertEqual(result('modify')['icap_response_code'], 200)

    def test_set_enc_status_block_page(self):
        r = request(self.port, 'REQMOD', 'block', req_hdr=REQ,
                    body=b'hello world')
        self.assertEqual(r.status, 200)
        self.assertEqual(r.section_lines('res-hdr')[0],
                         'HTTP/1.1 403 Forbidden')
        self.assertIn('res-body', r.encapsulated)
        self.assertEqual(r.body, b'blocked')

    def test_send_headers_without_body(self):
        r = request(self.port, 'REQMOD', 'blockhead', req_hdr=REQ)
        self.assertEqual(r.status, 200)
        self.assertIn('null-body', r.encapsulated)
        self.assertIsNone(r.body)
        self.assertEqual(r.section_lines('res-hdr')[0],
                         'HTTP/1.1 403 Forbidden')

    def test_send_enc_error(self):
        r = request(self.port, 'REQMOD', 'encerror', req_hdr=REQ)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.section_lines('res-hdr')[0],
                         'HTTP/1.1 403 Forbidden')
        self.assertEqual(r.body, b'<p>no</p>')

    def test_send_error(self):
        r = request(self.port, 'REQMOD', 'error', req_hdr=REQ)
        self.assertEqual(r.status, 403)
        self.assertEqual(result('error')['icap_response_code'], 403)

    def test_icap_error_exception(self):
        r = request(self.port, 'REQMOD', 'icaperror', req_hdr=REQ)
        self.assertEqual(r.status, 403)

    def test_missing_method_and_service_404(self):
        r = request(self.port, 'REQMOD', 'only', req_hdr=REQ)
        self.assertEqual(r.status, 404)
        r = request(self.port, 'RESPMOD', 'no-such-service', res_hdr=RES)
        self.assertEqual(r.status, 404)

    def test_keepalive_several_transactions(self):
        with Client(self.port) as c:
            for i in range(5):
                head, _ = build('RESPMOD', 'noadapt', self.port, res_hdr=RES,
                                body=b'%d' % i * 100, allow=(204,))
                r, _ = c.transact(head)
                self.assertEqual(r.status, 204)
            head, _ = build('RESPMOD', 'copy', self.port, res_hdr=RES,
                            body=b'last')
            r, _ = c.transact(head)
            self.assertEqual(r.body, b'last')


class FailureTest(PyicapTestBase):
    def test_handler_raises_500_with_traceback(self):
        capture = LogCapture()
        logging.getLogger('libicap').addHandler(capture)
        try:
            n = len(self.logs)
            with Client(self.port) as c:
                head, _ = build('REQMOD', 'raises', self.port, req_hdr=REQ,
                                body=b'x' * 10)
                r, _ = c.transact(head)
                self.assertEqual(r.status, 500)
                self.assertTrue(c.closed_by_peer())
            deadline = time.time() + 5
            while time.time() < deadline and not any(
                    'ValueError' in m for _, m in self.logs[n:]):
                time.sleep(0.05)
            text = '\n'.join(m for _, m in self.logs[n:])
            self.assertIn('Traceback (most recent call last)', text)
            self.assertIn('ValueError: handler failure for the test', text)
            self.assertIn('raises_REQMOD', text)
        finally:
            logging.getLogger('libicap').removeHandler(capture)

    def test_handler_raises_after_response_started(self):
        with Client(self.port) as c:
            head, _ = build('RESPMOD', 'raises_late', self.port, res_hdr=RES,
                            body=b'x' * 10)
            c.send(head)
            try:
                r = c.read_response()
            except (EOFError, ValueError, ConnectionError):
                r = None   # cut off mid-body: fine
            if r is not None:
                self.assertNotEqual(r.body, b'partial')  # not a clean end
            self.assertTrue(c.closed_by_peer())

    def test_handler_without_answer_gets_500(self):
        r = request(self.port, 'REQMOD', 'silent', req_hdr=REQ)
        self.assertEqual(r.status, 500)

    def test_unended_body_is_ended(self):
        r = request(self.port, 'RESPMOD', 'unended', res_hdr=RES, body=b'q')
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, b'abc')

    def test_second_empty_chunk_is_ignored(self):
        n = len(self.logs)
        r = request(self.port, 'RESPMOD', 'endtwice', res_hdr=RES, body=b'q')
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, b'')
        self.assertTrue(result('endtwice')['after'])
        self.assertEqual([m for _, m in self.logs[n:] if 'raised' in m], [])

    def test_server_still_serves_after_failures(self):
        r = request(self.port, 'REQMOD', 'noadapt', req_hdr=REQ,
                    allow=(204,))
        self.assertEqual(r.status, 204)


class RobustnessTest(PyicapTestBase):
    def assert_no_leaks(self):
        # Every transaction the pyicap layer saw is forgotten once its
        # answer is complete or it ended under the handler.
        deadline = time.time() + 5
        while time.time() < deadline and self.server._txns:
            time.sleep(0.05)
        self.assertEqual(self.server._txns, {})

    def test_client_gone_while_handler_reads(self):
        head, _ = build('RESPMOD', 'partial', self.port, res_hdr=RES,
                        body=b'y' * 10000)
        cut = head.index(b'2710\r\n') + 6 + 100     # 100 body bytes
        with Client(self.port) as c:
            c.send(head[:cut])
            time.sleep(0.3)
        f = result('partial')
        self.assertLessEqual(f['got'], 100)
        r = request(self.port, 'RESPMOD', 'noadapt', res_hdr=RES,
                    body=b'ok', allow=(204,))
        self.assertEqual(r.status, 204)
        self.assert_no_leaks()

    def test_concurrent_transactions(self):
        errors = []
        bodies = [os.urandom(1000 + 997 * i) for i in range(8)]

        def worker(n):
            try:
                with Client(self.port) as c:
                    for i in range(5):
                        body = bodies[(n + i) % len(bodies)]
                        head, rest = build('RESPMOD', 'preview', self.port,
                                           res_hdr=RES, body=body,
                                           preview=512)
                        r, _ = c.transact(head, rest)
                        if r.body != body:
                            errors.append('body mismatch %d/%d' % (n, i))
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))

        threads = [threading.Thread(target=worker, args=(n,))
                   for n in range(30)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertEqual(errors, [])
        while not RESULTS.empty():
            RESULTS.get_nowait()
        self.assert_no_leaks()


class DefaultLogTest(unittest.TestCase):
    """Without a log callback, tracebacks go to the logging module."""

    def test_traceback_to_logging(self):
        capture = LogCapture()
        lg = logging.getLogger('libicap')
        lg.addHandler(capture)
        old = lg.level
        lg.setLevel(logging.DEBUG)
        server = ThreadingServer(('127.0.0.1', 0), Handler)
        t = threading.Thread(target=server.serve_forever, daemon=True)
        t.start()
        try:
            r = request(server.server_address[1], 'REQMOD', 'raises',
                        req_hdr=REQ)
            self.assertEqual(r.status, 500)
            deadline = time.time() + 5
            while time.time() < deadline and not any(
                    'ValueError' in m for m in capture.records):
                time.sleep(0.05)
            self.assertTrue(any('Traceback' in m and 'ValueError' in m
                                for m in capture.records), capture.records)
        finally:
            server.shutdown()
            server.server_close()
            lg.removeHandler(capture)
            lg.setLevel(old)


class PlainServerTest(unittest.TestCase):
    """No ThreadingMixIn: handlers run in the handle_request() caller."""

    def test_handle_request_blocking_reads(self):
        server = ICAPServer(('127.0.0.1', 0), Handler)
        port = server.server_address[1]
        try:
            body = os.urandom(200000)
            out = {}

            def client():
                head, rest = build('RESPMOD', 'preview', port, res_hdr=RES,
                                   body=body, preview=1000)
                with Client(port) as c:
                    out['r'] = c.transact(head, rest)

            t = threading.Thread(target=client)
            t.start()
            server.handle_request()           # serves exactly that one
            t.join(20)
            r, got_100 = out['r']
            self.assertTrue(got_100)
            self.assertEqual(r.body, body)
        finally:
            server.server_close()

    def test_handle_request_timeout(self):
        calls = []

        class S(ICAPServer):
            timeout = 0.2

            def handle_timeout(self):
                calls.append(1)

        server = S(('127.0.0.1', 0), Handler)
        try:
            t0 = time.monotonic()
            server.handle_request()
            self.assertEqual(calls, [1])
            self.assertLess(time.monotonic() - t0, 5)
        finally:
            server.server_close()

    def test_close_while_handler_blocks_in_read(self):
        server = ThreadingServer(('127.0.0.1', 0), Handler,
                                 limits={'drain_timeout_ms': 300})
        port = server.server_address[1]
        t = threading.Thread(target=server.serve_forever, daemon=True)
        t.start()
        while not RESULTS.empty():
            RESULTS.get_nowait()
        head, _ = build('RESPMOD', 'stuck', port, res_hdr=RES,
                        body=b'y' * 10000)
        c = Client(port)
        try:
            c.send(head[:head.index(b'2710\r\n') + 6 + 100])
            self.assertTrue(result('stuck')['entered'])
            t0 = time.monotonic()
            server.shutdown()
            server.server_close()      # joins the handler thread too
            self.assertLess(time.monotonic() - t0, 8)
            self.assertLessEqual(result('stuck')['got'], 100)
            self.assertTrue(c.closed_by_peer())
        finally:
            c.close()

    def test_context_manager_and_close_idempotent(self):
        with ICAPServer(('127.0.0.1', 0), Handler) as server:
            self.assertGreater(server.server_address[1], 0)
        server.server_close()

    def test_forking_mixin_refused(self):
        if not hasattr(socketserver, 'ForkingMixIn'):
            self.skipTest('no ForkingMixIn on this platform')

        class F(socketserver.ForkingMixIn, ICAPServer):
            pass

        with self.assertRaises(TypeError):
            F(('127.0.0.1', 0), Handler)


if __name__ == '__main__':
    unittest.main()
