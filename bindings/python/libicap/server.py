# SPDX-License-Identifier: MIT
"""The native Python layer: Server, Service, Request.

Threading model (read this before writing a handler)
----------------------------------------------------
libicap runs one or more event loops (``workers``), each on its own thread.
Handlers, body callbacks and done callbacks of a transaction are called on
the loop thread that owns its connection, with the GIL held.  While a
handler runs, that loop serves nobody else, so a handler must not block:
no sleeping, no blocking sockets, no waiting for other threads.  Blocking
work goes through :meth:`Request.offload` (runs on libuv's thread pool, then
calls you back on the loop thread) or through a thread of your own that
hands the result back with ``req.hold().post(fn)`` (the only operation that
may be called from any thread).  Every other Request method raises
RuntimeError when called from another thread.

Python code on the loop threads holds the GIL, so Python handlers of
different loops do not run in parallel; the C parts (parsing, framing,
socket I/O) do.  :class:`libicap.pyicap.ICAPServer` offers pyicap's
blocking model on top of this one (handlers on Python worker threads).

A Request is valid from the handler call until its done callback has run
(response complete, or the client gone); afterwards every method raises
:class:`libicap.Error` (ICAP_ESTATE).
"""

import atexit
import itertools
import logging
import threading
import traceback
import weakref
from ctypes import byref, c_char_p, c_size_t, c_void_p, string_at

from . import _lib
from ._headers import Headers
from ._lib import (BODY_CB, BODY_END, BODY_PREVIEW_END, DONE_CB, HANDLER_CB,
                   LOG_CB, POST_CB, WORK_CB, Error, ErrorCode,
                   Limit, check, dec, enc, lib)

__all__ = ['Server', 'Service', 'Request', 'RequestHold', 'logger',
           'OPTIONS', 'REQMOD', 'RESPMOD']

logger = logging.getLogger('libicap')

OPTIONS, REQMOD, RESPMOD = 'OPTIONS', 'REQMOD', 'RESPMOD'
_METHOD_CODES = {OPTIONS: _lib.METHOD_OPTIONS, REQMOD: _lib.METHOD_REQMOD,
                 RESPMOD: _lib.METHOD_RESPMOD}

_TO_PY_LEVEL = {_lib.LOG_ERROR: logging.ERROR, _lib.LOG_WARN: logging.WARNING,
                _lib.LOG_INFO: logging.INFO, _lib.LOG_DEBUG: logging.DEBUG}


def _to_c_level(level):
    if level <= logging.DEBUG:
        return _lib.LOG_DEBUG
    if level <= logging.INFO:
        return _lib.LOG_INFO
    if level <= logging.WARNING:
        return _lib.LOG_WARN
    return _lib.LOG_ERROR


def _method_code(method):
    if isinstance(method, str):
        try:
            return _METHOD_CODES[method.upper()]
        except KeyError:
            raise ValueError('unknown ICAP method %r' % (method,)) from None
    if method in _lib.METHOD_NAMES:
        return int(method)
    raise ValueError('unknown ICAP method %r' % (method,))


def _limit_code(which):
    if isinstance(which, str):
        return Limit[which.upper()]
    return Limit(which)


# Servers whose loops run: stopped (and waited for, bounded) at interpreter
# exit, so that no loop thread calls into a finalizing interpreter.
_running = weakref.WeakSet()
_EXIT_WAIT = 15.0


@atexit.register
def _stop_running_servers():
    servers = list(_running)
    for s in servers:
        s.stop()
    for s in servers:
        s.wait(_EXIT_WAIT)


