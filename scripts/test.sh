#!/usr/bin/env bash
# test.sh - README command (2): install what is missing, build, and run every test.
#
#   1. unit tests (Check) under AddressSanitizer + UndefinedBehaviorSanitizer (make check)
#   2. compatibility and robustness tests with the real Pulsar client pulsar-flex (node --test)
#      against a `magnetar standalone` started here on free loopback ports
#   3. integration tests (tests/integration/*.test.sh), each starting the processes it needs
#   4. the frame-decoder fuzzer for FUZZ_SECONDS (default 60)
# Every process started here is stopped by PID; logs of failed parts are printed.
# Environment: SKIP_FUZZ=1 skips step 4; BUILD_DIR (default build-test). Integration scripts get MAGNETAR_BIN and BUILD_DIR.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
export BUILD_DIR=${BUILD_DIR:-$top/build-test}
passed=0; failed=0; failures=()
ok()   { passed=$((passed + 1)); echo "PASS: $*"; }
fail() { failed=$((failed + 1)); failures+=("$*"); echo "FAIL: $*"; }

scripts/setup.sh --test || { echo "test: setup failed"; exit 1; }
bin=$(scripts/build.sh --enable-sanitizers | tail -n 1) || { echo "test: build failed"; exit 1; }
[ -x "$bin" ] || { echo "test: no binary at $bin"; exit 1; }

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# ---- 1. unit tests ----------------------------------------------------------------------
echo "== unit tests (make check, ASan+UBSan)"
if (cd "$BUILD_DIR" && CK_FORK=no make -s check >/dev/null 2>&1); then
  ok "unit tests"
else
  fail "unit tests"
fi
for log in "$BUILD_DIR"/tests/unit/*.log; do
  [ -f "$log" ] || continue
  grep -E '^[0-9]+%: Checks' "$log" | sed "s|^|  $(basename "$log" .log): |"
  if grep -qE ':test-result: (FAIL|ERROR)' "${log%.log}.trs" 2>/dev/null; then
    echo "---- $log"; tail -n 60 "$log"
  fi
done

# ---- 2. compatibility tests -------------------------------------------------------------
echo "== compatibility tests (pulsar-flex)"
work=$(mktemp -d /tmp/magnetar-test.XXXXXX)
broker_pid=""
stop_broker() {
  if [ -n "$broker_pid" ] && kill -0 "$broker_pid" 2>/dev/null; then
    kill -TERM "$broker_pid" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$broker_pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$broker_pid" 2>/dev/null && kill -KILL "$broker_pid" 2>/dev/null
  fi
}
trap 'stop_broker; rm -rf "$work"' EXIT

(cd tests/compat && { [ -d node_modules/pulsar-flex ] || npm ci --no-audit --no-fund --loglevel=error; }) \
  || { fail "npm install of tests/compat"; }

env -u MAGNETAR_URL -u MAGNETAR_ADMIN -u MAGNETAR_PID \
  "$bin" standalone --config conf/standalone.yaml --set brokerServicePort=0 \
  --set webServicePort=0 --set keepAliveIntervalSeconds=2 --set "dataDirectory=$work/data" \
  --port-file "$work/ports" >"$work/broker.log" 2>&1 &
broker_pid=$!
for _ in $(seq 1 100); do [ -s "$work/ports" ] && break; kill -0 "$broker_pid" 2>/dev/null || break; sleep 0.1; done
if [ ! -s "$work/ports" ]; then
  fail "standalone broker start"; cat "$work/broker.log"
else
  bport=$(sed -n 's/^brokerServicePort=//p' "$work/ports")
  wport=$(sed -n 's/^webServicePort=//p' "$work/ports")
  echo "broker pid $broker_pid on 127.0.0.1:$bport (admin $wport)"
  compat_failed=0
  if MAGNETAR_URL="pulsar://127.0.0.1:$bport" MAGNETAR_ADMIN="http://127.0.0.1:$wport" \
     MAGNETAR_PID="$broker_pid" timeout 900 node --test tests/compat/ 2>&1 | tee "$work/compat.log"; then
    ok "compatibility tests"
  else
    fail "compatibility tests"; compat_failed=1
  fi
  kill -0 "$broker_pid" 2>/dev/null || { fail "broker died during the compatibility tests"; compat_failed=1; }
  stop_broker
  wait "$broker_pid"; rc=$?
  broker_pid=""
  if [ "$rc" = 0 ]; then ok "broker clean shutdown on SIGTERM (exit 0)"; else fail "broker exit code $rc on SIGTERM"; fi
  if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$work/broker.log"; then
    fail "sanitizer report in the broker log"; compat_failed=1
  fi
  if [ "$compat_failed" = 1 ]; then echo "---- broker log (last 80 lines)"; tail -n 80 "$work/broker.log"; fi
fi

# ---- 3. integration tests: tests/integration/*.test.sh start the processes they need ------
for t in tests/integration/*.test.sh; do
  [ -f "$t" ] || continue
  name=$(basename "$t" .test.sh)
  echo "== integration: $name"
  if MAGNETAR_BIN="$bin" BUILD_DIR="$BUILD_DIR" timeout 900 bash "$t" >"$work/$name.log" 2>&1; then
    ok "integration $name"; grep -E '^(PASS|FAIL|SKIP|figure:)' "$work/$name.log" | sed 's/^/  /'
  else
    fail "integration $name"; tail -n 80 "$work/$name.log"
  fi
done

# ---- 4. fuzzing -------------------------------------------------------------------------
if [ "${SKIP_FUZZ:-0}" != 1 ]; then
  echo "== fuzzing the frame decoder (${FUZZ_SECONDS:-60} s)"
  if FUZZ_SECONDS=${FUZZ_SECONDS:-60} scripts/fuzz.sh; then ok "fuzz_frame"; else fail "fuzz_frame"; fi
fi

echo
for f in "${failures[@]}"; do echo "failed: $f"; done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
