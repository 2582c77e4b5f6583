#!/usr/bin/env bash
# fuzz.sh - build the libFuzzer targets with clang in their own build directory and fuzz
# each one for a bounded time on a copy of its seed corpus.
#
# Usage: scripts/fuzz.sh [target...]
#   Targets are the corpus folders of tests/fuzz/corpus (frame, bk_request, bk_response,
#   meta_replay, journal_replay, config, codec,
#   ledger_md, ledger_md_text); the default is all of them, or FUZZ_TARGETS (space-separated).
# Environment: FUZZ_SECONDS (per target, default 60), or FUZZ_TOTAL_SECONDS (shared out
# evenly, at least 1 s a target; overrides FUZZ_SECONDS), FUZZ_BUILD_DIR (default
# /tmp/magnetar-fuzz-build), FUZZ_JOBS (make -j, default nproc), FUZZ_CC (default clang).
# Targets run FUZZ_PARALLEL at a time (default nproc), each for its full time.
# Prints, per target, the executions, executions per second and coverage (libFuzzer's cov:
# edges and ft: features) it reached, and a summary table at the end.
# Exit status: 0 when every target ran its time without a crash, leak, timeout or
# sanitizer report; non-zero otherwise (the crashing input is kept as <build>/crash-*).
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
build=${FUZZ_BUILD_DIR:-/tmp/magnetar-fuzz-build}
seconds=${FUZZ_SECONDS:-60}
jobs=${FUZZ_JOBS:-$(nproc)}
cc=${FUZZ_CC:-clang}

if [ "$#" -gt 0 ]; then
    targets=("$@")
elif [ -n "${FUZZ_TARGETS:-}" ]; then
    read -r -a targets <<<"$FUZZ_TARGETS"
else
    targets=()
    for d in "$src"/tests/fuzz/corpus/*/; do
        targets+=("$(basename "$d")")
    done
fi
for t in "${targets[@]}"; do
    if [ ! -d "$src/tests/fuzz/corpus/$t" ]; then
        echo "fuzz.sh: unknown target $t (no tests/fuzz/corpus/$t)" >&2
        exit 2
    fi
done
if [ -n "${FUZZ_TOTAL_SECONDS:-}" ]; then
    seconds=$((FUZZ_TOTAL_SECONDS / ${#targets[@]}))
    [ "$seconds" -ge 1 ] || seconds=1
fi

have_libfuzzer() {
    local tmp
    tmp=$(mktemp -d)
    printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
        'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);' \
        'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }' \
        >"$tmp/t.c"
    local ok=0
    "$cc" -fsanitize=fuzzer,address,undefined "$tmp/t.c" -o "$tmp/t" >/dev/null 2>&1 || ok=1
    rm -rf "$tmp"
    return "$ok"
}

# clang and its libFuzzer/sanitizer runtime (Debian 12: clang-14 + libclang-rt-14-dev).
if ! command -v "$cc" >/dev/null 2>&1 || ! have_libfuzzer; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "fuzz.sh: $cc with libFuzzer is missing; as root run:" \
            "apt-get install -y clang libclang-rt-dev" >&2
        exit 2
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    if command -v "$cc" >/dev/null 2>&1; then
        major=$("$cc" -dumpversion | cut -d. -f1)
        apt-get install -y -qq "libclang-rt-$major-dev" || apt-get install -y -qq libclang-rt-dev
    else
        apt-get install -y -qq clang libclang-rt-dev
    fi
    have_libfuzzer || { echo "fuzz.sh: libFuzzer still unusable with $cc" >&2; exit 2; }
fi

mkdir -p "$build"
cd "$build"
if [ ! -f Makefile ] || ! grep -q -- '--enable-fuzzers' config.status 2>/dev/null; then
    CC="$cc" "$src/configure" --enable-fuzzers --enable-sanitizers -q
fi
bins=()
for t in "${targets[@]}"; do
    bins+=("tests/fuzz/fuzz_$t")
done
make -j"$jobs" "${bins[@]}"

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# fuzz_one TARGET: fuzz one target on a copy of its seeds; writes its summary line to
# $build/fuzz-TARGET.result ("ok     ..." or "FAILED ...") and the fuzzer's output to
# $build/fuzz-TARGET.log.
fuzz_one() {
    local t=$1 work rc=0 log execs persec cov ft line
    work=$(mktemp -d "${TMPDIR:-/tmp}/fuzz-$t.XXXXXX")
    cp -r "$src/tests/fuzz/corpus/$t/." "$work/"
    echo "fuzz.sh: fuzzing $t for ${seconds}s on a copy of $(find "$work" -type f | wc -l) seeds"
    log=$build/fuzz-$t.log
    "./tests/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$build/crash-$t-" "$work" >"$log" 2>&1 || rc=$?
    rm -rf "$work"
    execs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' || true)
    persec=$(grep -Eo 'exec/s: *[0-9]+' "$log" | tail -n 1 | grep -Eo '[0-9]+$' || true)
    cov=$(grep -Eo 'cov: *[0-9]+' "$log" | tail -n 1 | grep -Eo '[0-9]+$' || true)
    ft=$(grep -Eo 'ft: *[0-9]+' "$log" | tail -n 1 | grep -Eo '[0-9]+$' || true)
    line="$t: ${execs:-?} execs, ${persec:-?} exec/s, cov ${cov:-?}, ft ${ft:-?} in ${seconds}s"
    if [ "$rc" -ne 0 ]; then
        echo "fuzz.sh: $t FAILED (exit $rc); log $log" >&2
        tail -n 60 "$log" >&2
        echo "FAILED $line" >"$build/fuzz-$t.result"
    else
        echo "fuzz.sh: $t ok ($line)"
        echo "ok     $line" >"$build/fuzz-$t.result"
    fi
}

# Each fuzzer is single-threaded: run FUZZ_PARALLEL of them at once (default: one per CPU),
# so the whole run takes about targets x seconds / CPUs. Each keeps its full time.
parallel=${FUZZ_PARALLEL:-$(nproc)}
[ "$parallel" -ge 1 ] || parallel=1
running=0
for t in "${targets[@]}"; do
    rm -f "$build/fuzz-$t.result"
    if [ "$running" -ge "$parallel" ]; then
        wait -n || true
        running=$((running - 1))
    fi
    fuzz_one "$t" &
    running=$((running + 1))
done
wait || true
status=0
summary=()
for t in "${targets[@]}"; do
    if [ -s "$build/fuzz-$t.result" ]; then
        r=$(cat "$build/fuzz-$t.result")
    else
        r="FAILED $t: no result (the fuzzing job died)"
    fi
    case "$r" in ok*) ;; *) status=1 ;; esac
    summary+=("$r")
done
echo "fuzz.sh: summary"
printf '  %s\n' "${summary[@]}"
exit "$status"
