# SPDX-License-Identifier: MIT
"""Direct tests of icap-clamav (examples/clamav) with a raw ICAP client.

A real clamd (clamd_fixture.Clamd: private configuration, test-only
signatures) or the fake one (fake-clamd.py) serves each group; every
icap-clamav runs on a kernel-chosen 127.0.0.1 port and is stopped with
SIGINT. Environment: ICAP_CLAMAV = the icap-clamav binary; PYTHONPATH holds
tests/python (icapclient) and this directory.
"""
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import clamd_fixture as fx
import icapclient as ic

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.environ.get("ICAP_CLAMAV", "")
EICAR = fx.EICAR


def noise(n, seed=17):
    import random
    return random.Random(seed).getrandbits(8 * n).to_bytes(n, "little") if n else b""


class Service:
    """One icap-clamav process."""

    def __init__(self, *args):
        self.proc = subprocess.Popen(
            [BIN, "--host", "127.0.0.1", "--port", "0", "--workers", "2"] + list(args),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.lines = []
        deadline = time.monotonic() + 20
        self.port = None
        while time.monotonic() < deadline and self.port is None:
            r, _, _ = select.select([self.proc.stderr], [], [], 0.5)
            if r:
                line = self.proc.stderr.readline().decode(errors="replace")
                if not line:
                    break
                self.lines.append(line)
                m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
                if m:
                    self.port = int(m.group(1))
        if self.port is None:
            self.stop()
            raise RuntimeError("icap-clamav did not start: " + "".join(self.lines))
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()

    def _drain(self):
        for line in self.proc.stderr:
            self.lines.append(line.decode(errors="replace"))

    def log(self):
        return "".join(self.lines)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.reader_started():
            self.reader.join(10)
        self.proc.stderr.close()
        return self.proc.returncode

    def reader_started(self):
        return getattr(self, "reader", None) is not None

    def respmod(self, body, *, ctype="application/octet-stream", uri="http://origin.test/file.bin",
                preview=1024, allow=(204,), length=True, chunk=None):
        headers = [("Content-Type", ctype)]
        if length:
            headers.append(("Content-Length", str(len(body))))
        return ic.request(self.port, "RESPMOD", "avscan",
                          req_hdr=ic.http_request_head(uri=uri),
                          res_hdr=ic.http_response_head(headers=headers),
                          body=body, preview=preview, allow=allow, chunk=chunk)

    def reqmod(self, body, *, preview=1024, allow=(204,)):
        req_hdr = ic.http_request_head(
            method="POST", uri="http://origin.test/upload",
            headers=[("Content-Type", "application/octet-stream")] +
            ([("Content-Length", str(len(body)))] if body is not None else []))
        return ic.request(self.port, "REQMOD", "avscan", req_hdr=req_hdr, body=body,
                          preview=preview if body is not None else None, allow=allow)

    def istag(self):
        return ic.request(self.port, "OPTIONS", "avscan").header("ISTag")


def http_status(r, section="res-hdr"):
    lines = r.section_lines(section)
    return lines[0] if lines else ""


def wait_istag(svc, prefix):
    """The service's ISTag once it starts with `prefix` (polled, bounded)."""
    tag = None
    for _ in range(100):
        tag = svc.istag()
        if tag and tag.startswith(prefix):
            return tag
        time.sleep(0.1)
    raise AssertionError("ISTag %s never started with %s" % (tag, prefix))


@unittest.skipUnless(BIN and os.access(BIN, os.X_OK), "ICAP_CLAMAV not set")
@unittest.skipUnless(fx.clamd_binary(), "clamd not installed (Debian: clamav-daemon)")
class WithClamd(unittest.TestCase):
    """One real clamd for the class, and one icap-clamav per entry of
    SERVICES (attribute name -> extra arguments) on it."""

    SERVICES = {}

    @classmethod
    def setUpClass(cls):
        cls.clamd = fx.Clamd().start()
        cls.running = []
        for name, extra in cls.SERVICES.items():
            svc = Service("--clamd", "unix:" + cls.clamd.socket, *extra)
            cls.running.append(svc)
            setattr(cls, name, svc)

    @classmethod
    def tearDownClass(cls):
        for svc in cls.running:
            svc.stop()
        cls.clamd.cleanup()


class RealClamd(WithClamd):
    SERVICES = {"svc": ()}

    def assertBlocked(self, r, threat=fx.EICAR_NAME, section="res-hdr"):
        self.assertEqual(r.status, 200, r)
        self.assertTrue(http_status(r, section).startswith("HTTP/1.1 403"), r.sections)
        self.assertEqual(r.header("X-Infection-Found"),
                         "Type=0; Resolution=2; Threat=%s;" % threat)
        self.assertIn(threat.encode(), r.body)
        self.assertIn(b"Virus found", r.body)

    def test_clean_in_preview_is_204(self):
        for allow in ((204,), ()):  # RFC 3507: 204 after a preview needs no Allow
            r = self.svc.respmod(b"a small clean body", allow=allow)
            self.assertEqual(r.status, 204, allow)
            self.assertIsNone(r.header("X-Infection-Found"))

    def test_clean_empty_body_is_204(self):
        self.assertEqual(self.svc.respmod(b"").status, 204)

    def test_clean_after_preview_with_allow_204(self):
        self.assertEqual(self.svc.respmod(noise(20000)).status, 204)

    def test_clean_without_allow_204_is_echoed(self):
        for size in (20000, 100 * 1024, 3 << 20):
            body = noise(size, size)
            r = self.svc.respmod(body, allow=())
            self.assertEqual(r.status, 200)
            self.assertTrue(http_status(r).startswith("HTTP/1.1 200"))
            self.assertEqual(r.body, body, size)

    def test_eicar_in_preview(self):
        self.assertBlocked(self.svc.respmod(b"file: " + EICAR + b"\n"))

    def test_test_pattern(self):
        self.assertBlocked(self.svc.respmod(noise(3000) + fx.PATTERN), threat=fx.PATTERN_NAME)

    def test_eicar_after_preview(self):
        self.assertBlocked(self.svc.respmod(noise(20000) + EICAR + noise(100)))

    def test_eicar_at_start_of_large_body_gets_page(self):
        self.assertBlocked(self.svc.respmod(noise(100) + EICAR + noise(2 << 20)))

    def test_eicar_without_content_length(self):
        self.assertBlocked(self.svc.respmod(noise(5000) + EICAR, length=False, chunk=700))

    def test_late_hit_aborts_without_delivering_the_end(self):
        body = noise(2 << 20) + EICAR + noise(50)
        with self.assertRaises((EOFError, ConnectionError, ValueError)):
            self.svc.respmod(body, allow=())
        self.assertIn(fx.EICAR_NAME, self.svc.log())

    def test_reqmod_upload_blocked(self):
        r = self.svc.reqmod(noise(5000) + EICAR)
        self.assertBlocked(r)  # a 403 HTTP response instead of the request

    def test_reqmod_clean_upload_and_no_body(self):
        self.assertEqual(self.svc.reqmod(noise(5000)).status, 204)
        self.assertEqual(self.svc.reqmod(None).status, 204)

    def test_concurrent_scans(self):
        # 24 transactions at once on both workers, all through the one
        # clamd I/O thread: every verdict belongs to its own body.
        import concurrent.futures
        def one(i):
            body = noise(1000 + 9000 * i, i)
            if i % 3 == 0:
                body = body[:500] + EICAR + body[500:]
            r = self.svc.respmod(body, allow=())
            if i % 3 == 0:
                return i, r.header("X-Infection-Found") is not None
            return i, r.status == 200 and r.body == body
        with concurrent.futures.ThreadPoolExecutor(12) as ex:
            results = list(ex.map(one, range(24)))
        self.assertEqual([ok for _, ok in results], [True] * 24, results)

    def test_client_gone_mid_scan(self):
        # The client leaves in the middle of a long body: the scan is
        # cancelled (its clamd connection closed, not pooled) and the
        # service goes on serving.
        head, rest = ic.build("RESPMOD", "avscan", self.svc.port,
                              req_hdr=ic.http_request_head(),
                              res_hdr=ic.http_response_head(), body=noise(400000), preview=1024)
        for _ in range(5):
            with ic.Client(self.svc.port) as c:
                c.send(head)
                self.assertEqual(c.read_response().status, 100)
                c.send(rest[:150000])
        self.assertEqual(self.svc.respmod(noise(3000)).status, 204)
        self.assertIsNotNone(self.svc.respmod(EICAR).header("X-Infection-Found"))

    def test_istag_from_clamd_version(self):
        # "ClamAV 1.4.6" without a .cvd database: AV-nodb-<hash>.
        tag = wait_istag(self.svc, '"AV-nodb-')
        self.assertRegex(tag, r'^"AV-nodb-[0-9a-f]{8}"$')
        self.assertEqual(self.svc.respmod(b"x").header("ISTag"), tag)


@unittest.skipUnless(BIN and os.access(BIN, os.X_OK), "ICAP_CLAMAV not set")
@unittest.skipUnless(fx.clamd_binary(), "clamd not installed (Debian: clamav-daemon)")
class TcpClamd(unittest.TestCase):
    def test_clamd_over_tcp(self):
        clamd = fx.Clamd(tcp=True).start()
        svc = Service("--clamd", "127.0.0.1:%d" % clamd.tcp_port)
        try:
            self.assertEqual(svc.respmod(noise(20000)).status, 204)
            r = svc.respmod(noise(100) + EICAR + noise(100000))
            self.assertEqual(r.header("X-Infection-Found"),
                             "Type=0; Resolution=2; Threat=%s;" % fx.EICAR_NAME)
        finally:
            svc.stop()
            clamd.cleanup()


class Options(WithClamd):
    SERVICES = {
        "skip": ("--skip-type", "image/", "--skip-ext", "JPG", "--istag", "fixed-tag"),
        "small_pass": ("--max-size", "4096"),
        "small_block": ("--max-size", "4096", "--oversize", "block"),
    }

    def test_skip_type_and_extension(self):
        infected = b"\x89PNG" + EICAR
        self.assertEqual(self.skip.respmod(infected, ctype="image/png").status, 204)
        self.assertEqual(self.skip.respmod(infected, uri="http://o.test/a/b.jpg?x=1").status, 204)
        r = self.skip.respmod(infected, uri="http://o.test/a.jpg/b.exe")
        self.assertEqual(r.header("X-Infection-Found")[:7], "Type=0;")

    def test_skip_ext_advertised_and_fixed_istag(self):
        r = ic.request(self.skip.port, "OPTIONS", "avscan")
        self.assertEqual(r.header("Transfer-Ignore"), "jpg")
        self.assertEqual(r.header("ISTag"), '"fixed-tag"')

    def test_oversize_pass(self):
        body = noise(100) + EICAR + noise(10000)
        self.assertEqual(self.small_pass.respmod(body).status, 204)  # by Content-Length
        r = self.small_pass.respmod(body, length=False, allow=())    # found while reading
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, body)
        self.assertEqual(self.small_pass.respmod(EICAR).header("X-Infection-Found")[:7],
                         "Type=0;")  # small ones are still scanned

    def test_oversize_block(self):
        body = noise(10000)
        for length in (True, False):
            r = self.small_block.respmod(body, length=length)
            self.assertTrue(http_status(r).startswith("HTTP/1.1 403"), (length, r.sections))
            self.assertIn(b"Too large to scan", r.body)