class Server:
    """An ICAP server: services, handlers, listen addresses, event loops.

    ``Server(workers=None, *, log=None, log_level=logging.INFO,
    server_header=None, limits=None)``

    - ``workers``: number of event loops (threads); None = the library's
      default (one per CPU).
    - ``log``: ``callable(level, message)`` receiving the library's log
      lines and the tracebacks of failed handlers, ``level`` a ``logging``
      level; default: the ``logging`` logger ``"libicap"``.
    - ``limits``: ``{name_or_Limit: value}``, e.g. ``{"handler_timeout_ms":
      5000}`` (see :class:`libicap.Limit`).

    Configure (listen, services, handlers) before :meth:`start` or
    :meth:`serve_forever`; a server runs once.  Use it as a context manager,
    or call :meth:`close`, to free it.
    """

    def __init__(self, workers=None, *, log=None, log_level=logging.INFO,
                 server_header=None, limits=None):
        out = c_void_p()
        check(lib.icap_server_new(byref(out)), 'icap_server_new')
        self._p = out.value
        self._lock = threading.Lock()   # state changes, stop/free
        self._gate = threading.Lock()   # icap_request_post vs. run's end
        self._state = 'new'             # new, running, stopped, closed
        self._accepting_posts = True
        self._services = {}
        self._handlers = {}             # id -> (Service, method, fn)
        self._reqs = {}                 # id -> live Request
        self._calls = {}                # id -> pending post/offload
        self._ids = itertools.count(1)
        self._log_fn = log
        self._thread = None
        self._finished = threading.Event()
        self._run_rc = None
        self._nlisten = 0
        # The C side keeps these function pointers until the server is
        # freed: they live exactly as long as this object.
        self._cb_log = LOG_CB(self._c_log)
        self._cb_handler = HANDLER_CB(self._c_handler)
        self._cb_done = DONE_CB(self._c_done)
        self._cb_body = BODY_CB(self._c_body)
        self._cb_post = POST_CB(self._c_post)
        self._cb_work = WORK_CB(self._c_work)
        try:
            check(lib.icap_server_set_log(self._p, _to_c_level(log_level),
                                          self._cb_log, None),
                  'icap_server_set_log')
            if workers is not None:
                check(lib.icap_server_set_workers(self._p, int(workers)),
                      'icap_server_set_workers')
            if server_header is not None:
                check(lib.icap_server_set_server_header(
                    self._p, enc(server_header)),
                    'icap_server_set_server_header')
            for k, v in (limits or {}).items():
                self.set_limit(k, v)
        except BaseException:
            lib.icap_server_free(self._p)
            self._p = None
            self._state = 'closed'
            raise

    # ----------------------------------------------------- configuration
    def _ptr(self):
        if self._p is None:
            raise Error(ErrorCode.ESTATE, 'server is closed')
        return self._p

    def set_limit(self, which, value):
        """Set a limit (name such as ``"handler_timeout_ms"`` or a Limit)."""
        check(lib.icap_server_set_limit(self._ptr(), _limit_code(which),
                                        int(value)), 'icap_server_set_limit')

    def get_limit(self, which):
        return lib.icap_server_get_limit(self._ptr(), _limit_code(which))

    def listen(self, host='127.0.0.1', port=0):
        """Listen on host:port (port 0: the kernel picks); returns the port."""
        check(lib.icap_server_listen(self._ptr(), enc(host or '0.0.0.0'),
                                     int(port)), 'icap_server_listen')
        idx = self._nlisten
        self._nlisten += 1
        return self.port_of(idx)

    def port_of(self, idx):
        return check(lib.icap_server_port(self._ptr(), idx),
                     'icap_server_port')

    @property
    def port(self):
        """Port of the first listen address."""
        return self.port_of(0)

    @property
    def ports(self):
        return [self.port_of(i) for i in range(self._nlisten)]

    def add_service(self, name, handler=None, **options):
        """Register (or fetch) the service ``icap://host:port/<name>``.

        ``handler``: an object (or a class, instantiated once with no
        arguments) whose methods ``options(req)``, ``reqmod(req)`` and
        ``respmod(req)`` (any subset) handle those methods.  ``options``:
        see :meth:`Service.configure`.
        """
        svc = self._services.get(name)
        if svc is None:
            out = c_void_p()
            check(lib.icap_server_add_service(self._ptr(), enc(name),
                                              byref(out)),
                  'icap_server_add_service')
            svc = Service(self, out.value, name)
            self._services[name] = svc
        if handler is not None:
            obj = handler() if isinstance(handler, type) else handler
            found = False
            for method, attr in ((OPTIONS, 'options'), (REQMOD, 'reqmod'),
                                 (RESPMOD, 'respmod')):
                fn = getattr(obj, attr, None)
                if callable(fn):
                    svc.set_handler(method, fn)
                    found = True
            if not found:
                raise TypeError('%r has no options/reqmod/respmod method'
                                % (obj,))
        if options:
            svc.configure(**options)
        return svc

    def service(self, name):
        return self._services[name]

    @property
    def services(self):
        return dict(self._services)

    def _decorator(self, name, method, options):
        def register(fn):
            self.add_service(name, **options).set_handler(method, fn)
            return fn
        return register

    def reqmod(self, name, **options):
        """Decorator: ``@srv.reqmod('svc')`` registers ``fn(req)``."""
        return self._decorator(name, REQMOD, options)

    def respmod(self, name, **options):
        """Decorator: ``@srv.respmod('svc')`` registers ``fn(req)``."""
        return self._decorator(name, RESPMOD, options)

    def options(self, name, **options):
        """Decorator for an OPTIONS handler; it may set headers with
        ``req.set_icap_header()`` and then ``req.send_headers()``: headers
        it does not set keep their generated values."""
        return self._decorator(name, OPTIONS, options)

    # ---------------------------------------------------------- running
    def start(self):
        """Run the loops on a background thread and return at once."""
        with self._lock:
            if self._state != 'new':
                raise Error(ErrorCode.ESTATE, 'start (a server runs once)')
            self._ptr()
            self._state = 'running'
        t = threading.Thread(target=self._run, name='libicap-server',
                             daemon=True)
        self._thread = t
        _running.add(self)
        t.start()

    def _run(self):
        rc = ErrorCode.EIO
        try:
            rc = lib.icap_server_run(self._p)
        finally:
            with self._gate:
                self._accepting_posts = False
            self._run_rc = rc
            with self._lock:
                self._state = 'stopped'
            self._finished.set()
            _running.discard(self)
            if rc < 0:
                self._emit(logging.ERROR, 'icap_server_run failed: %s'
                           % Error(rc))
            # Transactions still registered can no longer finish.
            self._reqs.clear()
            self._calls.clear()

    def serve_forever(self, poll_interval=0.5):
        """Start (if needed) and block until the server stopped.

        Ctrl-C (KeyboardInterrupt) stops the server, waits for it to drain
        and is then re-raised.
        """
        if self._state == 'new':
            self.start()
        try:
            while not self._finished.wait(poll_interval):
                pass
        except KeyboardInterrupt:
            self.stop()
            self._finished.wait()
            raise
        if self._run_rc is not None and self._run_rc < 0:
            raise Error(self._run_rc, 'icap_server_run')

    def stop(self):
        """Stop accepting, let in-flight transactions finish (bounded by
        the drain timeout) and end the loops.  Thread-safe; may be called
        from a handler; does not wait (see :meth:`wait`)."""
        with self._lock:
            if self._p is not None and self._state in ('new', 'running'):
                lib.icap_server_stop(self._p)

    def wait(self, timeout=None):
        """Wait until the loops ended; True if they did."""
        if self._state == 'new':
            return False
        return self._finished.wait(timeout)

    @property
    def running(self):
        return self._state == 'running'

    def close(self):
        """Stop, wait, and free the C server.  Idempotent."""
        if self._state == 'running':
            self.stop()
            self._finished.wait()
        with self._lock:
            if self._p is not None:
                lib.icap_server_free(self._p)
                self._p = None
            self._state = 'closed'
        self._handlers.clear()
        self._services.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            if self._p is not None and self._state in ('new', 'stopped'):
                lib.icap_server_free(self._p)
                self._p = None
        except Exception:
            pass

    # ---------------------------------------------------------- logging
    def _emit(self, level, message):
        fn = self._log_fn
        if fn is not None:
            try:
                fn(level, message)
                return
            except Exception:
                logger.exception('libicap: log callback failed')
        logger.log(level, '%s', message)

    def log_exception(self, context):
        """Log the exception being handled, with its traceback."""
        tb = traceback.format_exc().rstrip()
        self._emit(logging.ERROR, '%s\n%s' % (context, tb))

    # ------------------------------------- C callbacks (loop threads) ---
    # None of these may let an exception escape: ctypes would print it and
    # return a default value to C.

    def _c_log(self, srv, level, msg, user):
        try:
            self._emit(_TO_PY_LEVEL.get(level, logging.INFO), dec(msg))
        except BaseException:
            pass

    def _c_handler(self, p, user):
        r = None
        try:
            entry = self._handlers.get(user)
            if entry is None:
                return ErrorCode.EHANDLER
            svc, method, fn = entry
            r = Request(self, p, svc)
            self._reqs[r._id] = r
            check(lib.icap_request_on_done(p, self._cb_done, r._id),
                  'icap_request_on_done')
            fn(r)
            return 0
        except BaseException:
            try:
                self.log_exception('libicap: %s handler of service %r raised'
                                   % (_lib.METHOD_NAMES.get(
                                       entry[1] if entry else -1, '?'),
                                      entry[0].name if entry else '?'))
                if r is not None:
                    self._reqs.pop(r._id, None)
                    r._invalidate()
            except BaseException:
                pass
            return ErrorCode.EHANDLER

    def _c_done(self, p, status, user):
        try:
            r = self._reqs.pop(user, None)
            if r is None:
                return
            r._done_status = status
            try:
                if r._body_fn is not None and r._body_oneshot:
                    # A read still pending when the transaction ends.
                    fn, r._body_fn = r._body_fn, None
                    fn(r, None, status if status < 0 else ErrorCode.ECANCELED)
                for fn in r._done_fns:
                    fn(r, status)
            except BaseException:
                self.log_exception('libicap: done callback raised')
            finally:
                r._invalidate()
        except BaseException:
            pass

    def _c_body(self, p, status, data, length, user):
        try:
            r = self._reqs.get(user)
            if r is None:
                return
            fn = r._body_fn
            if fn is None:
                return
            if r._body_oneshot or status < 0 or (
                    (status & BODY_END) and not (status & BODY_PREVIEW_END)):
                # One-shot read, failure, or the end of the whole body
                # (push mode goes on after a preview once continued).
                r._body_fn = None
            if status < 0:
                payload = None
            else:
                payload = string_at(data, length) if length else b''
            try:
                fn(r, payload, status)
            except BaseException:
                self.log_exception('libicap: body callback raised')
                r._fail()
        except BaseException:
            pass

    def _c_post(self, p, status, user):
        try:
            call = self._calls.pop(user, None)
            if call is not None:
                call.complete(status)
        except BaseException:
            pass

    def _c_work(self, user):
        try:
            call = self._calls.get(user)
            if call is not None:
                call.work()
        except BaseException:
            pass


