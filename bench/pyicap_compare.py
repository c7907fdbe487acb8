#!/usr/bin/env python3
"""pyicap_compare.py - the same Python echo service on libicap and on pyicap.

    python3 bench/pyicap_compare.py [--pyicap PATH] [options]

Runs pyicap's README echo service (OPTIONS + RESPMOD with
no_adaptation_required(), a ThreadingMixIn server) twice: once with
``from libicap.pyicap import *`` and, when a pyicap.py is given (``--pyicap
PATH`` to the file or its directory, or the environment variable
PYICAP_PATH), once with ``from pyicap import *``.  Each server runs in its
own process on a free 127.0.0.1 port; load comes from client processes
that send RESPMOD requests on keep-alive connections.  One row per server:

    server          scenario   conns  requests  req/s   p50 ms  p99 ms  errors

Scenarios: ``204`` (Allow: 204, the handler answers 204; the default) and
``echo`` (no Allow: 204, no preview; the body comes back).  pyicap is not
bundled: without it its row says SKIP.  Nothing is downloaded.
Stdlib only; the bindings are taken from this checkout (or PYTHONPATH).
"""

import argparse
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'bindings', 'python')

SERVER_TEMPLATE = r'''
import socketserver, sys
sys.path[:0] = %(path)r
from %(module)s import *

class ThreadingSimpleServer(socketserver.ThreadingMixIn, ICAPServer):
    daemon_threads = True

class ICAPHandler(BaseICAPRequestHandler):
    def echo_OPTIONS(self):
        self.set_icap_response(200)
        self.set_icap_header('Methods', 'RESPMOD')
        self.set_icap_header('Preview', '0')
        self.send_headers(False)

    def echo_RESPMOD(self):
        self.no_adaptation_required()

    def log_message(self, *args):
        pass

server = ThreadingSimpleServer(('127.0.0.1', %(port)d), ICAPHandler)
try:
    server.serve_forever()
except KeyboardInterrupt:
    pass
'''


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def build_request(port, body, allow204):
    res = b'HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n' % len(body)
    head = (b'RESPMOD icap://127.0.0.1:%d/echo ICAP/1.0\r\n'
            b'Host: 127.0.0.1:%d\r\n' % (port, port))
    if allow204:
        head += b'Allow: 204\r\n'
    head += b'Encapsulated: res-hdr=0, res-body=%d\r\n\r\n' % len(res)
    chunks = (b'%x\r\n' % len(body) + body + b'\r\n') if body else b''
    return head + res + chunks + b'0\r\n\r\n'


class Reader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b''

    def fill(self):
        d = self.sock.recv(1 << 16)
        if not d:
            raise EOFError
        self.buf += d

    def line(self):
        while b'\r\n' not in self.buf:
            self.fill()
        line, self.buf = self.buf.split(b'\r\n', 1)
        return line

    def read(self, n):
        while len(self.buf) < n:
            self.fill()
        d, self.buf = self.buf[:n], self.buf[n:]
        return d

    def response(self):
        status = int(self.line().split()[1])
        enc = ''
        while True:
            line = self.line()
            if not line:
                break
            k, _, v = line.decode('latin-1').partition(':')
            if k.strip().lower() == 'encapsulated':
                enc = v.strip()
        offs = {}
        for item in enc.split(','):
            if '=' in item:
                k, v = item.strip().split('=')
                offs[k] = int(v)
        body_at = max(offs.values()) if offs else 0
        if body_at:
            self.read(body_at)
        if any(k.endswith('-body') and k != 'null-body' for k in offs):
            while True:
                size = int(self.line().split(b';')[0], 16)
                if size == 0:
                    while self.line():
                        pass
                    break
                self.read(size + 2)
        return status


def client(args):
    port, nreq, body_size, allow204, deadline = args
    req = build_request(port, os.urandom(body_size), allow204)
    lat, errors = [], 0
    sock = None
    for _ in range(nreq):
        if time.time() > deadline:
            break
        try:
            if sock is None:
                sock = socket.create_connection(('127.0.0.1', port), 10)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                rd = Reader(sock)
            t0 = time.perf_counter()
            sock.sendall(req)
            status = rd.response()
            lat.append(time.perf_counter() - t0)
            if status not in (200, 204):
                errors += 1
        except (OSError, EOFError, ValueError, IndexError):
            errors += 1
            if sock is not None:
                sock.close()
            sock = None
    if sock is not None:
        sock.close()
    return lat, errors


def wait_port(port, proc, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(('127.0.0.1', port), 0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def run_server(name, module, path, opts):
    port = free_port()
    src = SERVER_TEMPLATE % {'path': path, 'module': module, 'port': port}
    with tempfile.NamedTemporaryFile('w', suffix='.py', delete=False) as f:
        f.write(src)
        script = f.name
    proc = subprocess.Popen([sys.executable, script],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    try:
        if not wait_port(port, proc):
            err = proc.stderr.read() if proc.poll() is not None else ''
            return None, 'server did not start: ' + err.strip()[-300:]
        per = max(1, opts.requests // opts.conns)
        deadline = time.time() + opts.max_seconds
        t0 = time.perf_counter()
        with multiprocessing.Pool(opts.conns) as pool:
            results = pool.map(client, [(port, per, opts.body_size,
                                         opts.scenario == '204', deadline)]
                               * opts.conns)
        elapsed = time.perf_counter() - t0
        lat = sorted(x for r in results for x in r[0])
        errors = sum(r[1] for r in results)
        return (len(lat), elapsed, lat, errors), None
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        os.unlink(script)


def pct(lat, p):
    if not lat:
        return float('nan')
    return lat[min(len(lat) - 1, int(len(lat) * p))] * 1000


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--pyicap', default=os.environ.get('PYICAP_PATH'),
                    help='pyicap.py, or the directory holding it')
    ap.add_argument('--scenario', choices=('204', 'echo'), default='204')
    ap.add_argument('--requests', type=int, default=4000)
    ap.add_argument('--conns', type=int, default=8)
    ap.add_argument('--body-size', type=int, default=1024)
    ap.add_argument('--max-seconds', type=float, default=60,
                    help='stop sending after this long per server')
    opts = ap.parse_args()

    rows = [('libicap.pyicap', 'libicap.pyicap', [HERE])]
    if opts.pyicap:
        d = opts.pyicap
        if os.path.isfile(d):
            d = os.path.dirname(os.path.abspath(d))
        if os.path.isfile(os.path.join(d, 'pyicap.py')):
            rows.append(('pyicap', 'pyicap', [d]))
        else:
            rows.append(('pyicap', None, 'no pyicap.py in %s' % d))
    else:
        rows.append(('pyicap', None, 'no --pyicap PATH / PYICAP_PATH'))

    print('%-15s %-8s %5s %8s %9s %7s %7s %6s' % (
        'server', 'scenario', 'conns', 'requests', 'req/s', 'p50 ms',
        'p99 ms', 'errors'))
    for name, module, path in rows:
        if module is None:
            print('%-15s SKIP: %s' % (name, path))
            continue
        res, err = run_server(name, module, path, opts)
        if res is None:
            print('%-15s SKIP: %s' % (name, err))
            continue
        n, elapsed, lat, errors = res
        print('%-15s %-8s %5d %8d %9.0f %7.2f %7.2f %6d' % (
            name, opts.scenario, opts.conns, n, n / elapsed if elapsed else 0,
            pct(lat, 0.5), pct(lat, 0.99), errors), flush=True)


if __name__ == '__main__':
    main()
