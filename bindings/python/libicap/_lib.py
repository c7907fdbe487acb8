# SPDX-License-Identifier: MIT
"""Loading libicap.so and describing its C ABI to ctypes.

Everything the package calls in C is listed once, in ``_FUNCTIONS``: name,
argument types and result type.  The table is checked when the module is
imported, so a library that lacks a symbol fails at import time with an
ImportError that says the library is too old, never later in the middle of
a transaction.

The library is found, in this order, at:

1. the path in the environment variable ``LIBICAP_LIBRARY``;
2. a build tree of the source checkout this package lives in
   (``<checkout>/build*/libicap.so.0``), when the package is used straight
   from ``bindings/python``;
3. the directory recorded at install time (``_install_paths.LIBDIR``), when
   the package was installed by ``cmake --install``;
4. the system: ``ctypes.util.find_library('icap')``, then ``libicap.so.0``.
"""

import ctypes
import ctypes.util
import enum
import os
from ctypes import (CFUNCTYPE, POINTER, c_char_p, c_int, c_int64, c_size_t,
                    c_uint, c_uint64, c_void_p)

__all__ = ['lib', 'library_path', 'Error', 'ErrorCode', 'check']

# --------------------------------------------------------- callback types ---
# Handles (icap_server*, icap_request*...) are plain c_void_p integers.  The
# `user` pointer of every callback carries a small integer key into a Python
# table, never a Python object address: a stale key can be detected, a stale
# address cannot.

#: void (*icap_log_cb)(icap_server *, icap_log_level, const char *, void *)
LOG_CB = CFUNCTYPE(None, c_void_p, c_int, c_char_p, c_void_p)
#: int (*icap_handler_cb)(icap_request *, void *)
HANDLER_CB = CFUNCTYPE(c_int, c_void_p, c_void_p)
#: void (*icap_done_cb)(icap_request *, int status, void *)
DONE_CB = CFUNCTYPE(None, c_void_p, c_int, c_void_p)
#: void (*icap_body_cb)(icap_request *, int status, const char *, size_t,
#:                       void *)
#: (data as c_void_p: ctypes would stop a c_char_p at the first NUL byte)
BODY_CB = CFUNCTYPE(None, c_void_p, c_int, c_void_p, c_size_t, c_void_p)
#: void (*icap_post_cb)(icap_request *, int status, void *)
POST_CB = CFUNCTYPE(None, c_void_p, c_int, c_void_p)
#: void (*icap_work_cb)(void *)
WORK_CB = CFUNCTYPE(None, c_void_p)

_p = c_void_p
_s = c_char_p

