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
# workers lists the pids of nginx's serving workers (those of the master
# whose command line names the -c file given, else of every master), so
# that the reload can be waited for: nginx -s reload only signals the
# master, whose old workers take requests until it has started new ones.
conf=
prev=
for a in "$@"; do
  if [ "$prev" = -c ]; then conf=$a; fi
  prev=$a
done
workers() {
  ps -e -o pid= -o ppid= -o args= 2>/dev/null | awk -v conf="$conf" '
    { pid = $1; ppid = $2; $1 = ""; $2 = ""; args = substr($0, 3) }
    args ~ /^nginx: master process/ && (conf == "" || index(args, conf)) { master[pid] = 1 }
    args == "nginx: worker process" { worker[pid] = ppid }
    END { for (w in worker) if (worker[w] in master) print w }'
}
old_workers=$(workers)
if ! out=$(run_nginx "$@" -s reload 2>&1); then
  put_back
  echo "nginx -s reload failed; the old $file is back:" >&2
  echo "$out" >&2
  exit 1
fi
# Wait (5 s at most) until no old worker serves: each has exited or
# is shutting down, finishing the requests it has.
for _ in $(seq 50); do
  now=$(workers)
  serving=
  for w in $old_workers; do
    case " $(echo "$now" | tr '\n' ' ') " in *" $w "*) serving=1 ;; esac
  done
  [ -z "$serving" ] && break
  sleep 0.1
done
