# SPDX-License-Identifier: MIT
"""Running a libicap.pyicap server on a background thread in a test."""

import threading


class Serving:
    """``serve_forever()`` of `server` on a daemon thread; ``port`` is the
    port it listens on.  ``close()`` shuts it down, closes it and joins the
    thread (bounded)."""

    def __init__(self, server):
        self.server = server
        self.port = server.server_address[1]
        self.thread = threading.Thread(target=server.serve_forever,
                                       kwargs={'poll_interval': 0.1},
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)
