"""pyicap's API on libicap.

A drop-in for pyicap (https://github.com/netom/pyicap): change
``from pyicap import *`` into ``from libicap.pyicap import *`` and the
service runs on libicap's event loop::

    import socketserver
    from libicap.pyicap import *

    class ThreadingSimpleServer(socketserver.ThreadingMixIn, ICAPServer):
        pass

    class ICAPHandler(BaseICAPRequestHandler):
        def echo_OPTIONS(self):
            self.set_icap_response(200)
            self.set_icap_header('Methods', 'RESPMOD')
            self.set_icap_header('Preview', '0')
            self.send_headers(False)

        def echo_RESPMOD(self):
            self.no_adaptation_required()

    server = ThreadingSimpleServer(('', 13440), ICAPHandler)
    while True:
        server.handle_request()

How it maps
-----------
- The libicap loop parses every request; each transaction (not each
  connection) becomes one ``request`` for the socketserver machinery:
  ``handle_request()`` waits (up to ``self.timeout``) for the next
  transaction and dispatches it through ``verify_request`` /
  ``process_request`` / ``finish_request`` / ``shutdown_request``, so
  ``socketserver.ThreadingMixIn`` runs each handler on its own thread, and
  without it the handler runs in the thread that called
  ``handle_request()`` / ``serve_forever()``.  Handlers never run on the
  loop thread, so pyicap's blocking ``read_chunk()`` works: the handler's
  thread asks the loop for each operation (through icap_request_post, the
  library's one thread-safe entry point) and waits for the result while
  the loop keeps serving every other connection.
- Services are the ``<service>_<METHOD>`` methods of the handler class
  (scanned once, when the server is made).  A missing method answers 404,
  as in pyicap; an unknown service 404 too.
- Header fields are str; ``enc_req_headers``, ``enc_res_headers`` and
  ``headers`` are dicts of lists with lower-case keys, as in pyicap.
  ``preview`` is an int or None, ``allow`` a set of tokens such as
  ``{'204', 'trailers'}`` (``204 in allow`` works too).  Bodies are bytes:
  ``read_chunk()`` returns ``b''`` at the end; ``send_chunk()`` takes bytes
  (str is encoded as latin-1).
- ISTag, Date, Server, Encapsulated and Connection are written by libicap;
  ``set_icap_header('ISTag', ...)`` changes the service's ISTag, the
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
import re
import socket
import socketserver
import sys
import threading
import time

from ._lib import (BODY_END, BODY_IEOF, BODY_PREVIEW_END, Error, ErrorCode,
                   status_reason)
from .server import Server, logger

__version__ = '1.0'

__all__ = ['ICAPServer', 'BaseICAPRequestHandler', 'ICAPError',
           'ThreadingICAPServer']


class ICAPError(Exception):
    """Signals a protocol error: the transaction is answered with `code`."""

    def __init__(self, code=500, message=None):
        if message is None:
            message = BaseICAPRequestHandler._responses.get(
                code, ('???',))[0]
        super().__init__(message)
        self.code = code
        self.message = message


class TransactionGone(Exception):
    """The transaction ended (client gone, timeout, server stopped) while a
    handler still worked on it.  Caught by the handler machinery."""


_PENDING = object()
_METHOD_RE = re.compile(r'^(.+)_(OPTIONS|REQMOD|RESPMOD)$')
# Written by libicap itself: never passed through from set_icap_header().
_LIBRARY_HEADERS = frozenset(['istag', 'date', 'server', 'encapsulated',
                              'connection'])
# Backpressure of send_chunk(): above HIGH bytes queued for the client the
# handler thread waits until the queue is below LOW.
_QUEUE_HIGH = 1 << 20
_QUEUE_LOW = 256 << 10


class _AllowSet(set):
    """pyicap's ``allow``: Allow tokens as str; ``204 in allow`` works."""

    def __contains__(self, item):
        if isinstance(item, int):
            item = str(item)
        return set.__contains__(self, item)


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
    """One transaction handed to a handler thread.

    Created on the loop thread: it copies every field the handler may read
    and takes a request reference (a "token").  A handler thread runs an
    operation on the loop with :meth:`call`: the token goes with the post;
    the loop thread runs the operation, takes a fresh token for the next
    call (unless it is the last), and wakes the handler thread.  So exactly
    one reference is outstanding until :meth:`finalize`.
    """

    def __init__(self, server, req):
        self.server = server
        self.req = req
        self.token = None
        self.ended = False         # the transaction is over (done callback)
        self.finished = False      # finalize() ran
        self.state = 'new'         # new -> body -> done (our response)
        self.pending = None
        self.preview_data = []
        # ---- snapshot (loop thread)
        self.command = req.method
        self.request_uri = req.uri
        self.version = req.version or 'ICAP/1.0'
        self.servicename = req.service_name
        self.client_address = req.client_address
        self.headers = req.icap_headers.to_dict()
        self.encapsulated = req.encapsulated
        enc = self.encapsulated
        self.enc_req = None
        self.enc_req_headers = {}
        self.enc_res_status = None
        self.enc_res_headers = {}
        if 'req-hdr' in enc:
            self.enc_req = [req.http_method, req.http_uri,
                            req.http_request_version]
            self.enc_req_headers = req.http_request_headers.to_dict()
        if 'res-hdr' in enc:
            code = req.http_status
            self.enc_res_status = [req.http_response_version,
                                   '' if code is None else str(code),
                                   req.http_reason]
            self.enc_res_headers = req.http_response_headers.to_dict()
        self.has_body = req.has_body
        self.preview = req.preview
        allow = _AllowSet()
        for v in req.icap_headers.getlist('Allow'):
            allow.add(v)
        self.allow = allow
        req.on_done(self._on_done)
        self.token = req.hold()

    # -------------------------------------------------------- loop side
    def _on_done(self, req, status):
        self.ended = True
        box, self.pending = self.pending, None
        if box is not None:
            box.set(exc=TransactionGone(status))

    # ----------------------------------------------------- handler side
    def call(self, fn, final=False):
        """Run ``fn(req, box)`` on the loop thread and return its result
        (or raise its exception).  ``fn`` may return _PENDING and complete
        `box` later from a loop callback."""
        if self.ended and not final:
            raise TransactionGone()
        token = self.token
        if token is None:
            if final:
                return None
            if self.ended:
                raise TransactionGone()
            raise RuntimeError('a pyicap transaction was used from two '
                               'threads at once')
        self.token = None
        box = _Box()

        def on_loop(req, status):
            if status < 0:
                self.ended = True
                box.set(exc=TransactionGone(status))
                return
            if not final:
                # The next call's reference, taken before fn can complete
                # the box (a body callback may run inside fn).
                try:
                    self.token = req.hold()
                except Error:
                    self.ended = True
            try:
                v = fn(req, box)
            except BaseException as e:
                box.set(exc=e)
                return
            if v is not _PENDING:
                box.set(v)
            elif not box.done:
                # Completed later by a body callback, or by _on_done if
                # the transaction ends first.
                self.pending = box

        try:
            token.post(on_loop)
        except Error:
            self.ended = True
            raise TransactionGone() from None
        while not box.event.wait(0.5):
            if self.server._native.wait(0):
                # The loops ended: nobody will ever complete the box.
                self.ended = True
                raise TransactionGone()
        if box.exc is not None:
            raise box.exc
        return box.value

    def finalize(self, log=None):
        """After the handler: make sure the transaction is answered and
        give the reference back.  Idempotent."""
        if self.finished:
            return
        self.finished = True
        state = self.state
        self.state = 'done'

        def op(req, box):
            if state == 'new':
                if log:
                    log()
                try:
                    req.send_error(500)
                except Error:
                    pass
            elif state == 'body':
                try:
                    req.end()
                except Error:
                    pass

        try:
            self.call(op, final=True)
        except (TransactionGone, Error):
            pass

    def reject(self, code):
        """Answer a transaction no handler will see (server closing)."""
        if self.finished:
            return
        self.finished = True
        try:
            self.call(lambda req, box: req.send_error(code), final=True)
        except (TransactionGone, Error):
            pass


