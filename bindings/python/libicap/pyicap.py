# SPDX-License-Identifier: MIT
"""pyicap's API on libicap.

A drop-in for pyicap (https://github.com/netom/pyicap): change
``from pyicap import *`` into ``from libicap.pyicap import *`` and the
service runs on libicap's event loop (``bindings/python/examples/
pyicap_readme.py`` is pyicap's README example with only that line changed).

How it maps
-----------
- Threads as in pyicap.  libicap's C loop owns the sockets and parses
  every request; the transactions of one client connection go, in order,
  to one ``BaseICAPRequestHandler`` instance, as in pyicap, whose
  ``handle()`` serves a connection's keep-alive requests one after the
  other.  The socketserver ``request`` is that connection: with
  ``socketserver.ThreadingMixIn`` each connection gets a thread of its own
  (reused for all its transactions, ended when the connection has been
  idle for libicap's idle timeout); without it the connections are served
  one at a time in the thread that calls ``handle_request()`` or
  ``serve_forever()``: ``handle_request()`` serves one connection's
  requests while they come back to back and returns when it has been
  quiet for half a second (libicap tells no connection close) or another
  connection has a request waiting.
- A handler may block (sleep, call a scanner, wait for a lock): only its
  connection waits, the loop keeps serving every other one.
  ``read_chunk()`` blocks until data or the end arrives: the body is
  pushed from the loop to the handler's thread as it comes (the first
  ``read_chunk()`` turns the push on), with backpressure.
- Answers do not wait: ``send_headers()``, ``send_chunk()``,
  ``no_adaptation_required()``, ``send_error()`` and ``cont()`` queue
  their operation for the loop, and operations queued while one post is
  on its way travel with it (``icap_request_post``, the library's one
  thread-safe entry point).  An operation the library refuses (a header
  value with a CR or LF, say) is logged with the handler's name and the
  transaction fails (500, or the connection is closed if the answer had
  started).  ``send_chunk()`` waits while more than 1 MiB is queued for a
  slow client.
- The fields are those pyicap's ``parse_request()`` makes, with its types:
  bytes (``command == b'RESPMOD'``), lists of bytes for ``enc_req``,
  ``enc_res_status`` and ``allow``, dicts of lists with lower-case bytes
  keys for the header blocks, ``preview`` the header's bytes or None.
  They are computed from the request's raw header blocks the first time a
  handler reads them.  Setters take bytes or str (str is encoded as
  latin-1, or UTF-8 beyond it); bodies are bytes.
- ISTag, Date, Server, Encapsulated and Connection are written by libicap;
  ``set_icap_header(b'ISTag', ...)`` changes the service's ISTag, the
  others are ignored.  An OPTIONS answer keeps every generated header
  (Service, ISTag, Max-Connections, Options-TTL, Allow, Preview,
  Transfer-*) the handler did not set itself.
- An exception in a handler answers 500 (or closes the connection if the
  response had started) and is logged with its traceback through the
  server's log callback (default: the ``logging`` logger "libicap");
  ``ICAPError(code)`` answers ``code``.  A handler that returns without
  answering gets 500 too; one that sent a body without the final empty
  chunk has its body ended.
- ``socketserver.ForkingMixIn`` is not supported (libicap runs threads).
"""

import collections
import logging
import queue
import re
import socket
import socketserver
import sys
import threading
import time
from ctypes import byref, c_char_p, c_size_t, string_at
from urllib.parse import urlparse

from . import _lib
from ._lib import (BODY_CB, BODY_END, BODY_IEOF, BODY_PREVIEW_END, HANDLER_CB,
                   POST_CB, Error, ErrorCode, Limit, check, enc, lib)
from .server import Server, logger

__version__ = '1.0'

__all__ = ['ICAPServer', 'BaseICAPRequestHandler', 'ICAPError',
           'ThreadingICAPServer']


class ICAPError(Exception):
    """Signals a protocol error: the transaction is answered with `code`.

    As in pyicap, ``message`` defaults to the ``_responses`` entry of the
    code (a (short, long) tuple of bytes)."""

    def __init__(self, code=500, message=None):
        if message is None:
            message = BaseICAPRequestHandler._responses.get(
                code, (b'Unknown', b''))
        self.message = message
        super().__init__(message)
        self.code = code


class TransactionGone(Exception):
    """The transaction ended (client gone, timeout, server stopped) while a
    handler still worked on it.  Caught by the handler machinery."""


_METHOD_RE = re.compile(r'^(.+)_(OPTIONS|REQMOD|RESPMOD)$')
_COMMANDS = {_lib.METHOD_OPTIONS: b'OPTIONS', _lib.METHOD_REQMOD: b'REQMOD',
             _lib.METHOD_RESPMOD: b'RESPMOD'}
# Written by libicap itself: never passed through from set_icap_header().
_LIBRARY_HEADERS = frozenset(['istag', 'date', 'server', 'encapsulated',
                              'connection'])
# Backpressure.  send_chunk(): above HIGH bytes queued for the client the
# handler thread waits until the queue is below LOW.  Body push: above
# HIGH bytes delivered to the handler's thread and not read yet, the loop
# pauses the push until the handler has read them down to LOW.
_QUEUE_HIGH = 1 << 20
_QUEUE_LOW = 256 << 10
# How often a handler thread blocked on the loop checks that the loop
# still runs (nobody would wake it otherwise).
_POLL = 0.5


def _text(b):
    return b.decode('latin-1') if isinstance(b, bytes) else str(b)


def _lower(k):
    return (k.decode('latin-1') if isinstance(k, bytes) else str(k)).lower()


def _as_bytes(data):
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode('latin-1')
    return bytes(data)


# ------------------------------------------------------ pyicap's parsing ---
# The fields are computed exactly as pyicap.py (netom/pyicap, b705987)
# computes them from the wire, here from the header blocks libicap parsed
# and checked; the line numbers cite that file.

