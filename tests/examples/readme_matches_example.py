#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A README example must be its example file (from its first #include on),
so that the code a newcomer copies is the code the tests build and run.

usage: readme_matches_example.py README.md FILE [SECTION LANG]
  SECTION defaults to "A service in C" and LANG to "c": the README's C
  example must be examples/filter.c; "A service in C++" "cpp" checks
  examples/cpp/readme_filter.cpp."""
import re
import sys

readme = open(sys.argv[1]).read()
section, lang = (sys.argv[3], sys.argv[4]) if len(sys.argv) > 4 else ("A service in C", "c")
m = re.search(r"## " + re.escape(section) + r"\n(?:(?!\n## ).)*?```" + lang + r"\n(.*?)```",
              readme, re.S)
source = open(sys.argv[2]).read()
body = source[source.index("#include "):]
if not m or m.group(1) != body:
    print(f"FAIL: the README's example in '{section}' differs from {sys.argv[2]}")
    sys.exit(1)
print(f"ok: README '{section}' example == {sys.argv[2]}")
