# shellcheck shell=sh
# reuse_link.sh DEST FILE...
#
# Run by xargs in the previous release, once per batch: hard-links each FILE
# to the same path below DEST, creating directories. Plain arguments are
# linked with one cp -l --parents for the whole batch; "from<newline>to"
# arguments (moved files, rare) one by one, after which the plain ones are
# collected (a quadratic loop in sh, so it is skipped when the batch has no
# moved file).
d=$1
shift
case "$*" in
*"
"*) ;;
*) exec cp -l --parents -t "$d" -- "$@" ;;
esac
n=$#
for a do
  case $a in
  *"
"*)
    f=${a%%"
"*}
    t=${a#*"
"}
    case $t in */*) mkdir -p -- "$d/${t%/*}" ;; esac
    ln -- "$f" "$d/$t"
    ;;
  *) set -- "$@" "$a" ;;
  esac
done
shift "$n"
[ $# -eq 0 ] || exec cp -l --parents -t "$d" -- "$@"