def _header_dict(lines):
    """pyicap's _read_headers() (lines 175-184): lower-case bytes keys,
    lists of stripped bytes values."""
    headers = {}
    for line in lines:
        line = line.strip()
        if line == b'':
            break
        k, v = line.split(b':', 1)
        headers[k.lower()] = headers.get(k.lower(), []) + [v.strip()]
    return headers


def _http_block(raw):
    """(first line split as pyicap's _read_request()/_read_status(), lines
    167-173, headers) of a raw encapsulated header block."""
    lines = raw.split(b'\n')
    return lines[0].strip().split(b' ', 2), _header_dict(lines[1:])


class _lazy:
    """A field computed on first read and then stored on the instance (a
    non-data descriptor: pyicap code may also assign the attribute)."""

    def __init__(self, fn):
        self.fn = fn
        self.name = fn.__name__

    def __get__(self, obj, cls=None):
        if obj is None:
            return self
        value = self.fn(obj)
        obj.__dict__[self.name] = value
        return value


def _lazy_part(name, block, index):
    """A _lazy field: part `index` of what method `block` returns."""
    def fn(self):
        return getattr(self, block)()[index]
    fn.__name__ = name
    return _lazy(fn)


# --------------------------------------------------------- transactions ---

class _Box:
    """A one-shot result handed from the loop thread to a handler thread."""
    __slots__ = ('event', 'done', 'value', 'exc')

    def __init__(self):
        self.event = threading.Event()
        self.done = False
        self.value = self.exc = None

    def set(self, value=None, exc=None):
        if not self.done:
            self.done = True
            self.value, self.exc = value, exc
            self.event.set()


class _Txn:
    """One ICAP transaction, shared by the loop thread and one handler
    thread.

    The loop thread makes it in the handler callback, with what the C
    library parsed (copied: the handler thread may not call into C) and one
    request reference, the "token" that the next post carries.  The handler
    thread queues operations with :meth:`queue`; the first one queued while
    no post is on its way posts the token, and the loop thread runs every
    operation queued until then (:meth:`drain`).  Unless an operation
    completed the answer, the loop then takes a new reference for the next
    post; so one reference is outstanding until the answer is complete.
    """

    __slots__ = ('server', 'key', 'p', 'method', 'uri', 'items', 'raw_req',
                 'raw_res', 'client_address', 'lock', 'ops', 'posting',
                 'token', 'final', 'answered', 'ended', 'state', 'body',
                 'buffered', 'paused', 'preview_over', 'ieof', 'preview_data',
                 'wq', 'box', 'failed')

    def __init__(self, server, key, p, method, uri, items, raw_req, raw_res,
                 client_address):
        self.server = server
        self.key = key
        self.p = p
        self.method = method
        self.uri = uri
        self.items = items
        self.raw_req = raw_req
        self.raw_res = raw_res
        self.client_address = client_address
        self.lock = threading.Lock()
        self.ops = []
        self.posting = False
        self.token = True          # the reference taken at dispatch
        self.final = False         # handler side: the answer is queued
        self.answered = False      # loop side: the answer is complete
        self.ended = 0             # < 0: the transaction ended under us
        self.failed = False        # loop side: an operation was refused
        self.state = 'new'         # handler side: new -> body -> done
        self.body = None           # queue of (bytes, flags) once pushed
        self.buffered = 0
        self.paused = False
        self.preview_over = False  # loop side: pause only after it
        self.ieof = False          # loop side: the preview held the body
        self.preview_data = []     # what the handler read of the preview
        self.wq = 0                # write queue size after the last send
        self.box = None            # a synchronous call's result

    # ------------------------------------------------- handler thread ---
    def queue(self, op, final=False):
        """Queue ``op(txn, p)`` for the loop thread; never waits."""
        with self.lock:
            if self.ended:
                raise TransactionGone(self.ended)
            if self.final:
                raise Error(ErrorCode.ESTATE,
                            'pyicap: the response is already complete')
            self.ops.append(op)
            if final:
                self.final = True
            if self.posting or not self.token:
                return
            self.posting = True
            self.token = False
        self.server._post(self)

    def call(self, fn):
        """Run ``fn(txn, p)`` on the loop thread and return its result."""
        box = self.box = _Box()

        def op(t, p):
            box.set(fn(t, p))

        self.queue(op)
        native = self.server._native
        while not box.event.wait(_POLL):
            if native.wait(0):
                self.ended = self.ended or ErrorCode.ECANCELED
                raise TransactionGone(self.ended)
        self.box = None
        if box.exc is not None:
            raise box.exc
        return box.value

    def next_piece(self):
        """The next (bytes, flags) pushed by the loop; (None, status) when
        the body failed or the transaction ended."""
        body = self.body
        native = self.server._native
        while True:
            try:
                piece = body.get(timeout=_POLL)
                break
            except queue.Empty:
                if native.wait(0):
                    return None, ErrorCode.ECANCELED
        data = piece[0]
        if data:
            with self.lock:
                self.buffered -= len(data)
                resume = self.paused and self.buffered < _QUEUE_LOW
                if resume:
                    self.paused = False
            if resume:
                self.queue(_op_resume)
        return piece

    # ---------------------------------------------------- loop thread ---
    def drain(self, p):
        """Run what the handler queued (post callback, loop thread)."""
        while True:
            with self.lock:
                batch, self.ops = self.ops, []
                if not batch:
                    self.posting = False
                    if not self.answered:
                        lib.icap_request_ref(p)
                        self.token = True
                    return self.answered
            for op in batch:
                if self.answered or self.failed:
                    break
                try:
                    if op(self, p):
                        self.answered = True
                except Error as e:
                    self.fail(p, e)
                except BaseException as e:
                    if self.box is not None:
                        self.box.set(exc=e)
                    self.fail(p, e)

    def fail(self, p, exc):
        """An operation was refused: log it, fail the transaction, and wake
        the handler thread (its next operation raises TransactionGone)."""
        self.failed = True
        self.server._native._emit(
            logging.ERROR, 'pyicap: %s %s: %s (the transaction fails)'
            % (_text(_COMMANDS.get(self.method, b'?')), _text(self.uri), exc))
        lib.icap_request_abort(p, ErrorCode.EHANDLER)
        self.answered = True
        self.ended = ErrorCode.EHANDLER
        if self.body is not None:
            self.body.put((None, self.ended))
        if self.box is not None:
            self.box.set(exc=TransactionGone(self.ended))

    def gone(self, status):
        """The transaction ended before the handler was done with it."""
        with self.lock:
            self.ended = status or ErrorCode.ECANCELED
            self.ops = []
            self.posting = False
            self.token = False
        if self.body is not None:
            self.body.put((None, self.ended))
        if self.box is not None:
            self.box.set(exc=TransactionGone(self.ended))


