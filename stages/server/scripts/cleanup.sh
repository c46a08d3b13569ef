# shellcheck shell=sh
# cleanup.sh ROOT KEEP PROTECT MINUTES DOCKER_LOGS DOCKER_PRUNE RELEASE_IMAGES HELD CURRENT [EXIT EXPECT]
#
# Removes all but the KEEP newest releases, never those in PROTECT
# (space-separated ids) nor current's, with their manifests (and, when
# RELEASE_IMAGES is 1, the docker images tagged with their id); backups
# whose release is gone; staging leftovers older than MINUTES; and the
# uploads no deploy in progress owns. HELD=1 says the caller holds the
# deploy lock: then every upload but the archive of CURRENT (the release
# it deploys, or "") is a leftover, and so is every manifest of a release
# never staged but CURRENT's. Else a deploy holding the lock may be
# uploading: what it wrote since it took the lock stays, up to MINUTES,
# and orphan manifests go only once older than MINUTES. DOCKER_LOGS=1
# truncates the containers' json logs, DOCKER_PRUNE=1 prunes docker.
# Prints the lines ParseCleanup reads. With EXIT, once done, it exits
# EXIT unless the releases it removed are EXPECT (space-separated ids,
# newest first): a caller that wrote the state for EXPECT in the same
# batch learns that it must write it again.
set -eu
root=$1 keep=$2 protect=$3 minutes=$4 docker_logs=$5 docker_prune=$6 release_images=$7 held=$8 current=$9
unexpected=${10:-} expect=${11:-}

# as_root runs a command directly as root, else through sudo -n, which
# fails instead of prompting for a password.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi
}

# Each process costs a fork and an exec, a millisecond or more on a busy
# host (and a fleet's hosts may share one): directories are listed with
# globs, ids checked with case, the free space split by the shell. A
# cleanup with nothing to remove starts three processes.

# usage prints the free space; not the releases' size, which would walk
# every file of every release kept. df -P prints one line per file system,
# "available" third from its end.
usage() {
  label=$1
  set -f
  # shellcheck disable=SC2046 # split into words on purpose
  set -- $(df -Pk .)
  set +f
  if [ $# -ge 3 ]; then shift $(($# - 3)); else set -- ''; fi
  echo "$label free_kb=$1"
}

# is_id tells whether $1 is a release id: ^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{7,40}$.
is_id() {
  case $1 in
  [0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9]Z-*) ;;
  *) return 1 ;;
  esac
  hex=${1#*Z-}
  case $hex in
  '' | *[!0-9a-f]*) return 1 ;;
  esac
  [ "${#hex}" -ge 7 ] && [ "${#hex}" -le 40 ]
}

# exists tells whether $1, a glob's word, names an entry: a glob that
# matched nothing stays as it was written.
exists() {
  [ -e "$1" ] || [ -L "$1" ]
}

cd "$root"
for d in releases .stagecoach/backups .stagecoach/incoming .stagecoach/manifests; do
  if [ ! -d "$d" ]; then
    mkdir -p releases .stagecoach/backups .stagecoach/incoming .stagecoach/manifests
    break
  fi
done
usage before
cur=$(readlink current 2>/dev/null || true)
cur=${cur#releases/}
# Globs sort: the ids come oldest first. All but the KEEP newest go,
# newest first, unless protected.
n=0
for d in releases/*; do
  if is_id "${d#releases/}"; then n=$((n + 1)); fi
done
i=0 removed=
for d in releases/*; do
  id=${d#releases/}
  is_id "$id" || continue
  i=$((i + 1))
  [ $((n - i)) -ge "$keep" ] || continue
  case " $protect $cur " in
  *" $id "*) continue ;;
  esac
  removed="$id${removed:+ $removed}"
done
for id in $removed; do
  rm -rf "releases/$id" ".stagecoach/manifests/$id.json" ".stagecoach/manifests/$id.sha256" ".stagecoach/manifests/$id.links"
  if [ "$release_images" = 1 ]; then
    # Tagged, these images are not dangling: a prune would keep them.
    docker images --format '{{.Repository}}:{{.Tag}}' 2>/dev/null | awk -F: -v id="$id" '$NF == id' |
      xargs -r docker rmi >/dev/null || echo "warning: could not remove the docker images of $id" >&2
  fi
  echo "removed $id"
done
for d in .stagecoach/backups/*; do
  id=${d#.stagecoach/backups/}
  if is_id "$id" && [ ! -d "releases/$id" ]; then
    rm -rf "$d"
    echo "removed-backup $id"
  fi
done
for d in releases/.staging-*; do
  if exists "$d"; then
    rm -rf releases/.staging-*
    break
  fi
done
for f in .current-*.tmp; do
  if [ -L "$f" ]; then rm -f "$f"; fi
done
for e in .stagecoach/stage.* .stagecoach/lock.breaking-*; do
  if exists "$e"; then
    find .stagecoach -maxdepth 1 \( -name 'stage.*' -o -name 'lock.breaking-*' \) -mmin "+$minutes" -exec rm -rf {} +
    break
  fi
done
# Manifests of releases never staged: under the caller's lock all but
# CURRENT's, else those older than MINUTES.
orphan() {
  id=${1##*/}
  id=${id%.*}
  [ -d "releases/$id" ] || [ "$id" = "$current" ] || rm -f "$1"
}
if [ "$held" = 1 ]; then
  for f in .stagecoach/manifests/*T*Z-*.*; do
    if [ -f "$f" ]; then orphan "$f"; fi
  done
else
  find .stagecoach/manifests -maxdepth 1 -type f -name '*T*Z-*.*' -mmin "+$minutes" | while read -r f; do
    orphan "$f"
  done
fi
# Uploads: what deploys killed or failed while shipping left, partial
# uploads and metadata directories included, goes at once, whatever its
# age. Only the archive of CURRENT is kept, and, when another deploy holds
# the lock, what changed since it took it (the lock directory's mtime),
# up to MINUTES.
keep=
[ -z "$current" ] || keep=$current.archive
if [ "$held" != 1 ] && [ -d .stagecoach/lock ]; then
  gone=$(find .stagecoach/incoming -mindepth 1 -maxdepth 1 ! -name "$keep" '(' ! -newer .stagecoach/lock -o -mmin "+$minutes" ')' \
    -print -exec rm -rf {} + | wc -l)
else
  gone=0
  for e in .stagecoach/incoming/* .stagecoach/incoming/.[!.]* .stagecoach/incoming/..?*; do
    if exists "$e" && [ "${e##*/}" != "$keep" ]; then
      rm -rf "$e"
      gone=$((gone + 1))
    fi
  done
fi
echo "removed-incoming $gone"
if [ "$docker_logs" = 1 ]; then
  as_root sh -c 'truncate -c -s 0 /var/lib/docker/containers/*/*-json.log' ||
    echo "warning: could not truncate docker logs" >&2
fi
if [ "$docker_prune" = 1 ]; then
  docker system prune -f >/dev/null || echo "warning: docker system prune failed" >&2
fi
usage after
if [ -n "$unexpected" ] && [ "$removed" != "$expect" ]; then
  echo "removed other releases than expected ($expect)" >&2
  exit "$unexpected"
fi
