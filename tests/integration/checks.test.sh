#!/usr/bin/env bash
# checks.test.sh - the repository's check scripts find what they are meant to find.
#
# Each checker runs on a small tree made here (never on the repository itself: the test
# command runs them on the repository), once clean and once with known faults:
#   1. scripts/check-links.sh: a clean tree passes; a link to a missing file, a missing
#      anchor, a link that leaves the tree, a citation of a missing document, of a missing
#      section, a missing quoted heading, a path outside the tree and a missing code-span
#      path are each reported with file and line, and the exit status is 1.
#   2. scripts/modgraph.sh: the graph of an acyclic tree, exit 0 with and without --check;
#      a cycle is printed, exit 0 by default and 1 with --check.
#   3. scripts/check-format.sh: formatted files pass; a misformatted one is named, exit 1.
#   4. scripts/check-prefixes.sh: prefixed functions pass (a pending module's violations are
#      listed, exit 0; with --all, exit 1); a static and an exported function without
#      their module's prefix and a name defined twice are each reported, exit 1.
# No process is left behind; nothing here needs the magnetar binary.
# check-links: ignore-file (the fixtures below are faulty on purpose)
set -u
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
it_init checks
TOP=$IT_TOP

if ! command -v git >/dev/null 2>&1; then
    fail "git not found"
    exit 1
fi
g() { git -c user.email=t@t -c user.name=t "$@"; }
# run CMD...: its output (stdout and stderr) in out, its exit status in rc
run() {
    out=$("$@" 2>&1)
    rc=$?
}
# in_dir DIR CMD...: CMD run in DIR (under run: in its subshell)
in_dir() { cd "$1" && shift && "$@"; }
# expect NAME RC [PATTERN...]: PASS NAME when the last run exited RC and its output matches
# every PATTERN (grep -E; "!PATTERN": must not match); else FAIL with what it got.
expect() {
    local name=$1 want=$2 p ok=1
    shift 2
    [ "$rc" = "$want" ] || ok=0
    for p in "$@"; do
        if [ "${p#!}" != "$p" ]; then
            ! grep -qE -- "${p#!}" <<<"$out" || ok=0
        else
            grep -qE -- "$p" <<<"$out" || ok=0
        fi
    done
    if [ "$ok" = 1 ]; then
        pass "$name"
    else
        fail "$name: exit $rc, want $want: $out"
    fi
}

# 1 ---------------------------------------------------------------------------------------
L=$T/links
mkdir -p "$L/scripts" "$L/docs" "$L/broker/x"
cp "$TOP/scripts/check-links.sh" "$L/scripts/"
cat >"$L/docs/a.md" <<'EOF'
# A page

