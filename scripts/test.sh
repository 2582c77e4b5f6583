#!/usr/bin/env bash
# test.sh - README command (2): install what is missing, build, and run every test.
#
#   1. unit tests (Check) under AddressSanitizer + UndefinedBehaviorSanitizer (make check),
#      each test in its own process (CK_FORK=yes): a crash, leak or sanitizer report fails
#      that test, and one that runs past its TCase timeout fails as "Test timeout expired"
#      while the others go on; each test program is also bounded by `timeout`
#      (UNIT_PROGRAM_TIMEOUT_S, 600) and the whole make check by UNIT_TIMEOUT_S (1800)
#   2. compatibility and robustness tests with the real Pulsar client pulsar-flex (node --test)
#      against a `magnetar standalone` started here on free loopback ports
#   3. integration tests (tests/integration/*.test.sh), each starting the processes it needs
#      and bounded by INTEGRATION_TIMEOUT_S (900)
#   4. every libFuzzer target (tests/fuzz: the Pulsar frame decoder, the bookie's request
#      reader, the ledger client's response reader, both ledger-metadata decoders, the
#      embedded metadata store's replay, the configuration loader, the admin HTTP
#      requests), FUZZ_SECONDS (default 30) each
#   5. static checks: clang-format (scripts/check-format.sh), links and citations that
#      leave the repository (scripts/check-links.sh), module prefixes and names defined twice
#      (scripts/check-prefixes.sh), the module include graph
#      (scripts/modgraph.sh), and the gcc and clang -Werror builds plus make distcheck
#      (scripts/check-build.sh)
# The test build itself uses --enable-werror: a warning fails the run.
# Every process started here is stopped by PID; logs of failed parts are printed.
#
# Counting: every unit test (Check test function, or each iteration of a loop test), every
# node test and every integration script is one test; so are the broker's clean shutdown,
# the sanitizer scan of its log and the fuzzer. The last line is "N passed, N failed,
# N skipped", after the names of what failed and of what was skipped, with why.
# Skips are reported, never counted as passes:
#   - a unit test that cannot run here prints a line "SKIP: <test>: <why>" on stdout or
#     stderr (its program's log) and returns; Check counts it as run, this script moves it
#     from passed to skipped;
#   - a node test skips with node:test's skip (its TAP line "ok N - name # SKIP why");
#   - an integration script exits 77 after printing "SKIP: <why>" (it_skip in
#     tests/integration/lib/common.sh).
# Environment: SKIP_FUZZ=1 skips step 4 (reported as skipped); TEST_PARTS (default
# unit,compat,integration,fuzz,static: the steps to run, the others are reported as skipped);
# INTEGRATION_TESTS (names, default every one); BUILD_DIR (default build-test).
# Integration scripts get MAGNETAR_BIN and BUILD_DIR.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
. scripts/lib/common.sh
export BUILD_DIR=${BUILD_DIR:-$top/build-test}
passed=0; failed=0; skipped=0; failures=(); skips=()
ok()   { passed=$((passed + 1)); echo "PASS: $*"; }
fail() { failed=$((failed + 1)); failures+=("$*"); echo "FAIL: $*"; }
skip() { skipped=$((skipped + 1)); skips+=("$*"); echo "SKIP: $*"; }
t_start=$SECONDS
took() { echo "  ($(( SECONDS - $1 )) s)"; }
TEST_PARTS=${TEST_PARTS:-unit,compat,integration,fuzz,static}
part() { [[ ",$TEST_PARTS," == *",$1,"* ]] || { skip "$2: not in TEST_PARTS=$TEST_PARTS"; return 1; }; }

scripts/setup.sh --test || { echo "test: setup failed"; exit 1; }
bin=$(scripts/build.sh --enable-sanitizers --enable-werror | tail -n 1) || { echo "test: build failed"; exit 1; }
[ -x "$bin" ] || { echo "test: no binary at $bin"; exit 1; }

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

