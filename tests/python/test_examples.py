# SPDX-License-Identifier: MIT
"""The examples: pyicap's README example (only its import changed) and
echo.py, run as separate processes and stopped with SIGINT."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
import unittest

from icapclient import build, Client, http_response_head, request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
EXAMPLES = os.path.join(ROOT, 'bindings', 'python', 'examples')
README = os.path.join(EXAMPLES, 'pyicap_readme.py')
ECHO = os.path.join(EXAMPLES, 'echo.py')
RES = http_response_head('HTTP/1.1 200 OK', [('Content-Length', '3000')])


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_listening(port, proc, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(('127.0.0.1', port), 0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def start(args):
    env = dict(os.environ)
    return subprocess.Popen([sys.executable] + args, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def stop(proc):
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError('did not stop on SIGINT:\n' + err)
    return proc.returncode, out, err


class ReadmeExampleTest(unittest.TestCase):
    def test_only_import_changed(self):
        with open(README) as f:
            src = f.read()
        imports = re.findall(r'^from \S+ import \*$', src, re.M)
        self.assertEqual(imports, ['from libicap.pyicap import *'])
        self.assertIn('class ThreadingSimpleServer(socketserver.ThreadingMixIn'
                      ', ICAPServer)', src)
        self.assertIn('server.handle_request()', src)

    def test_runs(self):
        with open(README) as f:
            src = f.read()
        port = free_port()
        src = src.replace('port = 13440', 'port = %d' % port)
        self.assertIn('port = %d' % port, src)
        proc = start(['-c', src])
        try:
            self.assertTrue(wait_listening(port, proc),
                            'README example did not listen')
            r = request(port, 'OPTIONS', 'echo')
            self.assertEqual(r.status, 200)
            self.assertEqual(r.header('Methods'), 'RESPMOD')
            self.assertEqual(r.header('Preview'), '0')
            self.assertTrue(r.header('ISTag'))
            self.assertEqual(r.header('Encapsulated'), 'null-body=0')
            body = b'b' * 3000
            r = request(port, 'RESPMOD', 'echo', res_hdr=RES, body=body,
                        allow=(204,))
            self.assertEqual(r.status, 204)
            r = request(port, 'RESPMOD', 'echo', res_hdr=RES, body=body)
            self.assertEqual(r.status, 200)
            self.assertEqual(r.body, body)
        finally:
            rc, out, err = stop(proc)
        self.assertIn('Finished', out, err)
        self.assertEqual(rc, 0, err)


class EchoExampleTest(unittest.TestCase):
    def run_echo(self, mode):
        port = free_port()
        proc = start([ECHO, '--host', '127.0.0.1', '--port', str(port),
                      '--mode', mode, '--quiet'])
        try:
            self.assertTrue(wait_listening(port, proc))
            r = request(port, 'OPTIONS', 'echo')
            self.assertEqual(r.header('Methods'), 'REQMOD, RESPMOD')
            body = os.urandom(100000)
            head, rest = build('RESPMOD', 'echo', port, res_hdr=RES,
                               body=body, preview=0)
            with Client(port) as c:
                r, got_100 = c.transact(head, rest)
                if mode == 'copy':
                    self.assertTrue(got_100)
                    self.assertEqual(r.body, body)
                else:
                    self.assertEqual(r.status, 204)
                head, _ = build('REQMOD', 'echo', port,
                                req_hdr=b'POST http://x.test/ HTTP/1.1\r\n'
                                        b'Host: x.test\r\n\r\n',
                                body=body)
                r, _ = c.transact(head)
                self.assertEqual(r.status, 200)
                self.assertEqual(r.body, body)
        finally:
            rc, out, err = stop(proc)
        self.assertEqual(rc, 0, err)
        self.assertIn('Finished', out)

    def test_noadapt(self):
        self.run_echo('noadapt')

    def test_copy(self):
        self.run_echo('copy')


if __name__ == '__main__':
    unittest.main()
