#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bindings/python installs with pip into a virtual environment offline
# (--no-build-isolation --no-index: nothing is downloaded), at the version
# of include/icap/version.h, and imports from there against this build's
# libicap.so.0. The source is copied first: setuptools writes build/ and
# *.egg-info next to pyproject.toml.
#
# usage: check-pyproject.sh SOURCE_DIR LIBICAP_SO
set -euo pipefail
src=$1 lib=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -a "$src/bindings/python" "$tmp/src"
rm -f "$tmp/src/libicap/_install_paths.py"
# The system's Python (/usr/bin/python3 on Debian, even when another python3
# comes first in PATH), with --system-site-packages: setuptools and wheel
# are Debian's packages, nothing else is needed.
py=${ICAP_SYSTEM_PYTHON:-/usr/bin/python3}
[ -x "$py" ] || py=python3
"$py" -m venv --system-site-packages "$tmp/venv"
"$tmp/venv/bin/python" -m pip install --quiet --no-build-isolation --no-index --no-deps \
  --disable-pip-version-check "$tmp/src" >"$tmp/pip.log" 2>&1 || { cat "$tmp/pip.log"; exit 1; }
version=$(sed -n 's/^#define ICAP_VERSION_STRING "\(.*\)"/\1/p' "$src/include/icap/version.h")
cd "$tmp"  # not next to a source checkout: the installed copy must be used
# In a sanitizer build the runtime must be loaded before the instrumented
# libicap.so (ICAP_TEST_PRELOAD), for this import only.
env ${ICAP_TEST_PRELOAD:+LD_PRELOAD=$ICAP_TEST_PRELOAD ASAN_OPTIONS=detect_leaks=0} \
  LIBICAP_LIBRARY=$lib PYTHONDONTWRITEBYTECODE=1 "$tmp/venv/bin/python" - "$tmp/venv" "$version" <<'PY'
import importlib.metadata, sys
import libicap
venv, version = sys.argv[1], sys.argv[2]
assert libicap.__file__.startswith(venv), libicap.__file__
assert importlib.metadata.version("libicap") == version, importlib.metadata.version("libicap")
assert libicap.version_string == version, libicap.version_string  # from libicap.so
import libicap.pyicap  # the second layer is in the wheel too
print(f"ok: pip installed libicap {version} into a venv offline; imported from {libicap.__file__}")
PY
