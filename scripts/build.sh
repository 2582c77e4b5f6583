#!/usr/bin/env bash
# build.sh - configure and build magnetar out of tree.
#
#   scripts/build.sh [configure flags...]
# Environment: BUILD_DIR (default build), JOBS (default nproc), CC (compiler, e.g. clang).
# Prints the path of the built binary on its last line.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$top/build}
case "$build" in /*) ;; *) build=$top/$build ;; esac
jobs=${JOBS:-$(nproc)}

cd "$top"
mkdir -p m4
if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt configure ]; then
  autoreconf -fi >/dev/null
fi
mkdir -p "$build"
cd "$build"
flags="$*"
# Reconfigure when the flags or the compiler changed (CC=clang scripts/build.sh ...).
key="CC=${CC:-} $flags"
if [ ! -f Makefile ] || [ "$(cat .configure-flags 2>/dev/null)" != "$key" ]; then
  "$top/configure" -q $flags
  printf '%s' "$key" > .configure-flags
fi
make -s -j"$jobs" >/dev/null
echo "$build/magnetar"