class Service:
    """One registered service (a name below the server's address)."""

    def __init__(self, server, p, name):
        self._server = server
        self._p = p
        self.name = name
        self._transfer = ['*', None, None]

    def set_handler(self, method, fn):
        """Handle ``method`` ('OPTIONS', 'REQMOD', 'RESPMOD') with fn(req)."""
        code = _method_code(method)
        if not callable(fn):
            raise TypeError('handler must be callable')
        hid = next(self._server._ids)
        check(lib.icap_service_set_handler(self._p, code,
                                           self._server._cb_handler, hid),
              'icap_service_set_handler')
        self._server._handlers[hid] = (self, code, fn)
        return fn

    def _set_c_handler(self, method, cfunc, user):
        """Install a ctypes HANDLER_CB directly (for libicap.pyicap, which
        dispatches to its own threads); the caller keeps `cfunc` alive."""
        check(lib.icap_service_set_handler(self._p, _method_code(method),
                                           cfunc, user),
              'icap_service_set_handler')

    def reqmod(self, fn):
        return self.set_handler(REQMOD, fn)

    def respmod(self, fn):
        return self.set_handler(RESPMOD, fn)

    def options(self, fn):
        return self.set_handler(OPTIONS, fn)

    def configure(self, *, preview=False, options_ttl=False,
                  max_connections=None, allow_204=None, allow_206=None,
                  transfer_preview=False, transfer_ignore=False,
                  transfer_complete=False, istag=None, options_headers=()):
        """Set OPTIONS values (before the server starts).

        ``preview``: bytes advertised, or None for no Preview header;
        ``options_ttl``: seconds or None; ``max_connections``;
        ``allow_204``/``allow_206``; ``transfer_*``: lists such as ``"*"``
        or None to omit; ``istag``; ``options_headers``: (name, value)
        pairs added to every OPTIONS answer.
        """
        if preview is not False:
            self.set_preview(preview)
        if options_ttl is not False:
            self.set_options_ttl(options_ttl)
        if max_connections is not None:
            check(lib.icap_service_set_max_connections(
                self._p, int(max_connections)),
                'icap_service_set_max_connections')
        if allow_204 is not None or allow_206 is not None:
            self.set_allow(True if allow_204 is None else allow_204,
                           bool(allow_206))
        if (transfer_preview, transfer_ignore,
                transfer_complete) != (False, False, False):
            t = self._transfer
            if transfer_preview is not False:
                t[0] = transfer_preview
            if transfer_ignore is not False:
                t[1] = transfer_ignore
            if transfer_complete is not False:
                t[2] = transfer_complete
            check(lib.icap_service_set_transfer(
                self._p, enc(t[0]), enc(t[1]), enc(t[2])),
                'icap_service_set_transfer')
        if istag is not None:
            self.set_istag(istag)
        for n, v in options_headers:
            check(lib.icap_service_add_options_header(self._p, enc(n),
                                                      enc(v)),
                  'icap_service_add_options_header')
        return self

    def set_preview(self, nbytes):
        check(lib.icap_service_set_preview(
            self._p, -1 if nbytes is None else int(nbytes)),
            'icap_service_set_preview')

    def set_options_ttl(self, seconds):
        check(lib.icap_service_set_options_ttl(
            self._p, -1 if seconds is None else int(seconds)),
            'icap_service_set_options_ttl')

    def set_allow(self, allow_204=True, allow_206=False):
        check(lib.icap_service_set_allow(self._p, int(bool(allow_204)),
                                         int(bool(allow_206))),
              'icap_service_set_allow')

    def set_istag(self, tag):
        """Change the ISTag (without quotes).  Thread-safe: responses that
        start after the call carry the new tag."""
        check(lib.icap_service_set_istag(self._p, enc(tag)),
              'icap_service_set_istag')

    def __repr__(self):
        return '<libicap.Service %r>' % (self.name,)