# ------------------------------------------------------- the one table ---
_FUNCTIONS = [
    # errors, versions, reason phrases (pure, thread-safe)
    ('icap_strerror', [c_int], _s),
    ('icap_err_name', [c_int], _s),
    ('icap_version', [], c_uint),
    ('icap_version_string', [], _s),
    ('icap_status_reason', [c_int], _s),
    # server
    ('icap_server_new', [POINTER(c_void_p)], c_int),
    ('icap_server_free', [_p], None),
    ('icap_server_set_workers', [_p, c_uint], c_int),
    ('icap_server_set_limit', [_p, c_int, c_uint64], c_int),
    ('icap_server_get_limit', [_p, c_int], c_uint64),
    ('icap_server_set_server_header', [_p, _s], c_int),
    ('icap_server_set_log', [_p, c_int, LOG_CB, _p], c_int),
    ('icap_server_listen', [_p, _s, c_int], c_int),
    ('icap_server_port', [_p, c_uint], c_int),
    ('icap_server_run', [_p], c_int),
    ('icap_server_stop', [_p], None),
    # services
    ('icap_server_add_service', [_p, _s, POINTER(c_void_p)], c_int),
    ('icap_service_set_handler', [_p, c_int, HANDLER_CB, _p], c_int),
    ('icap_service_set_istag', [_p, _s], c_int),
    ('icap_service_set_preview', [_p, c_int64], c_int),
    ('icap_service_set_options_ttl', [_p, c_int64], c_int),
    ('icap_service_set_max_connections', [_p, c_uint64], c_int),
    ('icap_service_set_allow', [_p, c_int, c_int], c_int),
    ('icap_service_set_transfer', [_p, _s, _s, _s], c_int),
    ('icap_service_add_options_header', [_p, _s, _s], c_int),
    ('icap_service_name', [_p], _s),
    # request: what the client sent
    ('icap_request_method', [_p], c_int),
    ('icap_request_method_name', [_p], _s),
    ('icap_request_uri', [_p], _s),
    ('icap_request_version', [_p], _s),
    ('icap_request_service_name', [_p], _s),
    ('icap_request_service', [_p], _p),
    ('icap_request_client_ip', [_p], _s),
    ('icap_request_client_port', [_p], c_int),
    ('icap_request_worker', [_p], c_uint),
    ('icap_request_header', [_p, c_int, _s, c_size_t], _s),
    ('icap_request_header_count', [_p, c_int], c_size_t),
    ('icap_request_header_at',
     [_p, c_int, c_size_t, POINTER(c_char_p), POINTER(c_char_p)], c_int),
    ('icap_request_encapsulated', [_p, c_int], c_int64),
    ('icap_request_http_method', [_p], _s),
    ('icap_request_http_uri', [_p], _s),
    ('icap_request_http_req_version', [_p], _s),
    ('icap_request_http_status', [_p], c_int),
    ('icap_request_http_reason', [_p], _s),
    ('icap_request_http_res_version', [_p], _s),
    ('icap_request_raw_section', [_p, c_int, POINTER(c_size_t)], _p),
    ('icap_request_has_body', [_p], c_int),
    ('icap_request_preview', [_p], c_int64),
    ('icap_request_ieof', [_p], c_int),
    ('icap_request_allows', [_p, c_int], c_int),
    ('icap_request_in_preview', [_p], c_int),
    ('icap_request_response_code', [_p], c_int),
    ('icap_request_on_done', [_p, DONE_CB, _p], c_int),
    # request: body
    ('icap_request_read_chunk', [_p, BODY_CB, _p], c_int),
    ('icap_request_set_body_cb', [_p, BODY_CB, _p], c_int),
    ('icap_request_pause', [_p], c_int),
    ('icap_request_resume', [_p], c_int),
    ('icap_request_continue', [_p], c_int),
    # request: answering
    ('icap_request_send_error', [_p, c_int], c_int),
    ('icap_request_no_adaptation', [_p], c_int),
    ('icap_request_set_status', [_p, c_int], c_int),
    ('icap_request_set_icap_header', [_p, _s, _s], c_int),
    ('icap_request_set_http_status', [_p, _s], c_int),
    ('icap_request_set_http_request', [_p, _s], c_int),
    ('icap_request_add_http_header', [_p, _s, _s], c_int),
    ('icap_request_copy_http_head', [_p, POINTER(c_char_p)], c_int),
    ('icap_request_send_headers', [_p, c_int], c_int),
    ('icap_request_send_chunk', [_p, _s, c_size_t], c_int),
    ('icap_request_end', [_p], c_int),
    ('icap_request_end_use_original', [_p, c_uint64], c_int),
    ('icap_request_abort', [_p, c_int], c_int),
    ('icap_request_write_queue_size', [_p], c_size_t),
    # request: references and cross-thread work
    ('icap_request_ref', [_p], None),
    ('icap_request_unref', [_p], None),
    ('icap_request_post', [_p, POST_CB, _p], c_int),
    ('icap_request_offload', [_p, WORK_CB, POST_CB, _p], c_int),
]

# ------------------------------------------------------------ constants ---


class ErrorCode(enum.IntEnum):
    """The ICAP_E* codes of icap.h (codes are only ever appended)."""
    OK = 0
    EINVAL = -1
    ENOMEM = -2
    ESTATE = -3
    EEXIST = -4
    ENOENT = -5
    EADDRINUSE = -6
    EADDRNOTAVAIL = -7
    EIO = -8
    ECONNRESET = -9
    ETIMEDOUT = -10
    ECANCELED = -11
    EPROTO = -12
    ELIMIT = -13
    EBUSY = -14
    ECONSUMED = -15
    EHANDLER = -16
    ENOTSUP = -17


