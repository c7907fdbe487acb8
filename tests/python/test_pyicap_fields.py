# SPDX-License-Identifier: MIT
"""libicap.pyicap: every field a pyicap handler reads has pyicap's type,
value and truthiness.

The expected values are what pyicap.py itself (github.com/netom/pyicap,
commit b705987, the newest; Python 3) computes for the same request: each
check cites the line of pyicap.py that makes the value.  pyicap works on
bytes read from the socket, so its fields are bytes (or lists and dicts of
bytes); ``preview`` is the header's bytes, so ``Preview: 0`` gives b'0',
which is true: pyicap's copy handler ``if self.preview: ... cont()`` then
asks for the rest of the body (test_classic_copy_handler_preview_0).
"""

import queue
import socketserver
import unittest

from icapclient import Client, build, http_request_head, http_response_head, \
    request

from libicap.pyicap import BaseICAPRequestHandler, ICAPServer
from pyicap_copy_server import SEEN as COPIES, CopyHandler
from serving import Serving

SEEN = queue.Queue()
FIELDS = ('command', 'request_uri', 'request_version', 'requestline',
          'servicename', 'headers', 'encapsulated', 'preview', 'allow',
          'client_ip', 'enc_req', 'enc_req_headers', 'enc_res_status',
          'enc_res_headers', 'has_body', 'ieof', 'eob', 'methos',
          'icap_headers', 'enc_headers', 'enc_status', 'enc_request',
          'icap_response_code', 'close_connection')


class FieldsHandler(BaseICAPRequestHandler):
    def log_message(self, format, *args):
        pass

    def fields_OPTIONS(self):
        SEEN.put({k: getattr(self, k) for k in FIELDS})
        self.set_icap_response(200)
        self.send_headers(False)

    def fields_RESPMOD(self):
        SEEN.put({k: getattr(self, k) for k in FIELDS})
        self.no_adaptation_required()

    fields_REQMOD = fields_RESPMOD


class Handler(FieldsHandler, CopyHandler):
    """Services fields and copy on one server."""


class Server(socketserver.ThreadingMixIn, ICAPServer):
    daemon_threads = True


REQ = http_request_head('GET', 'http://example.test/a?b=1',
                        [('Host', 'example.test'), ('Accept', '*/*'),
                         ('X-Twice', 'one'), ('x-twice', ' two ')])
RES = http_response_head('HTTP/1.1 200 OK',
                         [('Content-Type', 'text/plain'),
                          ('Content-Length', '11')])


class FieldsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.serving = Serving(Server(('127.0.0.1', 0), Handler))
        cls.port = cls.serving.port

    @classmethod
    def tearDownClass(cls):
        cls.serving.close()

    def seen(self):
        return SEEN.get(timeout=10)

    def assertTyped(self, value, expected):
        """Equal, of the same type, and as true or false."""
        self.assertEqual(value, expected)
        self.assertIs(type(value), type(expected))
        self.assertEqual(bool(value), bool(expected))

    def test_respmod_with_preview_0_allow_and_client_ip(self):
        head, rest = build('RESPMOD', 'fields', self.port, req_hdr=REQ,
                           res_hdr=RES, body=b'hello world', preview=0,
                           allow=(204,), headers=[('X-Client-IP', '10.9.8.7')])
        with Client(self.port) as c:
            r, _ = c.transact(head, rest)
        self.assertEqual(r.status, 204)
        f = self.seen()
        uri = b'icap://127.0.0.1:%d/fields' % self.port
        # line 388: the request line's words, bytes
        self.assertTyped(f['command'], b'RESPMOD')
        self.assertTyped(f['request_uri'], uri)
        self.assertTyped(f['request_version'], b'ICAP/1.0')
        # lines 381-382: the raw request line without its CRLF
        self.assertTyped(f['requestline'], b'RESPMOD ' + uri + b' ICAP/1.0')
        # line 459: the URI's path without slashes
        self.assertTyped(f['servicename'], b'fields')
        # lines 175-184 and 420: lower-case keys, lists of stripped values
        h = f['headers']
        self.assertIs(type(h), dict)
        self.assertEqual(h[b'preview'], [b'0'])
        self.assertEqual(h[b'allow'], [b'204'])
        self.assertEqual(h[b'x-client-ip'], [b'10.9.8.7'])
        self.assertEqual(h[b'host'], [b'127.0.0.1:%d' % self.port])
        # lines 426-431: offsets as int under bytes keys
        enc_len = len(REQ) + len(RES)
        self.assertTyped(f['encapsulated'], {b'req-hdr': 0,
                                             b'res-hdr': len(REQ),
                                             b'res-body': enc_len})
        # line 433: the header's bytes, so Preview: 0 is b'0', which is
        # true (an int 0 would be false)
        self.assertTyped(f['preview'], b'0')
        self.assertTrue(f['preview'])
        # lines 434-436: a list of the first Allow header's tokens
        self.assertTyped(f['allow'], [b'204'])
        self.assertIn(b'204', f['allow'])
        # lines 437-438: the first X-Client-IP value
        self.assertTyped(f['client_ip'], b'10.9.8.7')
        # lines 447-452 and 167-173: the start lines split in three
        self.assertTyped(f['enc_req'], [b'GET', b'http://example.test/a?b=1',
                                        b'HTTP/1.1'])
        self.assertTyped(f['enc_req_headers'], {
            b'host': [b'example.test'], b'accept': [b'*/*'],
            b'x-twice': [b'one', b'two']})
        self.assertTyped(f['enc_res_status'], [b'HTTP/1.1', b'200', b'OK'])
        self.assertTyped(f['enc_res_headers'], {
            b'content-type': [b'text/plain'], b'content-length': [b'11']})
        # line 453-454: a res-body in RESPMOD
        self.assertIs(f['has_body'], True)
        # lines 489-501: the handler's initial state
        self.assertIs(f['ieof'], False)
        self.assertIs(f['eob'], False)
        self.assertIsNone(f['methos'])
        self.assertTyped(f['icap_headers'], {})
        self.assertTyped(f['enc_headers'], {})
        self.assertIsNone(f['enc_status'])
        self.assertIsNone(f['enc_request'])
        self.assertIsNone(f['icap_response_code'])
        # line 379
        self.assertIs(f['close_connection'], False)

    def test_reqmod_without_preview_allow_or_client_ip(self):
        r = request(self.port, 'REQMOD', 'fields', req_hdr=REQ)
        self.assertEqual(r.status, 200)
        f = self.seen()
        self.assertTyped(f['command'], b'REQMOD')
        # line 433: no Preview header
        self.assertIsNone(f['preview'])
        # lines 434-436: without Allow the list holds one empty token, so
        # it is true although nothing is allowed
        self.assertTyped(f['allow'], [b''])
        self.assertTrue(f['allow'])
        self.assertNotIn(b'204', f['allow'])
        # lines 437-438 index the default bytes as well: without an
        # X-Client-IP header pyicap's client_ip is 78, ord('N')
        self.assertTyped(f['client_ip'], 78)
        # lines 440-445: req-hdr read, null-body: no body
        self.assertTyped(f['encapsulated'], {b'req-hdr': 0,
                                             b'null-body': len(REQ)})
        self.assertIs(f['has_body'], False)
        self.assertEqual(f['enc_req'][0], b'GET')
        # lines 482-485: no HTTP response in a REQMOD
        self.assertIsNone(f['enc_res_status'])
        self.assertTyped(f['enc_res_headers'], {})

    def test_options(self):
        r = request(self.port, 'OPTIONS', 'fields')
        self.assertEqual(r.status, 200)
        f = self.seen()
        self.assertTyped(f['command'], b'OPTIONS')
        # lines 426-427: Encapsulated is parsed for REQMOD/RESPMOD only
        self.assertTyped(f['encapsulated'], {})
        self.assertIs(f['has_body'], False)
        self.assertIsNone(f['enc_req'])
        self.assertTyped(f['enc_req_headers'], {})
        self.assertIsNone(f['preview'])

    def test_classic_copy_handler_preview_0(self):
        # pyicap_copy_server's handler behind a client that previews 0 bytes,
        # as Squid does with the Preview: 0 of this OPTIONS: b'0' is true, so the
        # handler sends 100 Continue and copies the whole body.  With an
        # int 0 it would skip the branch and answer with an empty body.
        body = b'0123456789' * 700
        r = request(self.port, 'OPTIONS', 'copy')
        self.assertEqual(r.header('Preview'), '0')
        res = http_response_head('HTTP/1.1 200 OK', [
            ('Content-Length', str(len(body)))])
        head, rest = build('RESPMOD', 'copy', self.port, res_hdr=res,
                           body=body, preview=0)
        with Client(self.port) as c:
            r, got_100 = c.transact(head, rest)
        self.assertTrue(got_100)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, body)
        self.assertEqual(COPIES.get(timeout=10), {'took_branch': True})


if __name__ == '__main__':
    unittest.main()
