# shellcheck shell=sh
# carry.sh DEST FILE...
#
# Run by xargs in an earlier release: links the FILEs (release-relative)
# that still exist into DEST without replacing any there. The existence test
# is a shell builtin, so a batch costs one cp. coreutils 9.2 and later want
# --update=none where older ones only know -n.
d=$1
shift
n=$#
for f do
  if [ -f "$f" ]; then set -- "$@" "$f"; fi
done
shift "$n"
[ $# -gt 0 ] || exit 0
cp -l --parents --update=none -t "$d" -- "$@" 2>/dev/null || cp -l --parents -n -t "$d" -- "$@"