work=$(mktemp -d /tmp/magnetar-test.XXXXXX)
broker_pid=""
trap 'stop_pid "$broker_pid"; rm -rf "$work"' EXIT

# ---- 1. unit tests ----------------------------------------------------------------------
unit_tests() {
echo "== unit tests (make check, ASan+UBSan, CK_FORK=yes)"
t0=$SECONDS
rm -f "$BUILD_DIR"/tests/unit/*.log "$BUILD_DIR"/tests/unit/*.trs
# (tests/integration/check_*: the Check programs that need sockets or processes)
rm -f "$BUILD_DIR"/tests/integration/*.log "$BUILD_DIR"/tests/integration/*.trs
(cd "$BUILD_DIR" && CK_FORK=yes timeout -k 30 "${UNIT_TIMEOUT_S:-1800}" \
  make -s check LOG_COMPILER="timeout -k 10 ${UNIT_PROGRAM_TIMEOUT_S:-600}" >"$work/unit.log" 2>&1)
make_rc=$?
n_logs=0
# automake's test-driver ends each log with "PASS|FAIL|... NAME (exit status: N)"
exit_status() { sed -n 's/.*(\(exit status: [0-9]*\))$/\1/p' "$1" | tail -n 1; }
for log in "$BUILD_DIR"/tests/unit/*.log "$BUILD_DIR"/tests/integration/*.log; do
  [ -f "$log" ] || continue
  n_logs=$((n_logs + 1))
  prog=$(basename "$log" .log)
  trs="${log%.log}.trs"
  summary=$(grep -E '^[0-9]+%: Checks: [0-9]+, Failures: [0-9]+, Errors: [0-9]+' "$log" | tail -n 1)
  n_skip=0
  while IFS= read -r line; do
    [ -n "$line" ] || continue
    skip "unit $prog ${line#SKIP: }"
    n_skip=$((n_skip + 1))
  done < <(grep -E '^SKIP: ' "$log")
  if [ -z "$summary" ]; then
    # no Check summary: the program crashed, hung past its timeout, or failed to start
    fail "unit $prog: no Check summary ($(exit_status "$log"); 124: killed by its timeout)"
    echo "---- $log"; tail -n 60 "$log"
    continue
  fi
  read -r checks nfailures errors < <(echo "$summary" | sed -E 's/^[0-9]+%: Checks: ([0-9]+), Failures: ([0-9]+), Errors: ([0-9]+).*/\1 \2 \3/')
  if [ "$n_skip" -gt 0 ]; then echo "  $prog: $summary ($n_skip of them skipped)"; else echo "  $prog: $summary"; fi
  passed=$((passed + checks - nfailures - errors - n_skip))
  # each failing test by name: Check prints "file:line:F|E:tcase:test:iteration: message"
  while IFS= read -r line; do
    fail "unit $prog ${line}"
  done < <(grep -E '^[^:]+:[0-9]+:[FE]:' "$log")
  nf=$(grep -cE '^[^:]+:[0-9]+:[FE]:' "$log")
  if [ "$nf" -ne $((nfailures + errors)) ]; then
    fail "unit $prog: $((nfailures + errors)) failed but $nf named in the log"
  fi
  if grep -qE ':test-result: (FAIL|ERROR)' "$trs" 2>/dev/null && [ $((nfailures + errors)) = 0 ]; then
    fail "unit $prog: the program failed after its tests ($(exit_status "$log"); a sanitizer report at exit?)"
  fi
  if [ $((nfailures + errors)) -gt 0 ] || grep -qE ':test-result: (FAIL|ERROR)' "$trs" 2>/dev/null; then
    echo "---- $log"; tail -n 80 "$log"
  fi
done
if [ "$n_logs" = 0 ] || { [ "$make_rc" != 0 ] && ! grep -qE '^# (FAIL|ERROR): +[1-9]' "$work/unit.log"; }; then
  # make itself failed (a test program did not build) or was killed by its timeout
  fail "unit tests: make check exit $make_rc"
  tail -n 40 "$work/unit.log"
fi
took $t0
}
part unit "unit tests" && unit_tests