def check_fail_modes(test, closed, opened, bodies, detail=b""):
    """clamd cannot scan: the fail-closed service blocks every body with a
    'scan failed' page (naming `detail`), the --fail-open one passes them,
    even EICAR (204 in the preview, or the body echoed)."""
    for body in bodies:
        r = closed.respmod(body)
        test.assertTrue(http_status(r).startswith("HTTP/1.1 403"), r.sections)
        test.assertIn(b"Virus scan failed", r.body)
        test.assertIn(detail, r.body)
        test.assertIsNone(r.header("X-Infection-Found"))
    test.assertEqual(opened.respmod(EICAR).status, 204)
    big = bodies[-1]
    r = opened.respmod(big, allow=())
    test.assertEqual((r.status, r.body), (200, big))


@unittest.skipUnless(BIN and os.access(BIN, os.X_OK), "ICAP_CLAMAV not set")
@unittest.skipUnless(fx.clamd_binary(), "clamd not installed (Debian: clamav-daemon)")
class ClamdStopped(unittest.TestCase):
    """A working clamd is stopped: pooled connections see EOF, new ones are
    refused; --fail-open passes, the default blocks."""

    def test_fail_open_and_fail_closed(self):
        clamd = fx.Clamd().start()
        sock = "unix:" + clamd.socket
        closed = Service("--clamd", sock, "--scan-timeout", "5000")
        opened = Service("--clamd", sock, "--scan-timeout", "5000", "--fail-open")
        try:
            for s in (closed, opened):  # both work (and pool a connection)
                self.assertEqual(s.respmod(b"x" * 5000).status, 204)
                self.assertIsNotNone(s.respmod(EICAR).header("X-Infection-Found"))
            clamd.stop()
            check_fail_modes(self, closed, opened, (b"clean", noise(5000), noise(200000)))
        finally:
            closed.stop()
            opened.stop()
            clamd.cleanup()
        self.assertRegex(closed.log(), r"clamd errors [1-9]")
        self.assertIn("failed", opened.log())