# icap_method
METHOD_OPTIONS, METHOD_REQMOD, METHOD_RESPMOD = 0, 1, 2
METHOD_NAMES = {METHOD_OPTIONS: 'OPTIONS', METHOD_REQMOD: 'REQMOD',
                METHOD_RESPMOD: 'RESPMOD'}
# icap_log_level
LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG = 0, 1, 2, 3
# icap_headers
HEADERS_ICAP, HEADERS_HTTP_REQ, HEADERS_HTTP_RES = 0, 1, 2
# icap_section, with the names used in an Encapsulated header
SECTIONS = ('req-hdr', 'res-hdr', 'req-body', 'res-body', 'null-body',
            'opt-body')
# body callback flags
BODY_END, BODY_IEOF, BODY_PREVIEW_END = 1, 2, 4


class Limit(enum.IntEnum):
    """icap_limit: configurable limits and timeouts (see icap.h)."""
    HEADER_BYTES = 0
    HEADER_COUNT = 1
    HTTP_HEADER_BYTES = 2
    HTTP_HEADER_COUNT = 3
    CHUNK_SIZE = 4
    PREVIEW_BYTES = 5
    BUFFER_BYTES = 6
    CONNECTIONS = 7
    IDLE_TIMEOUT_MS = 8
    READ_TIMEOUT_MS = 9
    HANDLER_TIMEOUT_MS = 10
    DRAIN_TIMEOUT_MS = 11
    WRITE_TIMEOUT_MS = 12


# --------------------------------------------------------------- finding ---
ENV_VAR = 'LIBICAP_LIBRARY'
SONAME = 'libicap.so.0'


def _checkout_root():
    """The source checkout this package sits in, or None if installed."""
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(os.path.dirname(here)))
    if os.path.isfile(os.path.join(root, 'include', 'icap', 'icap.h')):
        return root
    return None


def _build_tree_candidates(root):
    """libicap.so.0 files in <root>/build*/ (and one level below): the
    README's <root>/build first, then the others newest first. Sanitizer
    builds (build-asan, build-tsan) come last: their library cannot be
    loaded into a plain python3."""
    found = []
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return []
    for name in names:
        d = os.path.join(root, name)
        if not name.startswith('build') or not os.path.isdir(d):
            continue
        for sub in ('', 'src', 'lib'):
            for f in (SONAME, 'libicap.so'):
                p = os.path.join(d, sub, f)
                if os.path.isfile(p):
                    found.append(p)
                    break
            else:
                continue
            break
    def rank(p):
        d = os.path.basename(os.path.dirname(p)) if os.path.basename(os.path.dirname(p)).startswith('build') \
            else os.path.basename(os.path.dirname(os.path.dirname(p)))
        sanitizer = any(x in d for x in ('asan', 'tsan', 'ubsan', 'msan'))
        return (d != 'build', sanitizer, -os.path.getmtime(p))
    found.sort(key=rank)
    return found


def _install_candidates():
    try:
        from . import _install_paths  # written by cmake --install
    except ImportError:
        return []
    return [os.path.join(_install_paths.LIBDIR, SONAME)]


def _load():
    tried = []
    env = os.environ.get(ENV_VAR)
    if env:
        try:
            return ctypes.CDLL(env), env
        except OSError as e:
            raise ImportError('libicap: cannot load %s=%s: %s'
                              % (ENV_VAR, env, e)) from None
    candidates = []
    root = _checkout_root()
    if root:
        candidates += _build_tree_candidates(root)
    candidates += _install_candidates()
    for path in candidates:
        try:
            return ctypes.CDLL(path), path
        except OSError as e:
            tried.append('%s (%s)' % (path, e))
    for name in (ctypes.util.find_library('icap'), SONAME):
        if not name:
            continue
        try:
            return ctypes.CDLL(name), name
        except OSError as e:
            tried.append('%s (%s)' % (name, e))
    raise ImportError(
        'libicap: libicap.so not found; set %s to its path, build it in '
        '%s/build, or install it. Tried: %s'
        % (ENV_VAR, root or '<checkout>', '; '.join(tried) or 'nothing'))