# ---- 2. compatibility tests -------------------------------------------------------------
compat_tests() {
echo "== compatibility tests (pulsar-flex)"
t0=$SECONDS
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
  MAGNETAR_URL="pulsar://127.0.0.1:$bport" MAGNETAR_ADMIN="http://127.0.0.1:$wport" \
     MAGNETAR_PID="$broker_pid" timeout 900 node --test tests/compat/ 2>&1 | tee "$work/compat.log"
  node_rc=${PIPESTATUS[0]}
  # node's TAP summary: "# pass N", "# fail N", "# cancelled N", "# skipped N"
  tap() { sed -n "s/^# $1 \([0-9]*\)$/\1/p" "$work/compat.log" | tail -n 1; }
  n_pass=$(tap pass); n_fail=$(tap fail); n_cancel=$(tap cancelled); n_skip=$(tap skipped)
  if [ -z "$n_pass" ]; then
    fail "compatibility tests: no node test summary (exit $node_rc)"; compat_failed=1
  else
    passed=$((passed + n_pass))
    while IFS= read -r line; do fail "compat $line"; done < <(grep -E '^not ok [0-9]+ - ' "$work/compat.log" | sed 's/^not ok [0-9]* - //')
    n_named=$(grep -cE '^not ok [0-9]+ - ' "$work/compat.log")
    missing=$(( ${n_fail:-0} + ${n_cancel:-0} - n_named ))
    [ "$missing" -gt 0 ] && for _ in $(seq 1 "$missing"); do fail "compat: a failed or cancelled test without its name in the output"; done
    while IFS= read -r line; do skip "compat $line"; done < <(grep -E '^ok [0-9]+ - .* # SKIP' "$work/compat.log" | sed 's/^ok [0-9]* - //')
    n_skip_named=$(grep -cE '^ok [0-9]+ - .* # SKIP' "$work/compat.log")
    [ "${n_skip:-0}" -gt "$n_skip_named" ] && for _ in $(seq 1 $(( n_skip - n_skip_named ))); do skip "compat: a skipped test without its name in the output"; done
    if [ $(( ${n_fail:-0} + ${n_cancel:-0} )) -gt 0 ] || [ "$node_rc" != 0 ]; then compat_failed=1; fi
    [ "$node_rc" != 0 ] && [ $(( ${n_fail:-0} + ${n_cancel:-0} )) = 0 ] && fail "compatibility tests: node exit $node_rc"
  fi
  kill -0 "$broker_pid" 2>/dev/null || { fail "broker died during the compatibility tests"; compat_failed=1; }
  stop_pid "$broker_pid"; rc=$?
  broker_pid=""
  if [ "$rc" = 0 ]; then ok "broker clean shutdown on SIGTERM (exit 0)"; else fail "broker exit code $rc on SIGTERM"; fi
  if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$work/broker.log"; then
    fail "sanitizer report in the broker log"; compat_failed=1
  else
    ok "no sanitizer report in the broker log"
  fi
  if [ "$compat_failed" = 1 ]; then echo "---- broker log (last 80 lines)"; tail -n 80 "$work/broker.log"; fi
fi
took $t0
}
part compat "compatibility tests" && compat_tests

