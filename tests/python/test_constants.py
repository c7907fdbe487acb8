# SPDX-License-Identifier: MIT
"""The constants in bindings/python/libicap/_lib.py are hand copies of
include/icap/icap.h: this test parses the header (its error X-macro, its
enums and the ICAP_BODY_* macros) and fails on any value that differs, on
any name one side has and the other lacks, and on section names that differ
from what the library's icap_section_name() returns."""

import ctypes
import os
import re
import unittest

from libicap import _lib

HEADER = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..',
                      'include', 'icap', 'icap.h')


def _header_text():
    with open(HEADER) as f:
        text = f.read()
    text = text.replace('\\\n', ' ')  # join macro continuation lines
    return re.sub(r'/\*.*?\*/', ' ', text, flags=re.S)


def _enum(text, name):
    """{ENUMERATOR: value} of `typedef enum name { ... } name;`, without
    the *_COUNT_ enumerators (not part of the ABI)."""
    m = re.search(r'typedef enum %s \{(.*?)\} %s;' % (name, name), text, re.S)
    if not m:
        raise AssertionError('enum %s not found in icap.h' % name)
    out = {}
    for item in m.group(1).split(','):
        item = item.strip()
        if not item or item.startswith('ICAP_ERRNO_MAP') or item.startswith('#'):
            continue
        k, v = (s.strip() for s in item.split('='))
        if not k.endswith('_COUNT_'):
            out[k] = int(v)
    return out


class HeaderConstants(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.text = _header_text()

    def test_error_codes(self):
        c = {'ICAP_' + n: int(v) for n, v in
             re.findall(r'XX\((E[A-Z]+),\s*(-?\d+),', self.text)}
        self.assertGreaterEqual(len(c), 17)
        py = {'ICAP_' + e.name: int(e) for e in _lib.ErrorCode
              if e.name != 'OK'}
        self.assertEqual(py, c)
        self.assertEqual(int(_lib.ErrorCode.OK), 0)  # icap_err_name(0)

    def test_methods(self):
        c = _enum(self.text, 'icap_method')
        py = {'ICAP_METHOD_OPTIONS': _lib.METHOD_OPTIONS,
              'ICAP_METHOD_REQMOD': _lib.METHOD_REQMOD,
              'ICAP_METHOD_RESPMOD': _lib.METHOD_RESPMOD}
        self.assertEqual(py, c)
        self.assertEqual({v: k[len('ICAP_METHOD_'):] for k, v in c.items()},
                         _lib.METHOD_NAMES)

    def test_log_levels(self):
        c = _enum(self.text, 'icap_log_level')
        py = {'ICAP_LOG_' + n: getattr(_lib, 'LOG_' + n)
              for n in ('ERROR', 'WARN', 'INFO', 'DEBUG')}
        self.assertEqual(py, c)

    def test_header_blocks(self):
        c = _enum(self.text, 'icap_headers')
        py = {'ICAP_HEADERS_' + n: getattr(_lib, 'HEADERS_' + n)
              for n in ('ICAP', 'HTTP_REQ', 'HTTP_RES')}
        self.assertEqual(py, c)

    def test_limits(self):
        c = _enum(self.text, 'icap_limit')
        py = {'ICAP_LIMIT_' + e.name: int(e) for e in _lib.Limit}
        self.assertEqual(py, c)

    def test_body_flags(self):
        c = {k: int(v) for k, v in
             re.findall(r'#define\s+(ICAP_BODY_[A-Z_]+)\s+(\d+)u?', self.text)}
        py = {'ICAP_BODY_' + n: getattr(_lib, 'BODY_' + n)
              for n in ('END', 'IEOF', 'PREVIEW_END')}
        self.assertEqual(py, c)

    def test_sections(self):
        c = _enum(self.text, 'icap_section')
        self.assertEqual(sorted(c.values()), list(range(len(_lib.SECTIONS))))
        # The names come from the library itself, so neither copy can drift.
        lib = ctypes.CDLL(_lib.library_path)
        name = lib.icap_section_name
        name.argtypes = [ctypes.c_int]
        name.restype = ctypes.c_char_p
        self.assertEqual(tuple(name(i).decode() for i in sorted(c.values())),
                         _lib.SECTIONS)
        self.assertIsNone(name(len(c)))
        self.assertIsNone(name(-1))


if __name__ == '__main__':
    unittest.main()