def _op_read(req, box):
    req.read_chunk(lambda r, data, flags: box.set((data, flags)))
    return _PENDING


def _op_no_adaptation(req, box):
    would_204 = req.allows(204) or req.in_preview
    req.no_adaptation()
    # A 204 (or a bodyless echo) may complete the transaction at once; the
    # request must not be touched after that.
    if req.valid:
        return req.response_code
    return 204 if would_204 else 200


def _send_404(req):
    req.send_error(404)


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
        self._cv = threading.Condition()
        self._queue = collections.deque()
        self._closed = False
        self._shutdown_requested = False
        self._is_shut_down = threading.Event()
        self._is_shut_down.set()
        self._service_methods = {}
        self._register_services()
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
                svc.set_handler(method, self._on_transaction
                                if method in methods else _send_404)
            self._service_methods[name] = methods

    def server_bind(self):
        host, port = self.server_address[:2]
        port = self._native.listen(host or '0.0.0.0', port)
        self.server_address = (host or '0.0.0.0', port)

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

    # --------------------------------------------- loop thread entry ---
    def _on_transaction(self, req):
        t = _Txn(self, req)
        with self._cv:
            if not self._closed:
                self._queue.append(t)
                self._cv.notify()
                return
        t.token.release()
        t.token = None
        t.finished = True
        req.send_error(503)

    # ------------------------------------------------------- serving ---
    def _ensure_running(self):
        if self._native._state == 'new':
            self._native.start()

    def _get_request(self, timeout):
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            while not self._queue:
                if (self._closed or self._shutdown_requested
                        or self._native.wait(0)):
                    return None
                if deadline is None:
                    self._cv.wait(0.5)
                else:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return None
                    self._cv.wait(min(remaining, 0.5))
            return self._queue.popleft()

    def get_request(self):
        t = self._get_request(0)
        if t is None:
            raise OSError('no pending ICAP transaction')
        return t, t.client_address

    def fileno(self):
        raise OSError('libicap.pyicap.ICAPServer has no selectable socket')

    def handle_request(self):
        """Wait for the next transaction (at most ``self.timeout``
        seconds, forever if None) and handle it; on a timeout call
        ``handle_timeout()``."""
        self._ensure_running()
        t = self._get_request(self.timeout)
        if t is None:
            self.handle_timeout()
            return
        self._dispatch(t)

    def _dispatch(self, t):
        addr = t.client_address
        if self.verify_request(t, addr):
            try:
                self.process_request(t, addr)
            except Exception:
                self.handle_error(t, addr)
                self.shutdown_request(t)
            except BaseException:
                self.shutdown_request(t)
                raise
        else:
            self.shutdown_request(t)

    def serve_forever(self, poll_interval=0.5):
        """Handle transactions until shutdown() (or server_close())."""
        self._ensure_running()
        self._is_shut_down.clear()
        try:
            while not self._shutdown_requested:
                t = self._get_request(poll_interval)
                if t is not None:
                    self._dispatch(t)
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
        if isinstance(request, _Txn):
            if request.state == 'new' and not request.finished:
                # Never handled (verify_request said no, or an error).
                request.reject(503 if self._closed else 500)
            else:
                request.finalize()

    def handle_error(self, request, client_address):
        self._native.log_exception(
            'pyicap: error while handling a transaction from %s:%s'
            % tuple(client_address[:2]))

    def server_close(self):
        """Answer queued transactions 503, stop the loops (in-flight
        transactions may finish within the drain timeout), free them."""
        with self._cv:
            self._closed = True
            pending = list(self._queue)
            self._queue.clear()
            self._cv.notify_all()
        for t in pending:
            t.reject(503)
        self._native.close()