# ---- 3. integration tests: tests/integration/*.test.sh start the processes they need ------
part integration "integration tests" && for t in tests/integration/*.test.sh; do
  [ -f "$t" ] || continue
  name=$(basename "$t" .test.sh)
  if [ -n "${INTEGRATION_TESTS:-}" ] && [[ " $INTEGRATION_TESTS " != *" $name "* ]]; then
    skip "integration $name: not in INTEGRATION_TESTS"; continue
  fi
  echo "== integration: $name"
  t0=$SECONDS
  MAGNETAR_BIN="$bin" BUILD_DIR="$BUILD_DIR" timeout -k 30 "${INTEGRATION_TIMEOUT_S:-900}" bash "$t" >"$work/$name.log" 2>&1
  rc=$?
  case $rc in
  0) ok "integration $name"; grep -E '^(PASS|FAIL|SKIP|figure:|SUMMARY:)' "$work/$name.log" | sed 's/^/  /' ;;
  77) skip "integration $name: $(sed -n 's/^SKIP: //p' "$work/$name.log" | head -n 1)" ;;
  124|137) fail "integration $name: killed after ${INTEGRATION_TIMEOUT_S:-900} s"; tail -n 80 "$work/$name.log" ;;
  *) fail "integration $name (exit $rc)"; tail -n 80 "$work/$name.log" ;;
  esac
  took $t0
done

# ---- 4. fuzzing -------------------------------------------------------------------------
if ! part fuzz "fuzzing"; then
  :
elif [ "${SKIP_FUZZ:-0}" != 1 ]; then
  echo "== fuzzing every decoder of untrusted bytes (${FUZZ_SECONDS:-30} s each)"
  t0=$SECONDS
  FUZZ_SECONDS=${FUZZ_SECONDS:-30} scripts/fuzz.sh >"$work/fuzz.log" 2>&1
  sed -n '/^fuzz.sh: summary/,$p' "$work/fuzz.log"
  n_fuzz=0
  while read -r status target rest; do
    n_fuzz=$((n_fuzz + 1))
    case $status in
    ok) ok "fuzz_${target%:}: $rest" ;;
    *) fail "fuzz_${target%:}: $rest"; grep -A30 -m1 -E 'ERROR|broken promise|deadly' "$work/fuzz.log" ;;
    esac
  done < <(sed -n '/^fuzz.sh: summary/,$p' "$work/fuzz.log" | grep -E '^  (ok|FAILED) ')
  [ "$n_fuzz" -gt 0 ] || { fail "fuzzing: no result"; tail -n 40 "$work/fuzz.log"; }
  took $t0
else
  skip "fuzzing: SKIP_FUZZ=1"
fi

# ---- 5. static checks -------------------------------------------------------------------
static_checks() {
  echo "== static checks"
  t0=$SECONDS
  if scripts/check-format.sh >"$work/format.log" 2>&1; then ok "format (clang-format)"; else fail "format (clang-format)"; tail -n 40 "$work/format.log"; fi
  if scripts/check-links.sh >"$work/links.log" 2>&1; then ok "links stay in the repository"; else fail "links stay in the repository"; tail -n 40 "$work/links.log"; fi
  if scripts/check-prefixes.sh >"$work/prefixes.log" 2>&1; then ok "every function carries its module's prefix, no name twice"; else fail "module prefixes (scripts/check-prefixes.sh)"; tail -n 40 "$work/prefixes.log"; fi
  if scripts/modgraph.sh --check >"$work/modgraph.log" 2>&1; then
    ok "module include graph has no cycle"
  else
    fail "module include graph has a cycle"
  fi
  sed 's/^/  /' "$work/modgraph.log"
  scripts/check-build.sh "$work/check-build" >"$work/check-build.log" 2>&1
  while IFS= read -r line; do
    case $line in
    PASS\ *) ok "build ${line#PASS }" ;;
    FAIL\ *) fail "build ${line#FAIL }" ;;
    esac
  done <"$work/check-build.log"
  grep -qE '^(PASS|FAIL) ' "$work/check-build.log" || { fail "build checks: no result"; tail -n 40 "$work/check-build.log"; }
  took $t0
}
part static "static checks" && static_checks

echo
echo "== summary ($(( SECONDS - t_start )) s)"
for s in "${skips[@]}"; do echo "skipped: $s"; done
for f in "${failures[@]}"; do echo "failed: $f"; done
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
