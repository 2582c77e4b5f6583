#!/usr/bin/env bash
# check-format.sh - is every tracked C file formatted as .clang-format says?
#
#   scripts/check-format.sh
#
# Runs `clang-format --dry-run -Werror` over the .c and .h files git tracks (generated
# protobuf-c files are never tracked). Prints each file that differs and exits 1 if any
# does, 0 when all match, 2 when clang-format or git is missing. CLANG_FORMAT picks the
# binary (default clang-format). To fix: clang-format -i FILE... (docs/style.md §9).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cf=${CLANG_FORMAT:-clang-format}
command -v "$cf" >/dev/null 2>&1 || { echo "check-format: $cf not found (apt-get install clang-format)" >&2; exit 2; }
command -v git >/dev/null 2>&1 || { echo "check-format: git not found" >&2; exit 2; }
cd "$top"
git rev-parse --is-inside-work-tree >/dev/null 2>&1 || { echo "check-format: $top is not a git checkout" >&2; exit 2; }

mapfile -t files < <(git ls-files -- '*.c' '*.h' | grep -v '/node_modules/')
bad=()
for f in "${files[@]}"; do
  [ -f "$f" ] || continue # deleted in the work tree, not yet committed
  if ! "$cf" --dry-run -Werror "$f" >/dev/null 2>&1; then
    bad+=("$f")
  fi
done
if [ "${#bad[@]}" -gt 0 ]; then
  echo "check-format: ${#bad[@]} of ${#files[@]} files differ from .clang-format (clang-format -i to fix):"
  printf '  %s\n' "${bad[@]}"
  exit 1
fi
echo "check-format: ${#files[@]} files formatted"
