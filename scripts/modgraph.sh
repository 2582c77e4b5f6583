#!/usr/bin/env bash
# modgraph.sh - the module include graph of broker/, and its cycles.
#
#   scripts/modgraph.sh [--check] [SRCDIR]
#
# A module is a folder broker/<mod>/. Module A depends on module B when a file
# broker/A/*.[ch] has a line `#include "B/..."` (B other than A). The script prints one
# line per module, "A -> B C ...", then every elementary cycle of the graph, one per line
# ("svc -> conn -> svc"), or "cycles: none".
#
# Exit status: 0 by default, also when there are cycles (report only); with --check, 1 when
# there is a cycle. 2 on bad usage or when no module is found. SRCDIR defaults to the
# repository this script belongs to. docs/style.md §1 says which way dependencies point.
set -euo pipefail

. "$(dirname "$0")/lib/common.sh"
tree_args modgraph --check 13 "$0" "$@"
check=$flag

# One "from to" pair per include line, then the module list (modules without includes too).
edges=$(cd "$src/broker" && for d in */; do
  m=${d%/}
  for f in "$m"/*.c "$m"/*.h; do
    [ -f "$f" ] || continue
    sed -nE 's|^[[:space:]]*#[[:space:]]*include[[:space:]]*"([A-Za-z0-9_]+)/[^"]*".*|\1|p' "$f" |
      while read -r to; do
        [ "$to" != "$m" ] && [ -d "$to" ] && echo "$m $to"
      done
  done
done | sort -u)
mods=$(cd "$src/broker" && for d in */; do echo "${d%/}"; done | sort)
[ -n "$mods" ] || { echo "modgraph: no module folders under $src/broker" >&2; exit 2; }

printf '%s\n--\n%s\n' "$mods" "$edges" | awk -v check="$check" '
  BEGIN { part = 1; nm = 0; ncyc = 0 }
  $0 == "--" { part = 2; next }
  part == 1 { if ($1 != "") { nm++; mod[nm] = $1; idx[$1] = nm }; next }
  NF == 2 { adj[idx[$1], idx[$2]] = 1; out[$1] = out[$1] " " $2 }
  # Enumerate elementary cycles whose smallest-index node is s (depth-first, simple paths).
  function dfs(s, v, depth,    w, i, line) {
    path[depth] = v
    onpath[v] = 1
    for (w = s; w <= nm; w++) {
      if (!((v, w) in adj)) continue
      if (w == s) {
        line = mod[path[1]]
        for (i = 2; i <= depth; i++) line = line " -> " mod[path[i]]
        cycles[++ncyc] = line " -> " mod[s]
      } else if (!onpath[w] && ncyc < 1000) {
        dfs(s, w, depth + 1)
      }
    }
    onpath[v] = 0
  }
  END {
    width = 0
    for (i = 1; i <= nm; i++) if (length(mod[i]) > width) width = length(mod[i])
    for (i = 1; i <= nm; i++) printf "%-" width "s ->%s\n", mod[i], out[mod[i]]
    for (s = 1; s <= nm; s++) { delete onpath; dfs(s, s, 1) }
    if (ncyc == 0) { print "cycles: none"; exit 0 }
    printf "cycles: %d\n", ncyc
    for (i = 1; i <= ncyc; i++) print "  " cycles[i]
    exit check ? 1 : 0
  }'
