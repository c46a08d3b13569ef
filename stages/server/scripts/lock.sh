# shellcheck shell=sh
# lock.sh ACTION LOCK_DIR ARG...: the deploy lock.
#
#   lock.sh read LOCK_DIR
#   lock.sh take LOCK_DIR TOKEN INFO_JSON EXIT_HELD
#   lock.sh heartbeat LOCK_DIR TOKEN EXIT_LOST
#   lock.sh release LOCK_DIR TOKEN EXIT_LOST
#   lock.sh break LOCK_DIR TOKEN TTL_SECONDS ASIDE EXIT_REFUSED
#
# break with TTL_SECONDS -1 breaks the lock whatever its heartbeat's age:
# its holder is known to be dead.
#
# See Lock, Heartbeat, Unlock, BreakLock and ReadLock in lock.go and
# check.go for what each does and prints.
action=$1 d=$2
shift 2

# report prints the server's clock and the lock's heartbeat (info.json's
# mtime, or the directory's before the holder wrote it), then the info.
report() {
  now=$(date +%s)
  hb=$(stat -c %Y "$d/info.json" 2>/dev/null || stat -c %Y "$d" 2>/dev/null || echo "$now")
  echo "stagecoach-lock now=$now heartbeat=$hb"
  cat "$d/info.json" 2>/dev/null || true
}

# holds TOKEN succeeds when the lock directory holds TOKEN.
holds() {
  [ "$(cat "$d/token" 2>/dev/null)" = "$1" ]
}

case $action in
read)
  if [ ! -d "$d" ]; then
    echo "stagecoach-lock free"
    exit 0
  fi
  # The directory's mtime only changes when the lock is taken.
  echo "stagecoach-lock created=$(stat -c %Y "$d" 2>/dev/null || date +%s)"
  report
  ;;
take)
  set -e
  mkdir -p "${d%/*}"
  # mkdir is the atomic test-and-set: of two deploys exactly one creates it.
  if ! mkdir "$d" 2>/dev/null; then
    if [ -d "$d" ]; then
      report
      exit "$3"
    fi
    mkdir "$d"
  fi
  printf '%s\n' "$1" > "$d/token"
  # Through a rename, so readers never see half a file.
  printf '%s\n' "$2" > "$d/info.json.tmp"
  mv -f "$d/info.json.tmp" "$d/info.json"
  ;;
heartbeat)
  if holds "$1"; then
    touch "$d/info.json"
  else
    echo "deploy lock lost: it was broken or taken by another deploy" >&2
    exit "$2"
  fi
  ;;
release)
  if holds "$1"; then
    rm -rf "$d"
  else
    echo "deploy lock not held by this deploy; left alone" >&2
    exit "$2"
  fi
  ;;
break)
  token=$1 ttl=$2 aside=$3 refused=$4
  refuse() {
    report
    exit "$refused"
  }
  if [ ! -d "$d" ]; then
    echo "no deploy lock to break" >&2
    exit 0
  fi
  holds "$token" || refuse
  if [ "$ttl" -ge 0 ]; then
    now=$(date +%s)
    hb=$(stat -c %Y "$d/info.json" 2>/dev/null || stat -c %Y "$d")
    [ $((now - hb)) -gt "$ttl" ] || refuse
  fi
  # Renamed aside in one step and checked there, so a lock another deploy
  # took in the meantime is put back rather than deleted.
  mv -T "$d" "$aside" || refuse
  if [ "$(cat "$aside/token" 2>/dev/null)" = "$token" ]; then
    rm -rf "$aside"
  else
    mv -T "$aside" "$d" 2>/dev/null || rm -rf "$aside"
    refuse
  fi
  ;;
*)
  echo "lock.sh: unknown action $action" >&2
  exit 2
  ;;
esac
