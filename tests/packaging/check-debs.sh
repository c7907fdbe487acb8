#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds libicap's Debian packages from the working tree with
# `dpkg-buildpackage -us -uc -b` (in a copy, so the tree stays clean),
# checks them with lintian (no error allowed; warnings are shown), checks
# what each package holds, then installs them into a fresh root and uses
# them there: a C program built against the installed libicap-dev (shared
# and static), a C++ program, `python3 -c 'import libicap'`, and icap-echo
# with its manual page.
#
# usage: check-debs.sh [--root debootstrap|extract] [--keep DIR] [SOURCE_DIR]
#   --root debootstrap  (default when debootstrap is installed and we are
#                       root) a fresh Debian 12 root from deb.debian.org
#                       (debootstrap --variant=minbase plus gcc, g++,
#                       pkg-config, python3); the packages are installed with
#                       dpkg -i and everything runs in a chroot. Needs the
#                       network; ICAP_DEBOOTSTRAP_MIRROR overrides the mirror
#                       and ICAP_DEBOOTSTRAP_CACHE=DIR keeps a tarball of the
#                       root there for the next run.
#   --root extract      the packages are unpacked with dpkg -x into an empty
#                       directory, and the host's compiler and python3 use
#                       them through PKG_CONFIG_PATH, LD_LIBRARY_PATH and
#                       PYTHONPATH. No network, no root.
#   --keep DIR          copy the .deb files and the lintian output to DIR
# Exit status 0 when everything passed, 1 otherwise, 77 (skip) when
# dpkg-buildpackage or lintian is missing.
set -euo pipefail
mode="" keep=""
while [ $# -gt 0 ]; do
  case "$1" in
    --root) mode=$2; shift 2 ;;
    --keep) keep=$2; shift 2 ;;
    -h|--help) sed -n '3,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) break ;;
  esac
done
src=$(cd "${1:-$(dirname "$0")/../..}" && pwd)
for tool in dpkg-buildpackage dh lintian; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool is missing (.ci/install-deps)"; exit 77; }
done
if [ -z "$mode" ]; then
  if command -v debootstrap >/dev/null && [ "$(id -u)" -eq 0 ]; then mode=debootstrap; else mode=extract; fi
fi
case "$mode" in debootstrap|extract) ;; *) echo "unknown --root $mode"; exit 2 ;; esac

