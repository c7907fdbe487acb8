#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""native_echo.py - the echo service on libicap's native Python layer.

    export PYTHONPATH=bindings/python
    python3 bindings/python/examples/native_echo.py --port 1344

Service "echo" answers REQMOD and RESPMOD with ``req.no_adaptation()``:
204 when the client allows it (or during a preview), else the message is
echoed unchanged, its body streamed through by libicap.  The handler runs
on the loop thread and does not block.  It is the native counterpart of
``echo.py`` (the pyicap-compatible layer) in ``bench/python_compare.py``.
Ctrl-C (SIGINT) or SIGTERM stops it.
"""

import argparse
import signal

import libicap


def _stop(signum, frame):
    raise KeyboardInterrupt


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--host', default='127.0.0.1')
    ap.add_argument('--port', type=int, default=1344)
    ap.add_argument('--workers', type=int, default=1,
                    help='libicap event loops (default 1)')
    args = ap.parse_args()

    srv = libicap.Server(workers=args.workers)

    @srv.reqmod('echo')
    @srv.respmod('echo')
    def echo(req):
        req.no_adaptation()

    signal.signal(signal.SIGTERM, _stop)
    port = srv.listen(args.host, args.port)
    print('native_echo.py: listening on %s:%d' % (args.host, port),
          flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.close()


if __name__ == '__main__':
    main()
