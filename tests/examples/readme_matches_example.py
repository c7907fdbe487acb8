#!/usr/bin/env python3
"""The README's C example must be examples/filter.c (from its #include on),
so that the code a newcomer copies is the code the tests build and run.

usage: readme_matches_example.py README.md examples/filter.c"""
import re
import sys

readme = open(sys.argv[1]).read()
m = re.search(r"## A service in C\n\n```c\n(.*?)```", readme, re.S)
source = open(sys.argv[2]).read()
body = source[source.index("#include <icap/icap.h>"):]
if not m or m.group(1) != body:
    print("FAIL: the README's C example differs from examples/filter.c")
    sys.exit(1)
print("ok: README C example == examples/filter.c")