# Operations run on the loop thread: op(txn, p) -> True when the answer is
# complete (no further operation may follow).

def _op_push(t, p):
    rc = lib.icap_request_set_body_cb(p, t.server._cb_body, t.key)
    if rc == ErrorCode.ESTATE:       # no body left to read: its end
        t.body.put((b'', BODY_END))
    elif rc < 0 and rc != ErrorCode.EBUSY:
        t.body.put((None, rc))


def _op_resume(t, p):
    lib.icap_request_resume(p)


def _op_continue(t, p):
    lib.icap_request_continue(p)   # ESTATE (e.g. no preview) is harmless


def _op_end(t, p):
    check(lib.icap_request_end(p), 'icap_request_end')
    return True


def _op_abort(t, p):
    lib.icap_request_abort(p, ErrorCode.EHANDLER)
    return True


def _op_no_adaptation(t, p):
    rc = lib.icap_request_no_adaptation(p)
    if rc == ErrorCode.ECONSUMED and t.ieof:
        # The handler read the whole body in a preview (ieof) and the
        # client did not allow 204: echo the preview it read.
        data = b''.join(t.preview_data)
        check(lib.icap_request_set_status(p, 200), 'icap_request_set_status')
        check(lib.icap_request_copy_http_head(p, None),
              'icap_request_copy_http_head')
        check(lib.icap_request_send_headers(p, 1), 'icap_request_send_headers')
        check(lib.icap_request_send_chunk(p, data, len(data)),
              'icap_request_send_chunk')
        check(lib.icap_request_end(p), 'icap_request_end')
    else:
        check(rc, 'icap_request_no_adaptation')
    return True


def _op_send_error(code):
    def op(t, p):
        check(lib.icap_request_send_error(p, code), 'icap_request_send_error')
        return True
    return op


def _op_chunk(data):
    def op(t, p):
        check(lib.icap_request_send_chunk(p, data, len(data)),
              'icap_request_send_chunk')
        t.wq = lib.icap_request_write_queue_size(p)
    return op


def _op_queue_size(t, p):
    return lib.icap_request_write_queue_size(p)


def _op_headers(code, icap, enc_request, enc_status, enc_headers, has_body):
    def op(t, p):
        check(lib.icap_request_set_status(p, code), 'icap_request_set_status')
        for k, v in icap:
            check(lib.icap_request_set_icap_header(p, k, v),
                  'icap_request_set_icap_header')
        if enc_request is not None:
            check(lib.icap_request_set_http_request(p, enc_request),
                  'icap_request_set_http_request')
        elif enc_status is not None:
            check(lib.icap_request_set_http_status(p, enc_status),
                  'icap_request_set_http_status')
        for k, v in enc_headers:
            check(lib.icap_request_add_http_header(p, k, v),
                  'icap_request_add_http_header')
        check(lib.icap_request_send_headers(p, int(bool(has_body))),
              'icap_request_send_headers')
        return not has_body
    return op


# ---------------------------------------------------------- connections ---

_CLOSE = object()


class _Connection:
    """One client connection: the ``request`` socketserver hands to a
    handler (pyicap's is the accepted socket).  Its transactions queue
    here in order; the handler serving it takes them one by one."""

    __slots__ = ('key', 'client_address', 'queue')

    def __init__(self, key, client_address):
        self.key = key
        self.client_address = client_address
        self.queue = queue.SimpleQueue()

    def __repr__(self):
        return '<pyicap connection %s:%s>' % self.client_address