class RequestHold:
    """A reference to a request that may cross threads, for one post().

    Made by :meth:`Request.hold` on the loop thread.  ``post(fn)`` may be
    called from any thread: ``fn(req, status)`` then runs on the request's
    loop thread, ``status`` 0, or ICAP_ECANCELED when the transaction ended
    meanwhile (``req`` is then no longer usable).  A hold that will not be
    posted must be given back with :meth:`release` on the loop thread.
    """

    __slots__ = ('_req', '_used')

    def __init__(self, req):
        self._req = req
        self._used = False

    def post(self, fn):
        req = self._req
        srv = req._server
        with srv._gate:
            if self._used:
                raise RuntimeError('RequestHold.post() may be called once')
            if not srv._accepting_posts:
                self._used = True
                raise Error(ErrorCode.ECANCELED, 'icap_request_post')
            cid = next(srv._ids)
            srv._calls[cid] = _PostCall(req, fn)
            rc = lib.icap_request_post(req._raw, srv._cb_post, cid)
            if rc < 0:
                srv._calls.pop(cid, None)
                if rc == ErrorCode.ECANCELED:
                    # The loops are gone (icap.h: the reference stays ours;
                    # release it once no loop runs).  The gate keeps the
                    # server from being freed meanwhile.
                    self._used = True
                    lib.icap_request_unref(req._raw)
                raise Error(rc, 'icap_request_post')
            self._used = True

    def release(self):
        """Give the reference back without posting (loop thread only)."""
        if not self._used:
            self._used = True
            if self._req._server._accepting_posts:
                lib.icap_request_unref(self._req._raw)