@unittest.skipUnless(BIN and os.access(BIN, os.X_OK), "ICAP_CLAMAV not set")
class FakeClamd(unittest.TestCase):
    def start_fake(self, mode, version_file=None):
        d = tempfile.mkdtemp(prefix="fakeclamd.", dir="/tmp")
        self.addCleanup(shutil.rmtree, d, True)
        sock = os.path.join(d, "s")
        self.accepted = os.path.join(d, "accepted")
        args = [sys.executable, os.path.join(HERE, "fake-clamd.py"), "--socket", sock,
                "--mode", mode, "--max-lifetime", "300", "--accept-log", self.accepted]
        if version_file:
            args += ["--version-file", version_file]
        p = subprocess.Popen(args)
        for _ in range(100):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        self.addCleanup(lambda: (p.terminate(), p.wait(10)))
        return "unix:" + sock, d

    def fail_modes_on(self, mode, detail, *extra):
        """A fail-closed and a --fail-open service on a fake clamd."""
        sock, _ = self.start_fake(mode, os.devnull)
        closed = Service("--clamd", sock, *extra)
        opened = Service("--clamd", sock, "--fail-open", *extra)
        try:
            check_fail_modes(self, closed, opened, (b"small", noise(300000)), detail)
        finally:
            closed.stop()
            opened.stop()

    def test_stalled_clamd_times_out(self):
        self.fail_modes_on("stall", b"no progress for 300 ms", "--scan-timeout", "300")

    def test_clamd_error_reply(self):
        self.fail_modes_on("error", b"INSTREAM size limit exceeded. ERROR", "--istag", "fixed")

    def test_pool_reuses_one_connection(self):
        # A fixed ISTag: no VERSION polls, so every connection is a scan's.
        sock, _ = self.start_fake("version", os.devnull)
        svc = Service("--clamd", sock, "--istag", "fixed")
        try:
            for i in range(30):  # one after the other: one pooled session
                self.assertEqual(svc.respmod(noise(100 + i, i)).status, 204)
        finally:
            svc.stop()
        with open(self.accepted) as f:
            self.assertEqual(len(f.readlines()), 1)

    def test_istag_follows_clamd_version(self):
        vd = tempfile.mkdtemp(prefix="fakever.", dir="/tmp")
        self.addCleanup(shutil.rmtree, vd, True)
        vf = os.path.join(vd, "version")
        with open(vf, "w") as f:
            f.write("ClamAV 1.0.7/27000/Mon Dec  1 09:00:00 2026\n")
        sock, _ = self.start_fake("version", vf)
        svc = Service("--clamd", sock, "--istag-refresh", "200")
        try:
            first = wait_istag(svc, '"AV-27000-')
            self.assertEqual(svc.respmod(b"clean").status, 204)
            with open(vf, "w") as f:
                f.write("ClamAV 1.0.7/27001/Tue Dec  2 09:00:00 2026\n")
            second = wait_istag(svc, '"AV-27001-')
            self.assertNotEqual(first, second)
            self.assertLessEqual(len(second), 32)
        finally:
            svc.stop()


if __name__ == "__main__":
    unittest.main()