t0=$(date +%s)
step() { printf '=== %s (%ss)\n' "$*" $(( $(date +%s) - t0 )); }
fail() { echo "FAIL: $*"; exit 1; }
tmp=$(mktemp -d)
cleanup() {
  # A chroot's bind mounts must go before its directory.
  if [ -d "$tmp/root/proc" ]; then umount "$tmp/root/proc" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

version=$(sed -n 's/^#define ICAP_VERSION_STRING "\(.*\)"/\1/p' "$src/include/icap/version.h")
step "copy the working tree (tracked and new files) to $tmp/libicap-$version"
mkdir "$tmp/libicap-$version"
(cd "$src" && git ls-files -co --exclude-standard -z | xargs -0 tar -cf - --no-recursion) |
  tar -xf - -C "$tmp/libicap-$version"

step "dpkg-buildpackage -us -uc -b"
# Debian's own tools: a python3 or cmake earlier in PATH (pyenv...) must
# not take part.
if ! (cd "$tmp/libicap-$version" &&
      env PATH=/usr/sbin:/usr/bin:/sbin:/bin dpkg-buildpackage -us -uc -b) >"$tmp/build.log" 2>&1; then
  tail -n 40 "$tmp/build.log"; fail "dpkg-buildpackage"
fi
grep -E 'dpkg-gensymbols: warning' "$tmp/build.log" || true
debs=$(cd "$tmp" && ls -- *.deb | grep -v -- '-dbgsym_')
echo "$debs"

step "lintian"
lintian --pedantic -I --fail-on error "$tmp/libicap_${version}_"*.changes >"$tmp/lintian.txt" 2>&1 ||
  { cat "$tmp/lintian.txt"; fail "lintian reports errors"; }
grep -v 'running with root privileges' "$tmp/lintian.txt" || echo "(lintian: no tags)"
if [ -n "$keep" ]; then mkdir -p "$keep"; cp "$tmp"/*.deb "$tmp/lintian.txt" "$keep/"; fi

step "package contents"
ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
has() {  # has PACKAGE PATH...: the .deb holds every PATH
  local deb=$tmp/${1}_${version}_$arch.deb
  [ -f "$deb" ] || deb=$tmp/${1}_${version}_all.deb
  local list; list=$(dpkg -c "$deb" | awk '{print $6}')
  shift
  for p in "$@"; do grep -qx "\./$p" <<<"$list" || fail "$(basename "$deb") lacks $p"; done
}
has libicap0 "usr/lib/$ma/libicap.so.0" "usr/lib/$ma/libicap.so.$version"
has libicap-dev usr/include/icap/icap.h usr/include/icap/icap.hpp "usr/lib/$ma/libicap.so" \
    "usr/lib/$ma/libicap.a" "usr/lib/$ma/pkgconfig/libicap.pc" "usr/lib/$ma/cmake/icap/icapConfig.cmake"
has python3-libicap usr/lib/python3/dist-packages/libicap/__init__.py \
    usr/lib/python3/dist-packages/libicap/pyicap.py
has libicap-examples usr/bin/icap-echo usr/share/man/man1/icap-echo.1.gz usr/bin/icap-cpp-echo \
    usr/share/man/man1/icap-cpp-echo.1.gz

# The programs that run in the new root: the shared and the static C
# consumer, the C++ consumer, the Python import, icap-echo and its page.
cp "$src/tests/packaging/consumer.c" "$src/tests/packaging/consumer.cc" "$tmp/"
cat >"$tmp/use.sh" <<'USE'
set -euo pipefail
cd "$1"
cc -o c_shared consumer.c $(pkg-config --cflags --libs libicap) -lpthread
./c_shared
# libicap.a by its path, and everything else it needs from Libs.private.
cc -o c_static consumer.c $(pkg-config --cflags libicap) "$(pkg-config --variable=libdir libicap)/libicap.a" \
   $(pkg-config --static --libs libicap | sed 's/-licap\b//')
if objdump -p c_static | grep -q 'NEEDED.*libicap'; then echo 'FAIL: c_static needs libicap.so'; exit 1; fi
./c_static
c++ -std=c++17 -o cxx consumer.cc $(pkg-config --cflags --libs libicap)
./cxx
python3 -c 'import libicap
maps = [l.split()[-1] for l in open("/proc/self/maps") if "libicap.so" in l]
print("python3: libicap", libicap.version_string, "from", libicap.__file__, "mapped", maps[0])'
icap-echo --help
if icap-echo --port abc >echo.out 2>&1; then echo "FAIL: icap-echo accepted --port abc"; exit 1; fi
grep -q "expected a number" echo.out
echo "icap-echo --port abc: refused"
USE

if [ "$mode" = extract ]; then
  step "unpack the packages with dpkg -x into an empty root"
  root=$tmp/root
  mkdir "$root"
  for d in $debs; do dpkg -x "$tmp/$d" "$root"; done
  step "use them from $root"
  # libicap.pc finds its prefix from its own place (${pcfiledir}), so the
  # unpacked copy works where it is.
  (export PKG_CONFIG_PATH=$root/usr/lib/$ma/pkgconfig LD_LIBRARY_PATH=$root/usr/lib/$ma \
          PYTHONPATH=$root/usr/lib/python3/dist-packages PATH=$root/usr/bin:/usr/sbin:/usr/bin:/sbin:/bin \
          PYTHONDONTWRITEBYTECODE=1
   bash "$tmp/use.sh" "$tmp") | tee "$tmp/use.log"
  grep -q "from $root/usr/lib/python3/dist-packages/libicap/__init__.py mapped $root/usr/lib/$ma/libicap.so.$version" \
    "$tmp/use.log" || fail "python3 did not import the unpacked package and library"
else
  root=$tmp/root
  mirror=${ICAP_DEBOOTSTRAP_MIRROR:-http://deb.debian.org/debian}
  cache=${ICAP_DEBOOTSTRAP_CACHE:-}
  if [ -n "$cache" ] && [ -f "$cache/bookworm-root.tar" ]; then
    step "fresh root from the cached $cache/bookworm-root.tar"
    mkdir "$root" && tar -xf "$cache/bookworm-root.tar" -C "$root"
  else
    step "debootstrap bookworm $root $mirror"
    debootstrap --variant=minbase --include=gcc,g++,libc6-dev,pkg-config,libuv1-dev,python3 \
      bookworm "$root" "$mirror" >"$tmp/debootstrap.log" 2>&1 ||
      { tail -n 20 "$tmp/debootstrap.log"; fail "debootstrap (network? try --root extract)"; }
    if [ -n "$cache" ]; then mkdir -p "$cache"; tar -cf "$cache/bookworm-root.tar" -C "$root" .; fi
  fi
  step "dpkg -i the packages in the chroot"
  mkdir -p "$root/tmp/libicap"
  cp "$tmp"/*.deb "$tmp/consumer.c" "$tmp/consumer.cc" "$tmp/use.sh" "$root/tmp/libicap/"
  rm -f "$root"/tmp/libicap/*-dbgsym_*.deb
  mount -t proc proc "$root/proc"
  chroot "$root" sh -c 'dpkg -i /tmp/libicap/*.deb' >"$tmp/dpkg.log" 2>&1 ||
    { cat "$tmp/dpkg.log"; fail "dpkg -i in the fresh root"; }
  step "use them in the chroot"
  chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8 \
    bash /tmp/libicap/use.sh /tmp/libicap | tee "$tmp/use.log"
  grep -q "from /usr/lib/python3/dist-packages/libicap/__init__.py mapped /usr/lib/$ma/libicap.so.$version" \
    "$tmp/use.log" || fail "python3 did not import the installed package and library"
  chroot "$root" sh -c 'man -w icap-echo 2>/dev/null || test -f /usr/share/man/man1/icap-echo.1.gz' >/dev/null ||
    fail "no manual page for icap-echo in the root"
fi
step "done"
echo "ok: $(echo $debs) built, lintian without errors, used from a fresh root ($mode)"
