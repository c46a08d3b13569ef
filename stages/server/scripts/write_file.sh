# shellcheck shell=sh
# write_file.sh FILE MODE SIZE [keep] < CONTENT
#
# Replaces FILE by stdin through a rename, creating its directory. The
# content is written owner-only (umask 077) and given MODE only once whole:
# secrets are never readable by others, not even for a moment, and a
# stream cut short (SIZE bytes were sent) never replaces the file. With
# "keep", a FILE that exists already stays as it is. Prints "wrote FILE"
# or "kept FILE".
set -e
file=$1 mode=$2 size=$3 keep=${4:-}
if [ "$keep" = keep ] && [ -e "$file" ]; then
  cat > /dev/null
  echo "kept $file"
  exit 0
fi
umask 077
# Processes are few (each costs a millisecond or more on a busy host): the
# directory is made only when missing, the temporary file removed only
# when left.
case $file in
*/*) dir=${file%/*} ;;
*) dir=. ;;
esac
[ -d "${dir:-/}" ] || mkdir -p "${dir:-/}"
tmp=$file.tmp.$$
cleanup() { if [ -e "$tmp" ]; then rm -f "$tmp"; fi; }
trap cleanup EXIT
cat > "$tmp"
got=$(wc -c < "$tmp")
if [ "$got" -ne "$size" ]; then
  echo "write $file: got $got bytes of $size; left unchanged" >&2
  exit 1
fi
chmod "$mode" "$tmp"
mv -f "$tmp" "$file"
echo "wrote $file"