class _PostCall:
    __slots__ = ('req', 'fn')

    def __init__(self, req, fn):
        self.req, self.fn = req, fn

    def work(self):
        pass

    def complete(self, status):
        try:
            self.fn(self.req, status)
        except BaseException:
            self.req._server.log_exception('libicap: posted callback raised')
            if status == 0:
                self.req._fail()


class _OffloadCall:
    __slots__ = ('req', 'fn', 'done', 'result', 'exc')

    def __init__(self, req, fn, done):
        self.req, self.fn, self.done = req, fn, done
        self.result = self.exc = None

    def work(self):
        try:
            self.result = self.fn()
        except BaseException as e:
            self.exc = e

    def complete(self, status):
        req = self.req
        exc = self.exc
        if exc is None and status < 0:
            exc = Error(status, 'icap_request_offload')
        try:
            if self.done is not None:
                self.done(req, self.result, exc)
            elif exc is not None:
                raise exc
        except BaseException:
            req._server.log_exception('libicap: offloaded work failed')
            if status == 0:
                req._fail()


def _opt_str(b):
    return dec(b) if b else ''


def _head_field(fn):
    """A Request property for a part of the request head: fetched from C
    on first read (``fn(self, p)``) and cached, since the head does not
    change during the transaction.  Every read still checks the thread and
    that the transaction is live."""
    name = fn.__name__

    def get(self):
        p = self._ptr()
        cache = self._cache
        try:
            return cache[name]
        except KeyError:
            value = cache[name] = fn(self, p)
            return value

    return property(get, doc=fn.__doc__)


