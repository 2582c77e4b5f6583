#!/usr/bin/env bash
# standalone.sh - README command (1): install what is missing, build, and run
# `magnetar standalone` on 127.0.0.1:6650 (admin HTTP on 127.0.0.1:8080).
# Extra arguments go to magnetar, e.g. --set logLevel=debug.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/setup.sh"
bin=$("$top/scripts/build.sh" | tail -n 1)
cd "$top"
exec "$bin" standalone --config conf/standalone.yaml "$@"
