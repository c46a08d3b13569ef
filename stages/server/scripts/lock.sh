# shellcheck shell=sh
# lock.sh ACTION LOCK_DIR ARG...: the deploy lock.
#
#   lock.sh read LOCK_DIR
#   lock.sh take LOCK_DIR TOKEN INFO_JSON EXIT_HELD
#   lock.sh heartbeat LOCK_DIR TOKEN EXIT_LOST
#   lock.sh release LOCK_DIR TOKEN EXIT_LOST
#   lock.sh break LOCK_DIR TOKEN TTL_SECONDS EXIT_REFUSED
#
# break with TTL_SECONDS -1 breaks the lock whatever its heartbeat's age:
# its holder is known to be dead. break with an empty TOKEN breaks a lock
# without info.json: one an older take, which made the lock by mkdir and
# then wrote into it, left when it was killed part-way.
#
# See Lock, Heartbeat, Unlock, BreakLock and ReadLock in lock.go and
# check.go for what each does and prints.
action=$1 d=$2
shift 2

# report prints the server's clock and the lock's heartbeat (info.json's
# mtime, or the directory's for a lock left without it), then the info.
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

# alive PID succeeds while PID runs. A zombie does not: a killed take's
# shell stays one until its orphan is reaped, which a container's init
# may never do.
alive() {
  if [ -r "/proc/$1/stat" ]; then
    st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    st=${st##*) }
    [ "${st%% *}" != Z ]
  else
    kill -0 "$1" 2>/dev/null
  fi
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
  token=$1 info=$2 held=$3
  meta=${d%/*} name=${d##*/}
  mkdir -p "$meta"
  # A take, release or break killed part-way leaves only a directory
  # beside the lock, named by its shell's PID: removed here once that
  # process is gone. (A break's, while its shell runs, may be a lock it
  # is about to put back.)
  for t in "$meta/$name".taking-* "$meta/$name".released-* "$meta/$name".breaking-*; do
    [ -d "$t" ] || continue
    alive "${t##*-}" || rm -rf "$t"
  done
  if [ -d "$d" ]; then
    report
    exit "$held"
  fi
  # The lock is built whole beside its place, then renamed into it: of two
  # deploys exactly one rename succeeds (the other finds the lock there,
  # not empty), and no reader or killed take ever leaves a lock without
  # its token and info. (rename replaces an empty directory: only an old
  # take, which made the lock by mkdir, could leave one; it is caught
  # above.)
  tmp=$meta/$name.taking-$$
  rm -rf "$tmp"
  if ! { mkdir "$tmp" &&
    printf '%s\n' "$token" > "$tmp/token" &&
    printf '%s\n' "$info" > "$tmp/info.json"; }; then
    rm -rf "$tmp"
    echo "take deploy lock: cannot write $tmp" >&2
    exit 1
  fi
  if ! err=$(mv -T "$tmp" "$d" 2>&1); then
    rm -rf "$tmp"
    if [ -d "$d" ]; then
      report
      exit "$held"
    fi
    printf '%s\n' "$err" >&2
    exit 1
  fi
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
    # Renamed aside before it is removed: a release killed part-way
    # leaves the whole lock or a directory the next take removes, never a
    # lock that lost its token but not its info.
    gone=$d.released-$$
    mv -T "$d" "$gone" && rm -rf "$gone"
  else
    echo "deploy lock not held by this deploy; left alone" >&2
    exit "$2"
  fi
  ;;
break)
  token=$1 ttl=$2 refused=$3 aside=$d.breaking-$$
  refuse() {
    report
    exit "$refused"
  }
  if [ ! -d "$d" ]; then
    echo "no deploy lock to break" >&2
    exit 0
  fi
  # is DIR the lock asked for: holding token, or, for an empty one,
  # without info? A lock with info but no token file is one an older
  # release, which removed the lock in place, left when it was killed
  # part-way: its info names its token.
  is() {
    if [ -z "$token" ]; then
      [ ! -e "$1/info.json" ]
    elif [ -e "$1/token" ]; then
      [ "$(cat "$1/token" 2>/dev/null)" = "$token" ]
    else
      grep -qF "\"token\":\"$token\"" "$1/info.json" 2>/dev/null
    fi
  }
  is "$d" || refuse
  if [ "$ttl" -ge 0 ]; then
    now=$(date +%s)
    hb=$(stat -c %Y "$d/info.json" 2>/dev/null || stat -c %Y "$d")
    [ $((now - hb)) -gt "$ttl" ] || refuse
  fi
  # Renamed aside in one step and checked there, so a lock another deploy
  # took in the meantime is put back rather than deleted.
  mv -T "$d" "$aside" || refuse
  if is "$aside"; then
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