def _holds_gil(name):
    """Whether `name` is called without releasing the GIL.

    A ctypes.CDLL call releases the GIL and takes it back afterwards.  For
    the request functions, which are short and never block, that costs
    more than the call: while handler threads of libicap.pyicap wait for
    the GIL, every such call on the loop thread hands it over and queues
    for it again (a convoy of thread switches per transaction).  They are
    called through a PyDLL handle of the same library instead, which
    keeps the GIL.  That is safe because none of them waits for anything
    a thread holding the GIL could be waiting for: icap_request_post()
    takes its worker's post lock only for a push, and the loop runs the
    posted callbacks (which need the GIL) after releasing it.  Server and
    service configuration, icap_server_run() (which blocks for the
    server's lifetime) and icap_server_free() release the GIL as usual.
    """
    return name.startswith('icap_request_') or name in (
        'icap_strerror', 'icap_err_name', 'icap_status_reason',
        'icap_version', 'icap_version_string', 'icap_service_name')


def _bind(cdll, path):
    missing = []
    gil = ctypes.PyDLL(path, handle=cdll._handle)
    for name, argtypes, restype in _FUNCTIONS:
        try:
            fn = getattr(gil if _holds_gil(name) else cdll, name)
        except AttributeError:
            missing.append(name)
            continue
        fn.argtypes = argtypes
        fn.restype = restype
        setattr(cdll, name, fn)
    if missing:
        raise ImportError(
            'libicap: the library at %s is too old for these bindings: '
            'missing symbol(s) %s' % (path, ', '.join(missing)))


lib, library_path = _load()
_bind(lib, library_path)

#: version of the loaded library, e.g. "0.1.0"
version_string = lib.icap_version_string().decode('ascii', 'replace')
version = lib.icap_version()


# ---------------------------------------------------------------- errors ---


class Error(OSError):
    """A libicap call returned a negative ICAP_E* code.

    ``code`` is the code (also ``errno``), ``name`` its icap_err_name()
    ("ICAP_EINVAL") and ``strerror`` its icap_strerror() message;
    ``function`` names the C function (or operation) that failed.
    """

    def __init__(self, code, function=None):
        code = int(code)
        name = lib.icap_err_name(code).decode('ascii', 'replace')
        message = lib.icap_strerror(code).decode('ascii', 'replace')
        super().__init__(code, message)
        self.code = code
        self.name = name
        self.function = function

    def __str__(self):
        where = '%s: ' % self.function if self.function else ''
        return '%s%s (%s)' % (where, self.strerror, self.name)

    def __reduce__(self):
        return (type(self), (self.code, self.function))


def check(rc, function=None):
    """Return rc if it is >= 0, else raise Error(rc)."""
    if rc < 0:
        raise Error(rc, function)
    return rc


def status_reason(code):
    """The standard reason phrase of an ICAP status code."""
    r = lib.icap_status_reason(int(code))
    return r.decode('latin-1') if r else ''


# ------------------------------------------------------------ text codec ---
# ICAP and HTTP header bytes are handed to Python as str decoded as latin-1
# (every byte maps to one code point, so nothing is lost and the value can
# be encoded back unchanged).  Text given by the user is encoded as latin-1,
# or UTF-8 when it has characters latin-1 cannot hold.


def dec(b):
    return b.decode('latin-1') if b else ''


def enc(s):
    if s is None:
        return None
    if isinstance(s, (bytes, bytearray, memoryview)):
        b = bytes(s)
    else:
        s = str(s)
        try:
            b = s.encode('latin-1')
        except UnicodeEncodeError:
            b = s.encode('utf-8')
    if b'\0' in b:
        raise ValueError('NUL byte in a header name or value')
    return b
