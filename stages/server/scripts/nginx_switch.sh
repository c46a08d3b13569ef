# shellcheck shell=sh
# nginx_switch.sh FILE SIZE EXIT_TEST NGINX [NGINX_ARG...] < CONTENT
#
# Replaces nginx's include FILE by stdin through a rename, then tests the
# whole configuration (nginx -t) and reloads nginx (nginx -s reload), which
# lets the old workers finish their requests. When the test or the reload
# fails, the old FILE is put back (or the new one removed when there was
# none) before it exits, EXIT_TEST when the test failed: nothing switched.
# nginx runs through sudo -n when this is not root.
set -e
file=$1 size=$2 exit_test=$3
shift 3
run_nginx() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  else
    sudo -n "$@"
  fi
}
dir=$(dirname "$file")
mkdir -p "$dir"
tmp=$file.stagecoach-new.$$
old=$file.stagecoach-old.$$
cleanup() { rm -f "$tmp" "$old"; }
trap cleanup EXIT
cat > "$tmp"
got=$(wc -c < "$tmp")
if [ "$got" -ne "$size" ]; then
  echo "write $file: got $got bytes of $size; left unchanged" >&2
  exit 1
fi
chmod 644 "$tmp"
had_old=
if [ -f "$file" ]; then
  cp -p "$file" "$old"
  had_old=1
fi
put_back() {
  if [ -n "$had_old" ]; then
    mv -f "$old" "$file"
  else
    rm -f "$file"
  fi
}
mv -f "$tmp" "$file"
if ! out=$(run_nginx "$@" -t 2>&1); then
  put_back
  echo "nginx -t refused the configuration with $file; the old file is back:" >&2
  echo "$out" >&2
  exit "$exit_test"
fi
if ! out=$(run_nginx "$@" -s reload 2>&1); then
  put_back
  echo "nginx -s reload failed; the old $file is back:" >&2
  echo "$out" >&2
  exit 1
fi
