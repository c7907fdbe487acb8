#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# What a packager needs before anything else: LICENSE is the MIT license
# text, the README says so, CHANGELOG.md and debian/changelog have an entry
# for the version in include/icap/version.h, and `cmake --install` puts
# LICENSE, README.md and CHANGELOG.md into the documentation directory.
#
# usage: check-release-files.sh SOURCE_DIR BUILD_DIR
#        check-release-files.sh --spdx SOURCE_DIR
#   --spdx  only list the tracked C, C++, CMake, shell and Python files
#           without an "SPDX-License-Identifier: MIT" line (fails if any)
set -euo pipefail
if [ "${1:-}" = "--spdx" ]; then
  cd "$2"
  missing=$(git ls-files '*.c' '*.h' '*.cc' '*.hpp' '*.cpp' '*.py' '*.sh' 'CMakeLists.txt' \
              '*.cmake' '*.in' | grep -v '^tests/fuzz/corpus/' |
            while read -r f; do grep -q 'SPDX-License-Identifier: MIT' "$f" || echo "$f"; done)
  if [ -n "$missing" ]; then echo "FAIL: no SPDX line in:"; echo "$missing"; exit 1; fi
  echo "ok: every source file has an SPDX line"; exit 0
fi
src=$1 build=$2
fail() { echo "FAIL: $*"; exit 1; }
lic=$src/LICENSE
test -f "$lic" || fail "no LICENSE"
head -n 1 "$lic" | grep -qx 'MIT License' || fail "LICENSE does not start with 'MIT License'"
grep -qx 'Copyright (c) 2026 the libicap authors' "$lic" || fail "LICENSE lacks the copyright line"
for phrase in 'Permission is hereby granted, free of charge, to any person obtaining a copy' \
              'The above copyright notice and this permission notice shall be included in all' \
              'THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR'; do
  grep -qF "$phrase" "$lic" || fail "LICENSE lacks: $phrase"
done
[ "$(wc -l <"$lic")" -eq 21 ] || fail "LICENSE is not the 21 lines of the MIT text"
grep -q 'MIT license' "$src/README.md" || fail "the README does not name the license"

version=$(sed -n 's/^#define ICAP_VERSION_STRING "\(.*\)"/\1/p' "$src/include/icap/version.h")
grep -q "^## \[$version\] - [0-9]\{4\}-[0-9][0-9]-[0-9][0-9]$" "$src/CHANGELOG.md" ||
  fail "CHANGELOG.md has no '## [$version] - DATE' entry"
if [ -f "$src/debian/changelog" ]; then
  deb=$(head -n 1 "$src/debian/changelog" | sed -n 's/^libicap (\([^)]*\)).*/\1/p')
  [ "$deb" = "$version" ] || fail "debian/changelog is at '$deb', version.h at '$version'"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
for f in LICENSE README.md CHANGELOG.md; do
  test -f "$tmp/prefix/share/doc/libicap/$f" || fail "cmake --install does not install $f"
done
echo "ok: MIT LICENSE, CHANGELOG and version $version agree, and are installed"
