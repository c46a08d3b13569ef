# shellcheck shell=sh
# discard_release.sh ROOT ID
#
# Removes release ID with its staging directory, upload and metadata,
# unless current points at it: a release that went live is never removed by
# a failed deploy's clean-up.
root=$1 id=$2
if [ "$(readlink "$root/current" 2>/dev/null)" = "releases/$id" ]; then
  echo "release $id is live: not discarded" >&2
  exit 1
fi
rm -rf -- "$root/releases/.staging-$id" "$root/releases/$id" "$root/.stagecoach/incoming/$id.archive" \
  "$root/.stagecoach/incoming/$id.archive.sha256" "$root/.stagecoach/incoming/$id.unpacked" \
  "$root/.stagecoach/manifests/$id.json" "$root/.stagecoach/manifests/$id.sha256" "$root/.stagecoach/manifests/$id.links"