See [b](b.md), [its part](b.md#2-second-part) and `broker/x/x.c`.

## 1. First

### 1.1 Detail

## 2. Second
EOF
cat >"$L/docs/b.md" <<'EOF'
# B

## 2. Second part

Back to [a](a.md#11-detail); this page's §2.
EOF
printf '/* x.c - see docs/a.md §1.1, §2 and docs/b.md "Second part". */\n' >"$L/broker/x/x.c"
(cd "$L" && g init -q && g add docs broker) # the checker itself is not part of the tree
run in_dir "$L" scripts/check-links.sh
expect "check-links: a clean tree passes" 0

cat >>"$L/docs/a.md" <<'EOF'
[gone](c.md) [no anchor](b.md#nowhere) [up](../../x.md)
Cites docs/b.md §7 and docs/b.md "No such part" and `broker/x/none.c`.
EOF
# A missing file, and the team's notes beside the checkout (built here, so that this
# repository itself never names that folder).
notes_dir="../$(printf 'sha%s' red)"
printf '/* see NOTES.md §2 and %s/PLAN.md */\n' "$notes_dir" >>"$L/broker/x/x.c"
(cd "$L" && g add docs broker)
run in_dir "$L" scripts/check-links.sh
expect "check-links: faults give exit 1" 1
for want in \
    "docs/a.md:10: link c.md: no such file" \
    "docs/a.md:10: link b.md#nowhere: no heading with id #nowhere" \
    "docs/a.md:10: link ../../x.md leaves the repository" \
    "docs/a.md:11: docs/b.md has no section 7" \
    'docs/a.md:11: docs/b.md has no heading "No such part"' \
    "docs/a.md:11: path broker/x/none.c does not exist" \
    "broker/x/x.c:2: NOTES.md: no such file in the repository" \
    "broker/x/x.c:2: refers to a location outside the repository"; do
    if grep -qF "$want" <<<"$out"; then
        pass "check-links reports: $want"
    else
        fail "check-links does not report: $want (got: $out)"
    fi
done

# 2 ---------------------------------------------------------------------------------------
M=$T/mods
mkdir -p "$M/broker/a" "$M/broker/b" "$M/broker/c"
printf '#include "b/b.h"\n#include "a/a_int.h"\n' >"$M/broker/a/a.c"
printf '#include "c/c.h"\n' >"$M/broker/b/b.h"
printf '#include <stdio.h>\n' >"$M/broker/c/c.c"
run "$TOP/scripts/modgraph.sh" --check "$M"
expect "modgraph: acyclic graph printed, --check passes" 0 '^a +-> b$' '^cycles: none$'
printf '#include "a/a.h"\n' >>"$M/broker/c/c.c"
run "$TOP/scripts/modgraph.sh" "$M"
expect "modgraph: a cycle is reported, default mode exits 0" 0 'a -> b -> c -> a'
run "$TOP/scripts/modgraph.sh" --check "$M"
expect "modgraph --check: a cycle exits 1" 1

# 3 ---------------------------------------------------------------------------------------
if ! command -v clang-format >/dev/null 2>&1; then
    echo "SKIP: check-format: clang-format not installed (scripts/setup.sh --test)"
else
    F=$T/fmt
    mkdir -p "$F/scripts" "$F/src"
    cp "$TOP/scripts/check-format.sh" "$F/scripts/"
    cp "$TOP/.clang-format" "$F/"
    printf 'int f(int x)\n{\n    return x + 1;\n}\n' >"$F/src/good.c"
    (cd "$F" && g init -q && g add -A)
    run "$F/scripts/check-format.sh"
    expect "check-format: formatted files pass" 0
    printf 'int  g(int x) { return x; }\n' >"$F/src/bad.c"
    (cd "$F" && g add -A)
    run "$F/scripts/check-format.sh"
    expect "check-format: the misformatted file is named, exit 1" 1 'src/bad\.c' '!src/good\.c'
fi

# 4 ---------------------------------------------------------------------------------------
if ! ctags --version 2>/dev/null | grep -q Universal; then
    echo "SKIP: check-prefixes: universal-ctags not installed (scripts/setup.sh --test)"
else
    P=$T/prefixes
    mkdir -p "$P/broker/util" "$P/broker/topic" "$P/broker/svc" "$P/scripts/lib"
    # a copy of the checker (with its library) in which svc is a pending module
    sed 's/^PENDING=""$/PENDING="svc"/' "$TOP/scripts/check-prefixes.sh" >"$P/scripts/check-prefixes.sh"
    chmod +x "$P/scripts/check-prefixes.sh"
    cp "$TOP/scripts/lib/common.sh" "$P/scripts/lib/"
    grep -q '^PENDING="svc"$' "$P/scripts/check-prefixes.sh" ||
        fail "check-prefixes.sh no longer starts with PENDING=\"\"; update this test"
    printf 'static int mg_half(int x)\n{\n    return x / 2;\n}\n\nint mg_quarter(int x)\n{\n    return mg_half(mg_half(x));\n}\n' >"$P/broker/util/u.c"
    printf 'static int now_ms(void)\n{\n    return 0;\n}\n' >"$P/broker/svc/s.c"
    printf 'int main(void)\n{\n    return 0;\n}\n' >"$P/broker/main.c"
    run "$P/scripts/check-prefixes.sh"
    expect "check-prefixes: a clean tree passes, a pending module is listed" 0 \
        'svc \(pending\): static now_ms'
    run "$P/scripts/check-prefixes.sh" --all
    expect "check-prefixes --all: a pending module's violation exits 1" 1
    printf 'static int helper(void)\n{\n    return 1;\n}\n\nint other(void)\n{\n    return helper();\n}\n' >"$P/broker/topic/a.c"
    printf 'static int mg_half(int x)\n{\n    return x >> 1;\n}\n' >"$P/broker/util/v.c"
    run "$P/scripts/check-prefixes.sh"
    expect "check-prefixes: a missing prefix and a name defined twice are reported, exit 1" 1 \
        '^topic: static helper \(broker/topic/a\.c:1\)' \
        '^topic: exported other \(broker/topic/a\.c:6\)' \
        '^dup: mg_half broker/util/u\.c:1 broker/util/v\.c:1'
fi
exit 0