class ICAPServer(socketserver.BaseServer):
    """ICAP server: pyicap's ICAPServer (a socketserver server) on libicap.

    ``ICAPServer(server_address, RequestHandlerClass,
    bind_and_activate=True, *, workers=None, log=None,
    log_level=logging.INFO, limits=None)``; the keyword arguments go to
    :class:`libicap.Server` (``workers`` defaults to the class attribute,
    1).  ``server_address[1]`` may be 0; the chosen port is then in
    ``server_address`` after binding.
    """

    workers = 1
    timeout = None
    allow_reuse_address = True
    address_family = socket.AF_INET

    def __init__(self, server_address, RequestHandlerClass,
                 bind_and_activate=True, *, workers=None, log=None,
                 log_level=logging.INFO, limits=None):
        if isinstance(self, getattr(socketserver, 'ForkingMixIn', ())):
            raise TypeError('libicap.pyicap.ICAPServer cannot fork (libicap '
                            'runs threads); use socketserver.ThreadingMixIn')
        super().__init__(server_address, RequestHandlerClass)
        self._native = Server(
            workers=self.workers if workers is None else workers,
            log=log, log_level=log_level, limits=limits)
        self._threaded = isinstance(self, socketserver.ThreadingMixIn)
        self._cv = threading.Condition()
        self._backlog = collections.deque()   # connections not yet handled
        self._conns = {}                      # (ip, port) -> _Connection
        self._conn_lock = threading.Lock()
        self._txns = {}                       # key -> _Txn
        self._keys = iter(range(1, 1 << 62))
        self._closed = False
        self._shutdown_requested = False
        self._is_shut_down = threading.Event()
        self._is_shut_down.set()
        self._service_methods = {}
        self._mnames = {}                     # request URI -> method prefix
        # The C side keeps these until the server is freed.
        self._cb_handler = HANDLER_CB(self._c_handler)
        self._cb_post = POST_CB(self._c_post)
        self._cb_body = BODY_CB(self._c_body)
        self._register_services()
        self._idle = self._native.get_limit(Limit.IDLE_TIMEOUT_MS) / 1000.0
        if bind_and_activate:
            try:
                self.server_bind()
                self.server_activate()
            except BaseException:
                self.server_close()
                raise

    # ----------------------------------------------------------- setup
    def _register_services(self):
        cls = self.RequestHandlerClass
        found = {}
        for attr in dir(cls):
            m = _METHOD_RE.match(attr)
            if m and callable(getattr(cls, attr, None)):
                found.setdefault(m.group(1), set()).add(m.group(2))
        if not found:
            logger.warning('pyicap: %s has no <service>_OPTIONS/_REQMOD/'
                           '_RESPMOD methods: every request gets 404',
                           cls.__name__)
        for name, methods in found.items():
            svc = self._native.add_service(name)
            for method in ('OPTIONS', 'REQMOD', 'RESPMOD'):
                svc._set_c_handler(method, self._cb_handler, 0)
            self._service_methods[name] = methods

    def server_bind(self):
        host, port = self.server_address[:2]
        host = _text(host) if host else '0.0.0.0'
        port = self._native.listen(host, port)
        self.server_address = (host, port)

    def server_activate(self):
        pass  # libicap listens in server_bind; the loops start on demand

    @property
    def native(self):
        """The underlying :class:`libicap.Server`."""
        return self._native

    def _methods_header(self, service):
        ms = [m for m in ('REQMOD', 'RESPMOD')
              if m in self._service_methods.get(service, ())]
        return ', '.join(ms)

    # ------------------------------------------- loop thread callbacks ---
    # None of these may let an exception escape into C.

    def _c_handler(self, p, user):
        try:
            if self._closed:
                return lib.icap_request_send_error(p, 503)
            method = lib.icap_request_method(p)
            n = lib.icap_request_header_count(p, _lib.HEADERS_ICAP)
            name, value = c_char_p(), c_char_p()
            bn, bv = byref(name), byref(value)
            items = []
            header_at = lib.icap_request_header_at
            for i in range(n):
                if header_at(p, 0, i, bn, bv) == 0:
                    items.append((name.value, value.value))
            raw_req = raw_res = None
            if method != _lib.METHOD_OPTIONS:
                ln = c_size_t()
                bl = byref(ln)
                ptr = lib.icap_request_raw_section(p, 0, bl)
                if ptr:
                    raw_req = string_at(ptr, ln.value)
                ptr = lib.icap_request_raw_section(p, 1, bl)
                if ptr:
                    raw_res = string_at(ptr, ln.value)
            addr = (lib.icap_request_client_ip(p).decode('latin-1'),
                    lib.icap_request_client_port(p))
            key = next(self._keys)
            t = _Txn(self, key, p, method, lib.icap_request_uri(p), items,
                     raw_req, raw_res, addr)
            lib.icap_request_ref(p)
            self._txns[key] = t
            self._deliver(t)
            return 0
        except BaseException:
            try:
                self._native.log_exception('pyicap: dispatch failed')
            except BaseException:
                pass
            return ErrorCode.EHANDLER

    def _deliver(self, t):
        key = t.client_address
        with self._conn_lock:
            c = self._conns.get(key)
            new = c is None
            if new:
                c = self._conns[key] = _Connection(key, key)
            c.queue.put(t)
        if new or not self._threaded:
            with self._cv:
                if new:
                    self._backlog.append(c)
                self._cv.notify_all()

    def _c_post(self, p, status, key):
        try:
            t = self._txns.get(key)
            if t is None:
                return
            if status < 0:
                del self._txns[key]
                t.gone(status)
                return
            if t.drain(p):
                self._txns.pop(key, None)
        except BaseException:
            pass

    def _c_body(self, p, status, data, length, key):
        try:
            t = self._txns.get(key)
            if t is None or t.body is None:
                return
            if status < 0:
                t.body.put((None, status))
                return
            if status & (BODY_IEOF | BODY_PREVIEW_END):
                t.preview_over = True
                t.ieof = bool(status & BODY_IEOF)
            if length:
                piece = string_at(data, length)
                with t.lock:
                    t.buffered += length
                    pause = (t.buffered > _QUEUE_HIGH and not t.paused
                             and t.preview_over)
                    if pause:
                        t.paused = True
                if pause:
                    lib.icap_request_pause(p)
            else:
                piece = b''
            t.body.put((piece, status))
        except BaseException:
            pass

    # --------------------------------------------- handler thread side ---
    def _post(self, t):
        native = self._native
        with native._gate:
            if native._accepting_posts:
                rc = lib.icap_request_post(t.p, self._cb_post, t.key)
                if rc == 0:
                    return
                if rc == ErrorCode.ECANCELED:
                    # The loops are gone: the reference is still ours (the
                    # gate keeps the server from being freed meanwhile).
                    lib.icap_request_unref(t.p)
            else:
                rc = ErrorCode.ECANCELED
        self._txns.pop(t.key, None)
        t.gone(rc)
        raise TransactionGone(rc)

    def _next_txn(self, conn):
        """The next transaction of `conn`, or None when the handler of
        `conn` should return (idle, server closing, or - without
        ThreadingMixIn - another connection waiting)."""
        q = conn.queue
        if self._threaded:
            # No event tells that libicap closed the connection: its thread
            # ends after libicap's idle timeout, or when the interpreter
            # shuts down (the main thread ended: pyicap's README example
            # leaves its connection threads non-daemon, and exit waits for
            # them).
            idle = time.monotonic() + self._idle + 1.0
            main = threading.main_thread()
            while True:
                try:
                    t = q.get(timeout=_POLL)
                except queue.Empty:
                    if ((time.monotonic() >= idle or not main.is_alive()
                         or self._native.wait(0)) and self._retire(conn)):
                        return None
                    continue
                return None if t is _CLOSE else t
        # Without threads: the connection's requests are served while they
        # come back to back; once it has been quiet for _POLL seconds (no
        # event tells that the client closed it) or another connection
        # waits, handle() returns and handle_request() with it.
        deadline = time.monotonic() + _POLL
        with self._cv:
            while True:
                if not q.empty():
                    t = q.get()
                    return None if t is _CLOSE else t
                if (self._backlog or self._closed or self._shutdown_requested
                        or time.monotonic() >= deadline):
                    if self._retire(conn):
                        return None
                    continue
                self._cv.wait(min(_POLL, max(0.0, deadline -
                                             time.monotonic())))

    def _retire(self, conn):
        """Forget `conn` unless a transaction arrived meanwhile."""
        with self._conn_lock:
            if not conn.queue.empty():
                return False
            if self._conns.get(conn.key) is conn:
                del self._conns[conn.key]
            return True

    def _release(self, conn, code=None):
        """After a handler of `conn` returned: answer what it left queued
        with `code`, or hand the connection to the next handler."""
        while True:
            if code is None:
                with self._conn_lock:
                    if conn.queue.empty():
                        if self._conns.get(conn.key) is conn:
                            del self._conns[conn.key]
                        return
                with self._cv:
                    self._backlog.append(conn)
                    self._cv.notify_all()
                return
            try:
                t = conn.queue.get_nowait()
            except queue.Empty:
                if self._retire(conn):
                    return
                continue
            if t is not _CLOSE:
                _reject(t, code)

    # ------------------------------------------------------- serving ---
    def _ensure_running(self):
        if self._native._state == 'new':
            self._native.start()

    def _get_request(self, timeout):
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            while not self._backlog:
                if (self._closed or self._shutdown_requested
                        or self._native.wait(0)):
                    return None
                if deadline is None:
                    self._cv.wait(_POLL)
                else:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return None
                    self._cv.wait(min(remaining, _POLL))
            return self._backlog.popleft()

    def get_request(self):
        c = self._get_request(0)
        if c is None:
            raise OSError('no pending ICAP connection')
        return c, c.client_address

    def fileno(self):
        raise OSError('libicap.pyicap.ICAPServer has no selectable socket')

    def handle_request(self):
        """Wait for the next connection with a request (at most
        ``self.timeout`` seconds, forever if None) and handle it; on a
        timeout call ``handle_timeout()``."""
        self._ensure_running()
        c = self._get_request(self.timeout)
        if c is None:
            self.handle_timeout()
            return
        self._dispatch(c)

    def _dispatch(self, c):
        addr = c.client_address
        if self.verify_request(c, addr):
            try:
                self.process_request(c, addr)
            except Exception:
                self.handle_error(c, addr)
                self.shutdown_request(c)
            except BaseException:
                self.shutdown_request(c)
                raise
        else:
            self._release(c, 503 if self._closed else 500)

    def serve_forever(self, poll_interval=0.5):
        """Handle connections until shutdown() (or server_close())."""
        self._ensure_running()
        self._is_shut_down.clear()
        try:
            while not self._shutdown_requested:
                c = self._get_request(poll_interval)
                if c is not None:
                    self._dispatch(c)
                self.service_actions()
                if self._closed or self._native.wait(0):
                    break
        finally:
            self._shutdown_requested = False
            self._is_shut_down.set()

    def shutdown(self):
        """Make serve_forever() return; call it from another thread."""
        self._shutdown_requested = True
        with self._cv:
            self._cv.notify_all()
        self._is_shut_down.wait()

    def shutdown_request(self, request):
        self.close_request(request)

    def close_request(self, request):
        if isinstance(request, _Connection):
            self._release(request, 503 if self._closed else None)

    def handle_error(self, request, client_address):
        self._native.log_exception(
            'pyicap: error while handling a connection from %s:%s'
            % tuple(client_address[:2]))

    def server_close(self):
        """Answer transactions no handler took yet 503, end the connection
        handlers once their current transaction is done, stop the loops
        (in-flight transactions may finish within the drain timeout) and
        free them."""
        with self._cv:
            self._closed = True
            pending = list(self._backlog)
            self._backlog.clear()
            self._cv.notify_all()
        for c in pending:
            self._release(c, 503)
        with self._conn_lock:
            live = list(self._conns.values())
        for c in live:
            c.queue.put(_CLOSE)
        with self._cv:
            self._cv.notify_all()
        self._native.close()


