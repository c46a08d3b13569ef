# shellcheck shell=sh
# check_tools.sh EXIT_MISSING TOOL...
#
# Exits EXIT_MISSING, naming every missing one on stderr, when a TOOL is not
# on PATH or tar or coreutils are not GNU's.
code=$1
shift
missing=
for t do
  command -v "$t" >/dev/null 2>&1 || missing="$missing $t"
done
# A command substitution costs one process, a pipe into grep two.
case "$missing" in
*" tar"*) ;;
*)
  case $(tar --version 2>/dev/null) in
  *'GNU tar'*) ;;
  *) missing="$missing GNU-tar" ;;
  esac
  ;;
esac
case "$missing" in
*" mv"*) ;;
*)
  case $(mv --version 2>/dev/null) in
  *'GNU coreutils'*) ;;
  *) missing="$missing GNU-coreutils" ;;
  esac
  ;;
esac
if [ -n "$missing" ]; then
  echo "missing tools on the server:$missing (stagecoach needs GNU tar, GNU coreutils, gzip, findutils and awk)" >&2
  exit "$code"
fi
