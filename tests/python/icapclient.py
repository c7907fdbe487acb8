# SPDX-License-Identifier: MIT
"""A small raw-socket ICAP client for the Python binding tests (stdlib).

It writes requests byte by byte as the test says and parses responses
strictly: status line, ICAP headers, the encapsulated header sections
sized by the Encapsulated offsets, and a chunked body.
"""

import socket

CRLF = b'\r\n'


def chunked(data, size=None):
    """`data` as ICAP chunks, without the last-chunk."""
    if not data:
        return b''
    size = size or len(data)
    out = []
    for i in range(0, len(data), size):
        piece = data[i:i + size]
        out.append(b'%x\r\n' % len(piece) + piece + CRLF)
    return b''.join(out)


def http_request_head(method='GET', uri='http://example.test/', headers=(),
                      version='HTTP/1.1'):
    lines = ['%s %s %s' % (method, uri, version)]
    lines += ['%s: %s' % kv for kv in headers]
    return ('\r\n'.join(lines) + '\r\n\r\n').encode('latin-1')


def http_response_head(status='HTTP/1.1 200 OK', headers=()):
    lines = [status] + ['%s: %s' % kv for kv in headers]
    return ('\r\n'.join(lines) + '\r\n\r\n').encode('latin-1')


def build(method, service, port, *, req_hdr=None, res_hdr=None, body=None,
          preview=None, allow=(), headers=(), chunk=None, host='127.0.0.1',
          body_kind=None):
    """Build an ICAP request.  Returns (head_and_preview, rest): send the
    first part, and `rest` only after a 100 Continue (rest is None without
    a preview or when the preview holds the whole body)."""
    sections = []
    blob = b''
    if req_hdr is not None:
        sections.append(('req-hdr', len(blob)))
        blob += req_hdr
    if res_hdr is not None:
        sections.append(('res-hdr', len(blob)))
        blob += res_hdr
    if body is not None:
        kind = body_kind or ('req-body' if method == 'REQMOD' else 'res-body')
        sections.append((kind, len(blob)))
    elif method != 'OPTIONS' or sections:
        sections.append(('null-body', len(blob)))
    lines = ['%s icap://%s:%d/%s ICAP/1.0' % (method, host, port, service),
             'Host: %s:%d' % (host, port)]
    if sections:
        lines.append('Encapsulated: ' + ', '.join('%s=%d' % s
                                                   for s in sections))
    if preview is not None:
        lines.append('Preview: %d' % preview)
    if allow:
        lines.append('Allow: ' + ', '.join(str(a) for a in allow))
    lines += ['%s: %s' % kv for kv in headers]
    head = ('\r\n'.join(lines) + '\r\n\r\n').encode('latin-1') + blob
    if body is None:
        if preview is not None and method != 'OPTIONS':
            pass  # Preview: 0 with null-body: nothing follows (as Squid)
        return head, None
    if preview is None:
        return head + chunked(body, chunk) + b'0\r\n\r\n', None
    first = body[:preview]
    if len(body) <= preview:
        return head + chunked(first, chunk) + b'0; ieof\r\n\r\n', None
    return (head + chunked(first, chunk) + b'0\r\n\r\n',
            chunked(body[preview:], chunk) + b'0\r\n\r\n')


class Response:
    def __init__(self):
        self.status = None
        self.reason = None
        self.version = None
        self.headers = []          # (name, value) in order
        self.encapsulated = {}
        self.sections = {}         # 'req-hdr'/'res-hdr' -> raw bytes
        self.body = None           # bytes, or None without a body
        self.chunk_exts = []       # extensions of the last-chunk

    def header(self, name, default=None):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return default

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def section_lines(self, name):
        raw = self.sections.get(name, b'')
        return raw.decode('latin-1').split('\r\n')[:-2] if raw else []

    def http_headers(self, name):
        """[(name, value)] of an encapsulated section (without start line)."""
        out = []
        for line in self.section_lines(name)[1:]:
            k, _, v = line.partition(':')
            out.append((k, v.strip()))
        return out

    def __repr__(self):
        return '<Response %s %s %r>' % (self.status, self.reason,
                                        self.encapsulated)


class Client:
    def __init__(self, port, host='127.0.0.1', timeout=20):
        self.port = port
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b''

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        data = self.sock.recv(1 << 16)
        if not data:
            raise EOFError('connection closed by the server')
        self.buf += data

    def _readline(self):
        while CRLF not in self.buf:
            if len(self.buf) > 1 << 20:
                raise ValueError('line too long')
            self._fill()
        line, self.buf = self.buf.split(CRLF, 1)
        return line

    def _read(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def closed_by_peer(self, timeout=5):
        """True if the server closes the connection (EOF) within timeout."""
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(1 << 16)
                if not data:
                    return True
                self.buf += data
        except (socket.timeout, TimeoutError):
            return False
        except ConnectionResetError:
            return True

    def read_response(self):
        r = Response()
        line = self._readline().decode('latin-1')
        parts = line.split(' ', 2)
        if len(parts) < 2 or not parts[0].startswith('ICAP/'):
            raise ValueError('bad status line %r' % line)
        r.version, r.status = parts[0], int(parts[1])
        r.reason = parts[2] if len(parts) > 2 else ''
        while True:
            line = self._readline()
            if not line:
                break
            k, _, v = line.decode('latin-1').partition(':')
            r.headers.append((k.strip(), v.strip()))
        if r.status == 100:
            return r
        enc = r.header('Encapsulated')
        if enc:
            for item in enc.split(','):
                k, _, v = item.strip().partition('=')
                r.encapsulated[k.strip()] = int(v)
        body_key = [k for k in r.encapsulated if k.endswith('-body')]
        ordered = sorted(r.encapsulated.items(), key=lambda kv: kv[1])
        for i, (name, off) in enumerate(ordered):
            if name.endswith('-body'):
                break
            end = ordered[i + 1][1]
            r.sections[name] = self._read(end - off)
        if body_key and body_key[0] != 'null-body':
            r.body = self._read_chunked(r)
        return r

    def _read_chunked(self, r):
        out = []
        while True:
            line = self._readline().decode('latin-1')
            size_s, _, ext = line.partition(';')
            size = int(size_s.strip(), 16)
            if size == 0:
                r.chunk_exts = [e.strip() for e in ext.split(';') if e.strip()]
                while self._readline():
                    pass  # trailers
                return b''.join(out)
            out.append(self._read(size))
            if self._read(2) != CRLF:
                raise ValueError('chunk not followed by CRLF')

    def transact(self, head, rest=None):
        """Send a request; after a 100 Continue send `rest`.  Returns
        (final_response, got_100)."""
        self.send(head)
        r = self.read_response()
        got_100 = False
        if r.status == 100:
            got_100 = True
            if rest is not None:
                self.send(rest)
            r = self.read_response()
        return r, got_100


def request(port, *args, **kwargs):
    """One transaction on a new connection."""
    head, rest = build(args[0], args[1], port, *args[2:], **kwargs)
    with Client(port) as c:
        return c.transact(head, rest)[0]
