# SPDX-License-Identifier: MIT
"""libicap: ICAP (RFC 3507) services in Python, on the libicap C library.

Two layers:

- the native layer (this package): :class:`Server` with decorators per
  service and method; handlers run on libicap's event loop threads and must
  not block::

      import libicap

      srv = libicap.Server()

      @srv.respmod('echo')
      def echo(req):
          req.no_adaptation()

      srv.listen('127.0.0.1', 1344)
      srv.serve_forever()

- :mod:`libicap.pyicap`: pyicap's API (``ICAPServer``,
  ``BaseICAPRequestHandler``) with pyicap's blocking ``read_chunk()``;
  handlers run on Python threads while the loop keeps serving.

The shared library is found through ``LIBICAP_LIBRARY`` (a path), the
source checkout's build tree, the install directory, or the system.
"""

from ._lib import (BODY_END, BODY_IEOF, BODY_PREVIEW_END, Error, ErrorCode,
                   Limit, library_path, status_reason, version,
                   version_string)
from ._headers import Headers
from .server import (OPTIONS, REQMOD, RESPMOD, Request, RequestHold, Server,
                     Service, logger)

__version__ = '0.1.0'

__all__ = [
    'Server', 'Service', 'Request', 'RequestHold', 'Headers', 'Error',
    'ErrorCode', 'Limit', 'OPTIONS', 'REQMOD', 'RESPMOD', 'BODY_END',
    'BODY_IEOF', 'BODY_PREVIEW_END', 'library_path', 'version',
    'version_string', 'status_reason', 'logger',
]
