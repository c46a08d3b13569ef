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

# usage prints the free space; not the releases' size, which would walk
# every file of every release kept.
usage() {
  echo "$1 free_kb=$(df -Pk . | awk 'END { print $(NF-2) }')"
}

# ids lists the release ids among the entries of directory $1, oldest first.
ids() {
  find "$1" -mindepth 1 -maxdepth 1 -printf '%f\n' | grep -E '^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{7,40}$' | LC_ALL=C sort
}

cd "$root"
mkdir -p releases .stagecoach/backups .stagecoach/incoming .stagecoach/manifests
usage before
cur=$(readlink current 2>/dev/null || true)
cur=${cur#releases/}
removed=$(ids releases | LC_ALL=C sort -r |
  awk -v keep="$keep" -v protect="$protect $cur" '
    BEGIN { n = split(protect, p, " "); for (i = 1; i <= n; i++) prot[p[i]] = 1 }
    NR > keep && !($0 in prot)')
for id in $removed; do
  rm -rf "releases/$id" ".stagecoach/manifests/$id.json" ".stagecoach/manifests/$id.sha256" ".stagecoach/manifests/$id.links"
  if [ "$release_images" = 1 ]; then
    # Tagged, these images are not dangling: a prune would keep them.
    docker images --format '{{.Repository}}:{{.Tag}}' 2>/dev/null | awk -F: -v id="$id" '$NF == id' |
      xargs -r docker rmi >/dev/null || echo "warning: could not remove the docker images of $id" >&2
  fi
  echo "removed $id"
done
ids .stagecoach/backups | while read -r id; do
  if [ ! -d "releases/$id" ]; then
    rm -rf ".stagecoach/backups/$id"
    echo "removed-backup $id"
  fi
done
rm -rf releases/.staging-*
find . -maxdepth 1 -name '.current-*.tmp' -type l -exec rm -f {} +
find .stagecoach -maxdepth 1 \( -name 'stage.*' -o -name 'lock.breaking-*' \) -mmin "+$minutes" -exec rm -rf {} +
# Manifests of releases never staged: under the caller's lock all but
# CURRENT's, else those older than MINUTES.
if [ "$held" = 1 ]; then set --; else set -- -mmin "+$minutes"; fi
find .stagecoach/manifests -maxdepth 1 -type f -name '*T*Z-*.*' "$@" | while read -r f; do
  id=${f##*/}
  id=${id%.*}
  [ -d "releases/$id" ] || [ "$id" = "$current" ] || rm -f "$f"
done
# Uploads: what deploys killed or failed while shipping left, partial
# uploads and metadata directories included, goes at once, whatever its
# age. Only the archive of CURRENT is kept, and, when another deploy holds
# the lock, what changed since it took it (the lock directory's mtime),
# up to MINUTES.
keep=
[ -z "$current" ] || keep=$current.archive
if [ "$held" != 1 ] && [ -d .stagecoach/lock ]; then
  set -- '(' ! -newer .stagecoach/lock -o -mmin "+$minutes" ')'
else
  set --
fi
echo "removed-incoming $(find .stagecoach/incoming -mindepth 1 -maxdepth 1 ! -name "$keep" "$@" -print -exec rm -rf {} + | wc -l)"
if [ "$docker_logs" = 1 ]; then
  as_root sh -c 'truncate -c -s 0 /var/lib/docker/containers/*/*-json.log' ||
    echo "warning: could not truncate docker logs" >&2
fi
if [ "$docker_prune" = 1 ]; then
  docker system prune -f >/dev/null || echo "warning: docker system prune failed" >&2
fi
usage after
# Release ids hold no blanks: tr joins them with single spaces.
if [ -n "$unexpected" ] && [ "$(printf '%s' "$removed" | tr '\n' ' ')" != "$expect" ]; then
  echo "removed other releases than expected ($expect)" >&2
  exit "$unexpected"
fi