class ThreadingICAPServer(socketserver.ThreadingMixIn, ICAPServer):
    """ICAPServer with a thread per transaction."""
    daemon_threads = True


class BaseICAPRequestHandler(socketserver.BaseRequestHandler):
    """ICAP request handler base class (pyicap's).

    Subclass it with methods ``<service>_OPTIONS``, ``<service>_REQMOD``
    and/or ``<service>_RESPMOD``.  One instance handles one transaction,
    on a thread that may block.
    """

    protocol_version = 'ICAP/1.0'

    _responses = {
        100: ('Continue', 'Request received, please continue'),
        101: ('Switching Protocols',
              'Switching to new protocol; obey Upgrade header'),
        200: ('OK', 'Request fulfilled, document follows'),
        201: ('Created', 'Document created, URL follows'),
        202: ('Accepted', 'Request accepted, processing continues off-line'),
        203: ('Non-Authoritative Information', 'Request fulfilled from cache'),
        204: ('No Content', 'Request fulfilled, nothing follows'),
        205: ('Reset Content', 'Clear input form for further input.'),
        206: ('Partial Content', 'Partial content follows.'),
        300: ('Multiple Choices',
              'Object has several resources -- see URI list'),
        301: ('Moved Permanently', 'Object moved permanently -- see URI list'),
        302: ('Found', 'Object moved temporarily -- see URI list'),
        303: ('See Other', 'Object moved -- see Method and URL list'),
        304: ('Not Modified', 'Document has not changed since given time'),
        305: ('Use Proxy', 'You must use proxy specified in Location to '
              'access this resource.'),
        307: ('Temporary Redirect',
              'Object moved temporarily -- see URI list'),
        400: ('Bad Request', 'Bad request syntax or unsupported method'),
        401: ('Unauthorized', 'No permission -- see authorization schemes'),
        402: ('Payment Required', 'No payment -- see charging schemes'),
        403: ('Forbidden', 'Request forbidden -- authorization will not help'),
        404: ('Not Found', 'Nothing matches the given URI'),
        405: ('Method Not Allowed',
              'Specified method is invalid for this resource.'),
        406: ('Not Acceptable', 'URI not available in preferred format.'),
        407: ('Proxy Authentication Required',
              'You must authenticate with this proxy before proceeding.'),
        408: ('Request Timeout', 'Request timed out; try again later.'),
        409: ('Conflict', 'Request conflict.'),
        410: ('Gone',
              'URI no longer exists and has been permanently removed.'),
        411: ('Length Required', 'Client must specify Content-Length.'),
        412: ('Precondition Failed', 'Precondition in headers is false.'),
        413: ('Request Entity Too Large', 'Entity is too large.'),
        414: ('Request-URI Too Long', 'URI is too long.'),
        415: ('Unsupported Media Type', 'Entity body in unsupported format.'),
        416: ('Requested Range Not Satisfiable',
              'Cannot satisfy request range.'),
        417: ('Expectation Failed',
              'Expect condition could not be satisfied.'),
        500: ('Internal Server Error', 'Server got itself in trouble'),
        501: ('Not Implemented', 'Server does not support this operation'),
        502: ('Bad Gateway', 'Invalid responses from another server/proxy.'),
        503: ('Service Unavailable',
              'The server cannot process the request due to a high load'),
        504: ('Gateway Timeout',
              'The gateway server did not receive a timely response'),
        505: ('Protocol Version Not Supported', 'Cannot fulfill request.'),
    }

    _sys_version = 'Python/' + sys.version.split()[0]
    _server_version = 'BaseICAP/' + __version__

    _weekdayname = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun']
    _monthname = [None, 'Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul',
                  'Aug', 'Sep', 'Oct', 'Nov', 'Dec']

    # ------------------------------------------------------- lifecycle
    def setup(self):
        pass

    def finish(self):
        pass

    def handle(self):
        self.handle_one_request()

    def _init_fields(self, t):
        self._txn = t
        self.command = t.command
        self.request_uri = t.request_uri
        self.request_version = self.version = t.version
        self.requestline = '%s %s %s' % (t.command, t.request_uri, t.version)
        self.raw_requestline = (self.requestline + '\r\n').encode('latin-1')
        self.servicename = t.servicename
        self.headers = t.headers
        self.encapsulated = dict(t.encapsulated)
        self.enc_req = list(t.enc_req) if t.enc_req is not None else None
        self.enc_req_headers = t.enc_req_headers
        self.enc_res_status = (list(t.enc_res_status)
                               if t.enc_res_status is not None else None)
        self.enc_res_headers = t.enc_res_headers
        self.has_body = t.has_body
        self.preview = t.preview
        self.allow = t.allow
        self.client_ip = t.headers.get('x-client-ip',
                                       ['No X-Client-IP header'])[0]
        self.ieof = False
        self.eob = False
        self.close_connection = False
        # the response being built
        self.icap_headers = {}
        self.enc_headers = {}
        self.enc_status = None
        self.enc_request = None
        self.icap_response = None
        self.icap_response_code = None
        # read_chunk() state
        self._eob_next = False
        self._preview_over = self.preview is None
        self._cont_early = False

    def handle_one_request(self):
        t = self.request
        if not isinstance(t, _Txn):
            raise TypeError('BaseICAPRequestHandler needs a transaction from '
                            'libicap.pyicap.ICAPServer')
        self._init_fields(t)
        mname = '%s_%s' % (self.servicename, self.command)
        try:
            method = getattr(self, mname, None)
            if method is None or not callable(method):
                raise ICAPError(404)
            method()
            self.log_request(self.icap_response_code)
        except TransactionGone:
            logger.debug('pyicap: %s: the transaction ended before the '
                         'handler finished', mname)
        except ICAPError as e:
            self._answer_error(e.code, e.message)
        except Exception:
            self.server._native.log_exception(
                'pyicap: handler %s raised (ICAP 500 to %s:%s)'
                % ((mname,) + tuple(self.client_address[:2])))
            self._abort()
        finally:
            t.finalize(lambda: logger.warning(
                'pyicap: handler %s returned without answering: ICAP 500',
                mname))

    def _answer_error(self, code, message=None):
        try:
            if self._txn.state == 'new':
                self.send_error(code, message)
            else:
                self._abort()
        except TransactionGone:
            pass

    def _abort(self):
        t = self._txn
        try:
            t.call(lambda req, box: req.abort())
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
        while True:
            try:
                data, flags = t.call(_op_read)
            except (TransactionGone, Error):
                self.eob = True
                return b''
            if data is None:
                self.eob = True
                return b''
            end = bool(flags & BODY_END)
            if flags & BODY_IEOF:
                self.ieof = True
            if flags & (BODY_IEOF | BODY_PREVIEW_END):
                in_preview = not self._preview_over
                self._preview_over = True
            else:
                in_preview = not self._preview_over
            if in_preview and data:
                t.preview_data.append(data)
            if end and (flags & BODY_PREVIEW_END) and self._cont_early:
                # cont() came before the preview's end: go straight on
                # (the library sends 100 Continue with the next read).
                self._cont_early = False
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
            try:
                self._txn.call(lambda req, box: req.continue_())
            except Error as e:
                if e.code != ErrorCode.ESTATE:
                    raise
                if not self._preview_over:
                    self._cont_early = True
        self.eob = False
        self._eob_next = False

    # -------------------------------------------------- building answers
    def set_icap_response(self, code):
        """Set the ICAP status of the response."""
        code = int(code)
        reason = self._responses.get(code, (status_reason(code) or '???',))[0]
        self.icap_response = 'ICAP/1.0 %d %s' % (code, reason)
        self.icap_response_code = code

    def set_enc_status(self, status):
        """Encapsulated HTTP status line: 'HTTP/1.1 200 OK'."""
        self.enc_status = status

    def set_enc_request(self, request):
        """Encapsulated HTTP request line: 'GET http://x/ HTTP/1.1'."""
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
            for v in vs:
                kl = str(k).lower()
                if kl == 'istag':
                    istag = str(v).strip().strip('"')
                elif kl not in _LIBRARY_HEADERS:
                    icap.append((k, v))
        if self.command == 'OPTIONS' and not any(
                str(k).lower() == 'methods' for k, _ in icap):
            methods = self.server._methods_header(self.servicename)
            if methods:
                icap.append(('Methods', methods))
        enc_headers = [(k, v) for k, vs in self.enc_headers.items()
                       for v in vs]
        enc_request, enc_status = self.enc_request, self.enc_status
        if istag is not None:
            self._set_istag(istag)

        def op(req, box):
            req.set_status(code)
            for k, v in icap:
                req.set_icap_header(k, v)
            if enc_request is not None:
                req.set_http_request(enc_request)
            elif enc_status is not None:
                req.set_http_status(enc_status)
            for k, v in enc_headers:
                req.add_http_header(k, v)
            req.send_headers(has_body)
            return req.response_code if req.valid else code

        sent = t.call(op)
        t.state = 'body' if has_body else 'done'
        if sent:
            self.icap_response_code = sent
        for k in self.icap_headers:
            if str(k).lower() == 'connection':
                v = str(self.icap_headers[k][-1]).lower()
                self.close_connection = v == 'close'

    def _set_istag(self, tag):
        svc = self.server._native.services.get(self.servicename)
        if svc is None:
            return
        try:
            svc.set_istag(tag)
        except Error:
            logger.debug('pyicap: ISTag %r not usable by libicap; ignored',
                         tag)

    def send_chunk(self, data):
        """Send a body chunk; b'' (empty) ends the body."""
        if isinstance(data, str):
            data = data.encode('latin-1')
        elif not isinstance(data, bytes):
            data = bytes(data)
        t = self._txn
        if not data:
            t.call(lambda req, box: req.end())
            t.state = 'done'
            return

        def op(req, box):
            req.send_chunk(data)
            return req.write_queue_size

        queued = t.call(op)
        if queued > _QUEUE_HIGH:
            # A slow client: wait for the loop to write most of it out.
            delay = 0.001
            while queued > _QUEUE_LOW:
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
                queued = t.call(lambda req, box: req.write_queue_size)

    write_chunk = send_chunk

    def send_error(self, code, message=None):
        """Send a complete error response (no encapsulated message)."""
        short = self._responses.get(code, ('???',))[0]
        self.log_error('code %d, message %s', code,
                       short if message is None else message)
        self.set_icap_response(code)
        t = self._txn
        if t.state == 'new':
            t.call(lambda req, box: req.send_error(code))
            t.state = 'done'
        else:
            self._abort()

    def send_enc_error(self, code, message=None, body='',
                       contenttype='text/html'):
        """Answer with an encapsulated HTTP error page (ICAP 200)."""
        short = self._responses.get(code, ('???',))[0]
        if message is None:
            message = short
        if isinstance(body, str):
            body = body.encode('utf-8')
        self.enc_request = None
        self.set_icap_response(200)
        self.set_enc_status('HTTP/1.1 %d %s' % (code, message))
        self.set_enc_header('Content-Type', contenttype)
        self.set_enc_header('Content-Length', str(len(body)))
        self.send_headers(has_body=True)
        if body:
            self.send_chunk(body)
        self.send_chunk(b'')

    def no_adaptation_required(self):
        """Leave the message unaltered: 204 when the client allows it (or
        during a preview), else the original message is echoed."""
        t = self._txn
        try:
            code = t.call(_op_no_adaptation)
        except Error as e:
            if e.code != ErrorCode.ECONSUMED or not self.ieof:
                raise
            code = self._echo_preview()
        t.state = 'done'
        self.icap_response_code = code or 200

    def _echo_preview(self):
        # The handler read the whole body in a preview (ieof) and the
        # client did not allow 204: echo what we kept of it.
        data = b''.join(self._txn.preview_data)

        def op(req, box):
            req.set_status(200)
            req.copy_http_head()
            req.send_headers(True)
            if data:
                req.send_chunk(data)
            req.end()
            return 200
        return self._txn.call(op)

    # ----------------------------------------------------------- logging
    def log_request(self, code='-', size='-'):
        self.log_message('"%s" %s %s', self.requestline, str(code), str(size))

    def log_error(self, format, *args):
        self.log_message(format, *args)

    def log_message(self, format, *args):
        sys.stderr.write('%s - - [%s] %s\n' % (self.client_address[0],
                                                self.log_date_time_string(),
                                                format % args))

    def version_string(self):
        return self._server_version + ' ' + self._sys_version

    def date_time_string(self, timestamp=None):
        if timestamp is None:
            timestamp = time.time()
        year, month, day, hh, mm, ss, wd, _, _ = time.gmtime(timestamp)
        return '%s, %02d %3s %4d %02d:%02d:%02d GMT' % (
            self._weekdayname[wd], day, self._monthname[month], year,
            hh, mm, ss)

    def log_date_time_string(self):
        year, month, day, hh, mm, ss, _, _, _ = time.localtime(time.time())
        return '%02d/%3s/%04d %02d:%02d:%02d' % (
            day, self._monthname[month], year, hh, mm, ss)

    def address_string(self):
        return socket.getfqdn(self.client_address[0])
