#!/usr/bin/env bash
# check-prefixes.sh - function names that break the module prefix rule (docs/style.md §3).
#
#   scripts/check-prefixes.sh [--all] [SRCDIR]
#
# Every function defined in broker/<mod>/ (static or not) and every variable it exports
# starts with its module's prefix: mg_ (util), cfg_ (config), bk_ (bookie), ar_ (autorec),
# sch_ (schema), <mod>_ for the other modules (wire_bk_ is inside wire_); broker/main.c uses
# main_. A program's main() is exempt.
# A function name is also defined only once in broker/, so that a name found in a stack
# trace or a log names one place.
#
# Prints one line per violation: "MODULE: static NAME (FILE:LINE)", "MODULE: exported NAME
# (FILE:LINE)" or "dup: NAME FILE:LINE FILE:LINE...", then a count per module. Modules in
# PENDING (below) are reported with "pending" and do not fail the check until they are
# taken out of the list; --all checks them too. A duplicate fails unless every copy is in a
# pending module.
#
# Exit status: 0 when no violation fails the check, 1 otherwise, 2 on bad usage or when
# ctags (Universal Ctags) is missing. SRCDIR defaults to the repository of this script.
set -euo pipefail

PENDING=""

. "$(dirname "$0")/lib/common.sh"
tree_args check-prefixes --all 19 "$0" "$@"
ctags --version 2>/dev/null | grep -q Universal ||
  { echo "check-prefixes: needs Universal Ctags (apt-get install universal-ctags)" >&2; exit 2; }
[ "$flag" = 1 ] && PENDING=

cd "$src"
# name|file|line|kind|properties|pattern, for functions and file-scope variables (not
# generated code).
find broker -name '*.[ch]' ! -name '*.pb-c.*' | sort |
  ctags -L - -x --kinds-C=fv --fields-C=+{properties} --_xformat='%N|%F|%n|%K|%{C.properties}|%P' |
  awk -F'|' -v pending="$PENDING" '
  BEGIN {
    n = split(pending, p, " ")
    for (i = 1; i <= n; i++) ispending[p[i]] = 1
    prefix["util"] = "mg_"; prefix["config"] = "cfg_"; prefix["bookie"] = "bk_"
    prefix["autorec"] = "ar_"; prefix["schema"] = "sch_"
  }
  {
    name = $1; file = $2; line = $3; kind = $4; props = $5
    split(file, parts, "/")
    mod = (file == "broker/main.c") ? "main" : parts[2]
    pre = (mod in prefix) ? prefix[mod] : mod "_"
    static = (props ~ /static/) || (file ~ /\.h$/ && kind == "function")
    # File-local tables and state are not checked. ctags does not see the static of a
    # definition whose type spans lines (static const struct {...} rows[]): skip those.
    if (kind == "variable" && (static || $6 ~ /^\/\^}/)) next
    if (kind == "function" && name != "main") {
      defs[name] = defs[name] " " file ":" line; ndefs[name]++; mods[name] = mods[name] " " mod
    }
    if (name == "main") next  # the entry of a program (broker/main.c, the bookie bench)
    if (index(name, pre) == 1) next
    what = (kind == "variable") ? "exported variable" : (static ? "static" : "exported")
    tag = (mod in ispending) ? mod " (pending)" : mod
    printf "%s: %s %s (%s:%s)\n", tag, what, name, file, line
    count[tag]++
    if (!(mod in ispending)) fail++
  }
  END {
    for (name in ndefs) {
      if (ndefs[name] < 2) continue
      m = split(mods[name], ms, " "); allpend = 1
      for (i = 1; i <= m; i++) if (!(ms[i] in ispending)) allpend = 0
      tag = allpend ? "dup (pending)" : "dup"
      printf "%s: %s%s\n", tag, name, defs[name]
      count[tag]++
      if (!allpend) fail++
    }
    for (t in count) printf "count %s: %d\n", t, count[t] | "sort"
    close("sort")
    if (fail) { printf "check-prefixes: %d violations\n", fail; exit 1 }
    print "check-prefixes: ok"
  }'
