#!/usr/bin/env bash
# check-build.sh - the build checks CI runs besides the tests.
#
#   scripts/check-build.sh [ROOT]
#
# Three checks, each in its own build directory under ROOT (default: build-check in the
# source tree; it is emptied first), each printing one line "PASS <check> (<seconds>s)" or
# "FAIL <check> (<seconds>s): <reason>; log <file>":
#
#   gcc      CC=gcc, --enable-werror: the binary, the unit tests and the tools compile
#            without a warning (-std=c11 -Wall -Wextra -Wpedantic ..., see configure.ac)
#   clang    CC=clang, --enable-werror --enable-fuzzers: the same, plus the fuzz targets
#   dist     make distcheck (tarball, read-only source tree, VPATH build with
#            --enable-werror, make check, install/uninstall), then the tarball must hold
#            exactly the files git tracks plus autotools' generated ones
#
# Exit status: 0 when all pass, 1 otherwise. Environment: JOBS (default nproc).
# Needs: scripts/setup.sh --test (clang, libclang-rt for the fuzzers).
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
root=${1:-$top/build-check}
case "$root" in /*) ;; *) root=$PWD/$root ;; esac
jobs=${JOBS:-$(nproc)}
failed=0

if [ ! -x "$top/configure" ] || [ "$top/configure.ac" -nt "$top/configure" ] ||
   [ "$top/Makefile.am" -nt "$top/configure" ]; then
  (cd "$top" && mkdir -p m4 && autoreconf -fi >/dev/null 2>&1) || {
    echo "FAIL autoreconf: cannot generate configure in $top"; exit 1; }
fi
if [ -f "$top/config.status" ]; then
  echo "FAIL setup: $top is configured in place; out-of-tree builds need it clean (make distclean)"
  exit 1
fi
rm -rf "$root"
mkdir -p "$root"

# step NAME REASON-ON-FAILURE COMMAND...: run COMMAND in $root/NAME, log to $root/NAME.log.
step() {
  local name=$1 why=$2
  shift 2
  local dir=$root/$name log=$root/$name.log start=$SECONDS
  mkdir -p "$dir"
  if (cd "$dir" && "$@") >"$log" 2>&1; then
    echo "PASS $name ($((SECONDS - start))s)"
  else
    echo "FAIL $name ($((SECONDS - start))s): $why; log $log"
    grep -m 5 -A 3 -E 'error|warning' "$log" | head -n 20 | sed 's/^/    /'
    failed=1
  fi
}

compile() { # compile CC CONFIGURE-FLAGS...: configure and build everything, tests included
  local cc=$1
  shift
  "$top/configure" -q CC="$cc" "$@" && make -j"$jobs" && make -j"$jobs" check TESTS=
}

distcheck() {
  "$top/configure" -q || return 1
  make -j"$jobs" distcheck DISTCHECK_CONFIGURE_FLAGS=--enable-werror || return 1
  command -v git >/dev/null 2>&1 && git -C "$top" rev-parse --is-inside-work-tree >/dev/null 2>&1 ||
    { echo "not a git checkout: tarball contents not compared"; return 0; }
  local tarball
  tarball=$(ls ./*.tar.gz | head -n 1)
  tar tzf "$tarball" | sed -e 's|^[^/]*/||' -e '/\/$/d' -e '/^$/d' | sort >tar.list
  git -C "$top" ls-files | sort >git.list
  grep -vxE 'Makefile\.in|aclocal\.m4|configure|build-aux/.*' tar.list >tar.sources
  local missing extra
  missing=$(comm -23 git.list tar.sources)
  extra=$(comm -13 git.list tar.sources)
  [ -z "$missing" ] && [ -z "$extra" ] && return 0
  [ -n "$missing" ] && printf 'error: tracked but not in %s:\n%s\n' "$tarball" "$missing"
  [ -n "$extra" ] && printf 'error: in %s but not tracked:\n%s\n' "$tarball" "$extra"
  return 1
}

step gcc "gcc -Werror build failed" compile gcc --enable-werror
step clang "clang -Werror build failed" compile clang --enable-werror --enable-fuzzers
step dist "make distcheck or the tarball's contents failed" distcheck
exit $failed