def _reject(t, code):
    """Answer a transaction no handler will see."""
    try:
        t.queue(_op_send_error(code), final=True)
    except (TransactionGone, Error):
        pass


# pyicap's _responses (HTTP's and ICAP's reason phrases, with the long
# messages of Python 2's BaseHTTPServer), one "code short|long" per line.
_RESPONSES = """
100 Continue|Request received, please continue
101 Switching Protocols|Switching to new protocol; obey Upgrade header
200 OK|Request fulfilled, document follows
201 Created|Document created, URL follows
202 Accepted|Request accepted, processing continues off-line
203 Non-Authoritative Information|Request fulfilled from cache
204 No Content|Request fulfilled, nothing follows
205 Reset Content|Clear input form for further input.
206 Partial Content|Partial content follows.
300 Multiple Choices|Object has several resources -- see URI list
301 Moved Permanently|Object moved permanently -- see URI list
302 Found|Object moved temporarily -- see URI list
303 See Other|Object moved -- see Method and URL list
304 Not Modified|Document has not changed since given time
305 Use Proxy|You must use proxy specified in Location to access this resource.
307 Temporary Redirect|Object moved temporarily -- see URI list
400 Bad Request|Bad request syntax or unsupported method
401 Unauthorized|No permission -- see authorization schemes
402 Payment Required|No payment -- see charging schemes
403 Forbidden|Request forbidden -- authorization will not help
404 Not Found|Nothing matches the given URI
405 Method Not Allowed|Specified method is invalid for this resource.
406 Not Acceptable|URI not available in preferred format.
407 Proxy Authentication Required|You must authenticate with this proxy before proceeding.
408 Request Timeout|Request timed out; try again later.
409 Conflict|Request conflict.
410 Gone|URI no longer exists and has been permanently removed.
411 Length Required|Client must specify Content-Length.
412 Precondition Failed|Precondition in headers is false.
413 Request Entity Too Large|Entity is too large.
414 Request-URI Too Long|URI is too long.
415 Unsupported Media Type|Entity body in unsupported format.
416 Requested Range Not Satisfiable|Cannot satisfy request range.
417 Expectation Failed|Expect condition could not be satisfied.
500 Internal Server Error|Server got itself in trouble
501 Not Implemented|Server does not support this operation
502 Bad Gateway|Invalid responses from another server/proxy.
503 Service Unavailable|The server cannot process the request due to a high load
504 Gateway Timeout|The gateway server did not receive a timely response
505 Protocol Version Not Supported|Cannot fulfill request.
"""


