# SPDX-License-Identifier: MIT
"""The part every test origin server shares (python3 standard library only):
listen on 127.0.0.1 on a port the kernel chooses, write that port to a file
once connections are accepted (written to a temporary name and renamed, so
that a reader never sees half a number), and stop on SIGTERM/SIGINT or after
a maximum lifetime, so that no test leaves a server behind.

Used by tests/interop/origin-server.py (squid-e2e.sh) and
tests/cpp/example-origin.py (squid-examples.sh), which add their handlers.
"""
import os
import signal
import threading
from http.server import ThreadingHTTPServer


def send_file(wfile, path):
    """Writes the file at `path` to `wfile` in 64 KiB pieces."""
    with open(path, "rb") as f:
        while True:
            buf = f.read(65536)
            if not buf:
                break
            wfile.write(buf)


def add_arguments(ap):
    """The options every origin server takes."""
    ap.add_argument("--dir", required=True, help="directory with the files to serve")
    ap.add_argument("--port-file", required=True, help="write the chosen port here")
    ap.add_argument("--max-lifetime", type=float, default=1800.0,
                    help="exit after this many seconds (default 1800)")


def serve(handler, args, **attrs):
    """Serves `handler` until stopped; `attrs` become attributes of the
    server (handlers read them as self.server.<name>). Returns 0."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    srv.files_dir = args.dir
    for k, v in attrs.items():
        setattr(srv, k, v)

    def stop(*_):
        threading.Thread(target=srv.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    timer = threading.Timer(args.max_lifetime, stop)
    timer.daemon = True
    timer.start()

    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.replace(tmp, args.port_file)
    try:
        srv.serve_forever(poll_interval=0.2)
    finally:
        srv.server_close()
    return 0
