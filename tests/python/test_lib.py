# SPDX-License-Identifier: MIT
"""Loading libicap.so and the C ABI table."""

import ctypes.util
import os
import subprocess
import sys
import unittest

import libicap
from libicap import _lib


def run_import(env_extra):
    env = dict(os.environ)
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, '-c', 'import libicap'], env=env,
        capture_output=True, text=True, timeout=60)


class LoadTest(unittest.TestCase):
    def test_loaded(self):
        self.assertTrue(libicap.library_path)
        self.assertRegex(libicap.version_string, r'^\d+\.\d+\.\d+')
        major, minor, patch = map(int, libicap.version_string.split('.')[:3])
        self.assertEqual(libicap.version, (major << 16) | (minor << 8) | patch)

    def test_env_var_wins(self):
        want = os.environ.get('LIBICAP_LIBRARY')
        if not want:
            self.skipTest('LIBICAP_LIBRARY not set')
        self.assertEqual(libicap.library_path, want)

    def test_table_complete_and_typed(self):
        names = [n for n, _, _ in _lib._FUNCTIONS]
        self.assertEqual(len(names), len(set(names)))
        for name in names:
            self.assertTrue(name.startswith('icap_'))
            fn = getattr(_lib.lib, name)
            self.assertIsNotNone(fn.argtypes, name)

    def test_bad_path_is_import_error(self):
        p = run_import({'LIBICAP_LIBRARY': '/nonexistent/libicap.so.0'})
        self.assertNotEqual(p.returncode, 0)
        self.assertIn('ImportError', p.stderr)
        self.assertIn('LIBICAP_LIBRARY', p.stderr)

    def test_library_without_symbols_is_too_old(self):
        libc = ctypes.util.find_library('c')
        if not libc:
            self.skipTest('no libc found')
        p = run_import({'LIBICAP_LIBRARY': libc})
        self.assertNotEqual(p.returncode, 0)
        self.assertIn('too old', p.stderr)
        self.assertIn('icap_strerror', p.stderr)


class ErrorTest(unittest.TestCase):
    def test_error_fields(self):
        e = libicap.Error(libicap.ErrorCode.EINVAL, 'icap_x')
        self.assertIsInstance(e, OSError)
        self.assertEqual(e.code, -1)
        self.assertEqual(e.errno, -1)
        self.assertEqual(e.name, 'ICAP_EINVAL')
        self.assertEqual(e.strerror, 'invalid argument')
        self.assertEqual(str(e), 'icap_x: invalid argument (ICAP_EINVAL)')

    def test_names_match_the_c_table(self):
        for code in libicap.ErrorCode:
            if code == 0:
                continue
            self.assertEqual(libicap.Error(code).name, 'ICAP_' + code.name)

    def test_check(self):
        self.assertEqual(_lib.check(3), 3)
        with self.assertRaises(libicap.Error):
            _lib.check(-3, 'f')

    def test_status_reason(self):
        self.assertEqual(libicap.status_reason(200), 'OK')
        self.assertTrue(libicap.status_reason(204))


if __name__ == '__main__':
    unittest.main()