def _text_field(name, cfunc, doc=None):
    """A cached head field that is a C string (str, latin-1)."""
    def fetch(self, p):
        return dec(getattr(lib, cfunc)(p))
    fetch.__name__ = name
    fetch.__doc__ = doc
    return _head_field(fetch)


class Request:
    """One ICAP transaction, as seen by a handler (loop thread only).

    Header values and start lines are str (bytes decoded as latin-1);
    bodies are bytes.
    """

    def __init__(self, server, p, service):
        self._server = server
        self._p = p          # None once the transaction ended
        self._raw = p        # stays for posts made through holds
        self._id = next(server._ids)
        self._thread = threading.get_ident()
        self._body_fn = None
        self._body_oneshot = True
        self._done_fns = []
        self._done_status = None
        self._cache = {}
        self.service = service

    # ------------------------------------------------------------ basics
    def _ptr(self):
        p = self._p
        if p is None:
            raise Error(ErrorCode.ESTATE, 'request (the transaction ended)')
        if threading.get_ident() != self._thread:
            raise RuntimeError(
                'libicap.Request used outside its loop thread; use '
                'req.hold().post(fn) or req.offload(work, done)')
        return p

    def _invalidate(self):
        self._p = None
        self._body_fn = None
        self._done_fns = []

    def _fail(self, err=ErrorCode.EHANDLER):
        """Abort after a Python error in a callback (500 or close)."""
        p = self._p
        if p is not None:
            lib.icap_request_abort(p, err)

    @property
    def valid(self):
        """False once the transaction ended."""
        return self._p is not None

    def __repr__(self):
        if self._p is None:
            return '<libicap.Request (ended)>'
        return '<libicap.Request %s %s>' % (self.method, self.uri)

    # --------------------------------------------------------- the head
    @_head_field
    def method(self, p):
        """'OPTIONS', 'REQMOD' or 'RESPMOD'."""
        return _lib.METHOD_NAMES.get(lib.icap_request_method(p), '?')

    uri = _text_field('uri', 'icap_request_uri')
    version = _text_field('version', 'icap_request_version')
    service_name = _text_field('service_name', 'icap_request_service_name')

    @_head_field
    def client_address(self, p):
        return (dec(lib.icap_request_client_ip(p)),
                lib.icap_request_client_port(p))

    @_head_field
    def worker(self, p):
        return lib.icap_request_worker(p)

    def _headers(self, which):
        h = self._cache.get(which)
        if h is None:
            p = self._ptr()
            n = lib.icap_request_header_count(p, which)
            name, value = c_char_p(), c_char_p()
            items = []
            for i in range(n):
                if lib.icap_request_header_at(p, which, i, byref(name),
                                              byref(value)) == 0:
                    items.append((dec(name.value), dec(value.value)))
            h = self._cache[which] = Headers(items)
        return h

    @property
    def icap_headers(self):
        """The ICAP request headers (:class:`libicap.Headers`)."""
        return self._headers(_lib.HEADERS_ICAP)

    @property
    def http_request_headers(self):
        """Headers of the encapsulated HTTP request (req-hdr)."""
        return self._headers(_lib.HEADERS_HTTP_REQ)

    @property
    def http_response_headers(self):
        """Headers of the encapsulated HTTP response (res-hdr)."""
        return self._headers(_lib.HEADERS_HTTP_RES)

    @property
    def encapsulated(self):
        """{'req-hdr': 0, 'res-body': 120, ...}: the Encapsulated header
        (a new dict on every read)."""
        return dict(self._encapsulated)

    @_head_field
    def _encapsulated(self, p):
        out = {}
        for i, name in enumerate(_lib.SECTIONS):
            off = lib.icap_request_encapsulated(p, i)
            if off >= 0:
                out[name] = off
        return out

    def raw_section(self, section):
        """Raw bytes of a header section ('req-hdr' or 'res-hdr')."""
        idx = _lib.SECTIONS.index(section) if isinstance(section, str) \
            else int(section)
        n = c_size_t(0)
        ptr = lib.icap_request_raw_section(self._ptr(), idx, byref(n))
        return string_at(ptr, n.value) if ptr and n.value else b''

    http_method = _text_field('http_method', 'icap_request_http_method')
    http_uri = _text_field('http_uri', 'icap_request_http_uri')
    http_request_version = _text_field('http_request_version',
                                       'icap_request_http_req_version')

    @_head_field
    def http_status(self, p):
        """Status code of the encapsulated HTTP response, or None."""
        code = lib.icap_request_http_status(p)
        return None if code < 0 else code

    http_reason = _text_field('http_reason', 'icap_request_http_reason')
    http_response_version = _text_field('http_response_version',
                                        'icap_request_http_res_version')

    @_head_field
    def has_body(self, p):
        return bool(lib.icap_request_has_body(p))

    @_head_field
    def preview(self, p):
        """The Preview: value, or None without a preview."""
        n = lib.icap_request_preview(p)
        return None if n < 0 else n

    @property
    def ieof(self):
        return bool(lib.icap_request_ieof(self._ptr()))

    @property
    def in_preview(self):
        return bool(lib.icap_request_in_preview(self._ptr()))

    def allows(self, code):
        """True if the client's Allow headers list `code` (204 or 206)."""
        return bool(lib.icap_request_allows(self._ptr(), int(code)))

    @property
    def allow(self):
        """The set of codes among {204, 206} the client allows."""
        return frozenset(c for c in (204, 206) if self.allows(c))

    @property
    def response_code(self):
        """ICAP status set or sent so far, or 0."""
        return lib.icap_request_response_code(self._ptr())

    @property
    def write_queue_size(self):
        """Bytes queued for the client and not yet written."""
        return lib.icap_request_write_queue_size(self._ptr())

    # -------------------------------------------------------- callbacks
    def on_done(self, fn):
        """Call ``fn(req, status)`` once when the transaction ends (status
        0: response complete; ICAP_ECONNRESET, ICAP_ETIMEDOUT,
        ICAP_ECANCELED otherwise).  Several callbacks may be added."""
        self._ptr()
        self._done_fns.append(fn)
        return fn

    # ---------------------------------------------------------- reading
    def read_chunk(self, fn):
        """Deliver the next piece of the body once: ``fn(req, data,
        flags)`` with data bytes and flags a mix of BODY_END, BODY_IEOF,
        BODY_PREVIEW_END; on a failed read data is None and flags the
        negative error code.  After a preview that ended without ieof the
        library first sends 100 Continue."""
        p = self._ptr()
        if self._body_fn is not None:
            raise Error(ErrorCode.EBUSY, 'read_chunk')
        self._body_fn, self._body_oneshot = fn, True
        rc = lib.icap_request_read_chunk(p, self._server._cb_body, self._id)
        if rc < 0:
            if self._body_fn is fn:
                self._body_fn = None
            raise Error(rc, 'icap_request_read_chunk')

    def on_body(self, fn):
        """Push mode: ``fn(req, data, flags)`` for every piece until
        BODY_END or an error (same arguments as :meth:`read_chunk`).
        ``on_body(None)`` stops it."""
        p = self._ptr()
        if fn is None:
            self._body_fn = None
            check(lib.icap_request_set_body_cb(p, BODY_CB(), None),
                  'icap_request_set_body_cb')
            return
        self._body_fn, self._body_oneshot = fn, False
        rc = lib.icap_request_set_body_cb(p, self._server._cb_body, self._id)
        if rc < 0:
            self._body_fn = None
            raise Error(rc, 'icap_request_set_body_cb')

    def pause(self):
        check(lib.icap_request_pause(self._ptr()), 'icap_request_pause')

    def resume(self):
        check(lib.icap_request_resume(self._ptr()), 'icap_request_resume')

    def continue_(self):
        """Send 100 Continue after a preview that ended without ieof."""
        check(lib.icap_request_continue(self._ptr()), 'icap_request_continue')

    cont = continue_

    def read_body(self, fn, max_bytes=None):
        """Read the whole body (sending 100 Continue after a preview if
        needed), then call ``fn(req, body)``; body is None if the read
        failed (the transaction is then over).  More than ``max_bytes``
        makes the transaction fail with ICAP_ELIMIT (500)."""
        if not self.has_body:
            fn(self, b'')
            return
        parts = []
        total = [0]

        def piece(req, data, flags):
            if data is None:
                fn(req, None)
                return
            if data:
                parts.append(data)
                total[0] += len(data)
                if max_bytes is not None and total[0] > max_bytes:
                    lib.icap_request_abort(req._ptr(), ErrorCode.ELIMIT)
                    return
            if (flags & BODY_END) and not (flags & BODY_PREVIEW_END):
                fn(req, b''.join(parts))
            else:
                req.read_chunk(piece)

        self.read_chunk(piece)

    # -------------------------------------------------------- answering
    def send_error(self, code):
        """A complete bodiless response with this status (e.g. 403)."""
        check(lib.icap_request_send_error(self._ptr(), int(code)),
              'icap_request_send_error')

    def no_adaptation(self):
        """204 if allowed (Allow: 204 or a preview), else the original
        message echoed unchanged (streamed, never buffered whole)."""
        check(lib.icap_request_no_adaptation(self._ptr()),
              'icap_request_no_adaptation')

    def set_status(self, code):
        check(lib.icap_request_set_status(self._ptr(), int(code)),
              'icap_request_set_status')

    def set_icap_header(self, name, value):
        check(lib.icap_request_set_icap_header(self._ptr(), enc(name),
                                               enc(value)),
              'icap_request_set_icap_header')

    def set_http_status(self, status_line):
        """Answer with an HTTP response: 'HTTP/1.1 403 Forbidden'."""
        check(lib.icap_request_set_http_status(self._ptr(), enc(status_line)),
              'icap_request_set_http_status')

    def set_http_request(self, request_line):
        """Answer with an HTTP request (REQMOD): 'GET http://x/ HTTP/1.1'."""
        check(lib.icap_request_set_http_request(self._ptr(),
                                                enc(request_line)),
              'icap_request_set_http_request')

    def add_http_header(self, name, value):
        check(lib.icap_request_add_http_header(self._ptr(), enc(name),
                                               enc(value)),
              'icap_request_add_http_header')

    def copy_http_head(self, skip=()):
        """Copy the original start line and headers into the response,
        except the headers named in `skip`."""
        names = [enc(n) for n in skip]
        arr = (c_char_p * (len(names) + 1))(*names, None)
        check(lib.icap_request_copy_http_head(self._ptr(), arr),
              'icap_request_copy_http_head')

    def send_headers(self, has_body=False):
        check(lib.icap_request_send_headers(self._ptr(), int(bool(has_body))),
              'icap_request_send_headers')

    def send_chunk(self, data):
        """Send one body chunk (copied); b'' ends the body."""
        if not isinstance(data, bytes):
            data = bytes(data) if not isinstance(data, str) \
                else data.encode('latin-1')
        check(lib.icap_request_send_chunk(self._ptr(), data, len(data)),
              'icap_request_send_chunk')

    def end(self):
        check(lib.icap_request_end(self._ptr()), 'icap_request_end')

    def end_use_original(self, offset):
        """End a 206 body: the client uses its original body from offset."""
        check(lib.icap_request_end_use_original(self._ptr(), int(offset)),
              'icap_request_end_use_original')

    def respond(self, body=None, *, status=200, http_status=None,
                http_request=None, headers=()):
        """Shortcut: set the start line and headers, send them and the
        whole body (bytes or None), end."""
        self.set_status(status)
        if http_status is not None:
            self.set_http_status(http_status)
        if http_request is not None:
            self.set_http_request(http_request)
        for n, v in (headers.items() if hasattr(headers, 'items')
                     else headers):
            self.add_http_header(n, v)
        self.send_headers(body is not None)
        if body is not None:
            if body:
                self.send_chunk(body)
            self.end()

    def abort(self, err=ErrorCode.EHANDLER):
        """Fail the transaction: 500 if nothing was sent, then close."""
        check(lib.icap_request_abort(self._ptr(), int(err)),
              'icap_request_abort')

    # ----------------------------------------------------- other threads
    def hold(self):
        """Take a reference for one cross-thread post (see RequestHold)."""
        lib.icap_request_ref(self._ptr())
        return RequestHold(self)

    def offload(self, work, done=None):
        """Run ``work()`` on libuv's thread pool (blocking allowed, no
        Request calls there), then ``done(req, result, exc)`` on the loop
        thread (exc is the exception work raised, or an Error when the
        transaction ended meanwhile).  Without ``done`` an exception fails
        the transaction."""
        p = self._ptr()
        srv = self._server
        cid = next(srv._ids)
        srv._calls[cid] = _OffloadCall(self, work, done)
        rc = lib.icap_request_offload(p, srv._cb_work, srv._cb_post, cid)
        if rc < 0:
            srv._calls.pop(cid, None)
            raise Error(rc, 'icap_request_offload')
