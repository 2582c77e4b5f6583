# scripts/lib/common.sh - what the scripts of scripts/ share; sourced, never run.
#
#   tree_args PROG FLAG HELP_END SCRIPT [ARGS...]
#       The command line of a script that reads the source tree, "[FLAG] [SRCDIR]":
#       sets flag=1 when FLAG is given (else 0) and src to SRCDIR, by default the repository
#       SCRIPT belongs to. -h/--help prints lines 2..HELP_END of SCRIPT's header comment and
#       exits 0; an unknown option, or a SRCDIR without broker/, exits 2 naming PROG.
#   stop_pid PID
#       SIGTERM, then SIGKILL if it is still there after 10 s; reaps it when it is a child
#       of this shell. Returns its exit status (0 for an empty PID, 127 for a process that
#       is not our child).

tree_args() {
  local prog=$1 opt=$2 help_end=$3 script=$4 a
  shift 4
  flag=0
  src=
  for a in "$@"; do
    case "$a" in
      "$opt") flag=1 ;;
      -h | --help) sed -n "2,${help_end}p" "$script" | sed 's/^# \{0,1\}//'; exit 0 ;;
      -*) echo "$prog: unknown option $a" >&2; exit 2 ;;
      *) src=$a ;;
    esac
  done
  src=${src:-$(cd "$(dirname "$script")/.." && pwd)}
  [ -d "$src/broker" ] || { echo "$prog: no broker/ under $src" >&2; exit 2; }
}

stop_pid() {
  local p=$1 _
  [ -n "$p" ] || return 0
  if kill -0 "$p" 2>/dev/null; then
    kill -TERM "$p" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null
  fi
  wait "$p" 2>/dev/null
}
