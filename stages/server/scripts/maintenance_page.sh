# shellcheck shell=sh
# maintenance_page.sh FILE SIZE < CONTENT
#
# Writes stdin to FILE through a rename, readable by nginx's workers,
# unless FILE exists: an app's own maintenance page is never replaced.
# Prints whether it wrote the page.
set -e
file=$1 size=$2
if [ -e "$file" ]; then
  cat > /dev/null
  echo "the maintenance page $file is the app's own"
  exit 0
fi
mkdir -p "$(dirname "$file")"
tmp=$file.tmp.$$
cleanup() { rm -f "$tmp"; }
trap cleanup EXIT
cat > "$tmp"
got=$(wc -c < "$tmp")
if [ "$got" -ne "$size" ]; then
  echo "write $file: got $got bytes of $size; left unchanged" >&2
  exit 1
fi
chmod 644 "$tmp"
mv -f "$tmp" "$file"
echo "wrote the default maintenance page $file"