def _response_table():
    table = {}
    for line in _RESPONSES.strip().splitlines():
        code, _, rest = line.partition(' ')
        short, _, long_ = rest.partition('|')
        table[int(code)] = (short.encode(), long_.encode())
    return table


class ThreadingICAPServer(socketserver.ThreadingMixIn, ICAPServer):
    """ICAPServer with a thread per connection."""
    daemon_threads = True


class BaseICAPRequestHandler(socketserver.BaseRequestHandler):
    """ICAP request handler base class (pyicap's).

    Subclass it with methods ``<service>_OPTIONS``, ``<service>_REQMOD``
    and/or ``<service>_RESPMOD``.  One instance serves one connection, its
    transactions one after the other, on a thread that may block.
    """

    protocol_version = 'ICAP/1.0'

    # pyicap's table: {code: (short message, long message)}, as bytes.
    _responses = _response_table()

    _sys_version = 'Python/' + sys.version.split()[0]
    _server_version = 'BaseICAP/' + __version__

    _weekdayname = [b'Mon', b'Tue', b'Wed', b'Thu', b'Fri', b'Sat', b'Sun']
    _monthname = [None, b'Jan', b'Feb', b'Mar', b'Apr', b'May', b'Jun',
                  b'Jul', b'Aug', b'Sep', b'Oct', b'Nov', b'Dec']

    # Fields parsed on first read (see _lazy); handle_one_request() forgets
    # the previous transaction's values.
    _LAZY = ('headers', 'encapsulated', 'preview', 'allow', 'client_ip',
             'enc_req', 'enc_req_headers', 'enc_res_status',
             'enc_res_headers', 'has_body')

    # ------------------------------------------------------- lifecycle
    def setup(self):
        pass

    def finish(self):
        pass

    def handle(self):
        """Serve the connection's transactions one after the other, as
        pyicap's handle() serves its keep-alive requests."""
        self.close_connection = False
        self._connection_over = False
        while not self._connection_over:
            self.handle_one_request()

    @_lazy
    def headers(self):
        # pyicap's _read_headers() of the ICAP head (lines 175-184), from
        # the fields libicap parsed: lower-case keys, stripped values.
        h = {}
        for k, v in self._txn.items:
            k = k.lower()
            values = h.get(k)
            if values is None:
                h[k] = [v.strip()]
            else:
                values.append(v.strip())
        return h

    @_lazy
    def encapsulated(self):
        # pyicap.py lines 426-431: parsed for REQMOD and RESPMOD only.
        enc = {}
        if self.command in (b'RESPMOD', b'REQMOD'):
            for item in self.headers.get(b'encapsulated', [b''])[0].split(
                    b','):
                k, v = item.strip().split(b'=')
                enc[k] = int(v)
        return enc

    @_lazy
    def preview(self):
        return self.headers.get(b'preview', [None])[0]      # line 433

    @_lazy
    def allow(self):
        return [x.strip() for x in                            # line 434
                self.headers.get(b'allow', [b''])[0].split(b',')]

    @_lazy
    def client_ip(self):
        # pyicap.py line 437 indexes the default bytes too: without an
        # X-Client-IP header its client_ip is 78 (ord('N')).  Kept as is.
        return self.headers.get(b'x-client-ip', b'No X-Client-IP header')[0]

    def _req_block(self):
        if b'req-hdr' in self.encapsulated and self._txn.raw_req:
            return _http_block(self._txn.raw_req)
        return None, {}

    def _res_block(self):
        if (self.command == b'RESPMOD' and b'res-hdr' in self.encapsulated
                and self._txn.raw_res):
            return _http_block(self._txn.raw_res)
        return None, {}

    # (start line, headers) of the encapsulated request and response.
    enc_req = _lazy_part('enc_req', '_req_block', 0)
    enc_req_headers = _lazy_part('enc_req_headers', '_req_block', 1)
    enc_res_status = _lazy_part('enc_res_status', '_res_block', 0)
    enc_res_headers = _lazy_part('enc_res_headers', '_res_block', 1)

    @_lazy
    def has_body(self):
        # pyicap.py lines 440-454: a req-body in REQMOD, a res-body in
        # RESPMOD.
        if self.command == b'REQMOD':
            return b'req-body' in self.encapsulated
        if self.command == b'RESPMOD':
            return b'res-body' in self.encapsulated
        return False

    def _init_fields(self, t):
        """The fields pyicap's handle_one_request() and parse_request()
        set (lines 481-501 and 375-459), for transaction `t`."""
        d = self.__dict__
        for name in self._LAZY:
            d.pop(name, None)
        self._txn = t
        self.command = command = _COMMANDS.get(t.method, b'')
        self.request_uri = uri = t.uri
        self.request_version = self.version = b'ICAP/1.0'
        self.requestline = b'%s %s ICAP/1.0' % (command, uri)
        self.raw_requestline = self.requestline + b'\r\n'
        prefix = self.server._mnames.get(uri)
        if prefix is None:
            prefix = urlparse(uri)[2].strip(b'/')
            if len(self.server._mnames) < 4096:
                self.server._mnames[uri] = prefix
        self.servicename = prefix
        self.ieof = False
        self.eob = False
        self.methos = None
        self.close_connection = False
        self.icap_headers = {}
        self.enc_headers = {}
        self.enc_status = None
        self.enc_request = None
        self.icap_response_code = None
        # read_chunk() state
        self._eob_next = False
        self._cont_early = False
        self._preview_seen = False

    def handle_one_request(self):
        """Take the connection's next transaction and call its
        ``<service>_<METHOD>`` method."""
        t = self.server._next_txn(self.request)
        if t is None:
            self._connection_over = True
            self.close_connection = True
            return
        self._init_fields(t)
        mname = '%s_%s' % (self.servicename.decode('latin-1'),
                           self.command.decode('latin-1'))
        try:
            method = getattr(self, mname, None)
            if method is None or not callable(method):
                self.log_error('%s not found' % mname)
                raise ICAPError(404)
            method()
            self.log_request(self.icap_response_code)
        except TransactionGone:
            logger.debug('pyicap: %s: the transaction ended before the '
                         'handler finished', mname)
        except ICAPError as e:
            msg = e.message[0] if isinstance(e.message, tuple) else e.message
            self._answer_error(e.code, msg)
        except Exception:
            self.server._native.log_exception(
                'pyicap: handler %s raised (ICAP 500 to %s:%s)'
                % ((mname,) + tuple(self.client_address[:2])))
            self._abort()
        finally:
            self._finalize(mname)

    def _finalize(self, mname):
        """Make sure the transaction gets an answer."""
        t = self._txn
        try:
            if t.state == 'new':
                logger.warning('pyicap: handler %s returned without '
                               'answering: ICAP 500', mname)
                t.queue(_op_send_error(500), final=True)
            elif t.state == 'body':
                t.queue(_op_end, final=True)
        except (TransactionGone, Error):
            pass
        t.state = 'done'

    def _answer_error(self, code, message=None):
        try:
            if self._txn.state == 'new':
                self.send_error(code, message)
            else:
                self._abort()
        except (TransactionGone, Error):
            pass

    def _abort(self):
        t = self._txn
        try:
            if t.state != 'done':
                t.queue(_op_abort, final=True)
        except (TransactionGone, Error):
            pass
        t.state = 'done'
        self.icap_response_code = self.icap_response_code or 500

    # ---------------------------------------------------------- reading
    def read_chunk(self):
        """Read the next body chunk; b'' at the end of the body, or of the
        preview (call cont() to get the rest).  Blocks.  Sets ``ieof``."""
        if not self.has_body or self.eob:
            self.eob = True
            return b''
        if self._eob_next:
            self._eob_next = False
            self.eob = True
            return b''
        t = self._txn
        if t.final:
            # The answer is complete: libicap discards the rest.
            self.eob = True
            return b''
        if t.body is None:
            t.body = queue.SimpleQueue()
            if self.preview is None:
                t.preview_over = True
            try:
                t.queue(_op_push)
            except (TransactionGone, Error):
                self.eob = True
                return b''
        while True:
            data, flags = t.next_piece()
            if data is None:
                # The body failed or the transaction ended: the next
                # operation's post learns it and gives the reference back.
                self.eob = True
                return b''
            end = bool(flags & BODY_END)
            if flags & BODY_IEOF:
                self.ieof = True
            if self.preview is not None and not self._preview_seen:
                if data:
                    t.preview_data.append(data)
                if flags & (BODY_IEOF | BODY_PREVIEW_END):
                    self._preview_seen = True
            if end and (flags & BODY_PREVIEW_END) and self._cont_early:
                # cont() came before the preview's end: go straight on.
                self._cont_early = False
                t.queue(_op_continue)
                end = False
            if data:
                if end:
                    self._eob_next = True
                return data
            if end:
                self.eob = True
                return b''

    def cont(self):
        """Send 100 Continue after a preview; read_chunk() then goes on
        with the rest of the body."""
        if self.ieof:
            raise ICAPError(500, 'Tried to continue on ieof condition')
        if self.preview is not None:
            if self._preview_seen:
                self._txn.queue(_op_continue)
            else:
                self._cont_early = True
        self.eob = False
        self._eob_next = False

    # -------------------------------------------------- building answers
    def set_icap_response(self, code, message=None):
        """Set the ICAP status of the response (libicap writes the reason
        phrase; ``message`` only shows in ``icap_response``)."""
        code = int(code)
        if isinstance(message, str):
            message = message.encode()
        self.icap_response = (b'ICAP/1.0 ' + str(code).encode('utf-8') +
                              b' ' + (message or self._responses.get(
                                  code, (b'Unknown',))[0]))
        self.icap_response_code = code

    def set_enc_status(self, status):
        """Encapsulated HTTP status line: b'HTTP/1.1 200 OK'."""
        self.enc_status = status

    def set_enc_request(self, request):
        """Encapsulated HTTP request line: b'GET http://x/ HTTP/1.1'."""
        self.enc_request = request

    def set_enc_header(self, header, value):
        """Add an encapsulated header (repeatable)."""
        self.enc_headers[header] = self.enc_headers.get(header, []) + [value]

    def set_icap_header(self, header, value):
        """Add an ICAP header (repeatable)."""
        self.icap_headers[header] = self.icap_headers.get(header, []) + [value]

    def send_headers(self, has_body=False):
        """Send the ICAP head (and encapsulated headers); with has_body
        the body follows through send_chunk(), ending with b''."""
        t = self._txn
        code = self.icap_response_code
        if code is None:
            self.set_icap_response(200)
            code = 200
        icap = []
        istag = None
        for k, vs in self.icap_headers.items():
            kl = _lower(k)
            for v in vs:
                if kl == 'istag':
                    istag = _text(v).strip().strip('"')
                elif kl == 'connection':
                    v = _text(v).lower()
                    if v == 'close':
                        self.close_connection = True
                    elif v == 'keep-alive':
                        self.close_connection = False
                elif kl not in _LIBRARY_HEADERS:
                    icap.append((enc(k), enc(v)))
        if self.command == b'OPTIONS' and not any(
                k.lower() == b'methods' for k, _ in icap):
            methods = self.server._methods_header(
                self.servicename.decode('latin-1'))
            if methods:
                icap.append((b'Methods', methods.encode()))
        enc_headers = [(enc(k), enc(v)) for k, vs in self.enc_headers.items()
                       for v in vs]
        enc_request = enc(self.enc_request)
        enc_status = None if enc_request is not None else enc(self.enc_status)
        if istag is not None:
            self._set_istag(istag)
        t.queue(_op_headers(code, icap, enc_request, enc_status, enc_headers,
                            has_body), final=not has_body)
        t.state = 'body' if has_body else 'done'

    def _set_istag(self, tag):
        svc = self.server._native.services.get(
            self.servicename.decode('latin-1'))
        if svc is None:
            return
        try:
            svc.set_istag(tag)
        except Error:
            logger.debug('pyicap: ISTag %r not usable by libicap; ignored',
                         tag)

    def write_chunk(self, data=b''):
        """Send a body chunk; b'' (empty) ends the body."""
        data = _as_bytes(data)
        t = self._txn
        if not data:
            if t.state == 'done':
                # Already ended (send_chunk(data) with empty data, then the
                # customary send_chunk(b'')): pyicap would write a second
                # last-chunk and break the connection; nothing to do here.
                return
            t.queue(_op_end, final=True)
            t.state = 'done'
            return
        t.queue(_op_chunk(data))
        if t.wq > _QUEUE_HIGH:
            # A slow client: wait for the loop to write most of it out.
            delay = 0.001
            while t.call(_op_queue_size) > _QUEUE_LOW:
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
            t.wq = 0

    send_chunk = write_chunk

    def send_error(self, code, message=None):
        """Send a complete error response (no encapsulated message)."""
        if message is None:
            message = self._responses.get(code, (b'???',))[0]
        self.log_error('code %d, message %s', code, message)
        self.set_icap_response(code, message)
        t = self._txn
        if t.state == 'new':
            t.queue(_op_send_error(code), final=True)
            t.state = 'done'
        else:
            self._abort()

    def send_enc_error(self, code, message='', body='',
                       contenttype='text/html'):
        """Answer with an encapsulated HTTP error page (ICAP 200); as in
        pyicap, ``message`` is the ICAP reason and the HTTP status line
        carries the code's short reason."""
        body = _as_bytes(body.encode() if isinstance(body, str) else body)
        self.enc_request = None
        self.set_icap_response(200, message=message)
        self.set_enc_status(b'HTTP/1.1 %d %s' % (
            code, self._responses.get(code, (b'Unknown',))[0]))
        self.set_enc_header(b'Content-Type', contenttype)
        self.set_enc_header(b'Content-Length', str(len(body)).encode())
        self.send_headers(has_body=True)
        if body:
            self.write_chunk(body)
        self.write_chunk(b'')

    def no_adaptation_required(self):
        """Leave the message unaltered: 204 when the client allows it (or
        during a preview), else the original message is echoed."""
        t = self._txn
        t.queue(_op_no_adaptation, final=True)
        t.state = 'done'
        # pyicap.py line 676 decides so; libicap answers the same way.
        self.icap_response_code = (204 if b'204' in self.allow
                                   or self.preview is not None else 200)

    # ----------------------------------------------------------- logging
    def log_request(self, code='-', size='-'):
        self.log_message('"%s" %s %s', self.requestline,
                         str(code).encode('utf-8'), str(size).encode('utf-8'))

    def log_error(self, format, *args):
        self.log_message(format, *args)

    def log_message(self, format, *args):
        sys.stderr.write('%s - - [%s] %s\n' % (self.client_address[0],
                                                self.log_date_time_string(),
                                                format % args))

    def version_bytes(self):
        return (self._server_version + ' ' + self._sys_version).encode()

    def version_string(self):
        return self.version_bytes().decode()

    def date_time_bytes(self, timestamp=None):
        if timestamp is None:
            timestamp = time.time()
        year, month, day, hh, mm, ss, wd, _, _ = time.gmtime(timestamp)
        return b'%s, %02d %3s %4d %02d:%02d:%02d GMT' % (
            self._weekdayname[wd], day, self._monthname[month], year,
            hh, mm, ss)

    def date_time_string(self, timestamp=None):
        return self.date_time_bytes(timestamp).decode()

    def log_date_time_string(self):
        year, month, day, hh, mm, ss, _, _, _ = time.localtime(time.time())
        return '%02d/%3s/%04d %02d:%02d:%02d' % (
            day, self._monthname[month].decode(), year, hh, mm, ss)

    def address_string(self):
        return socket.getfqdn(self.client_address[0])
