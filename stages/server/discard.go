package server

import "github.com/stagecoach/stagecoach/stages/remote"

// discardSh removes release $2 of root $1 and its upload and metadata,
// unless current points at it: a release that went live is never removed
// by a failed deploy's clean-up.
const discardSh = `root=$1 id=$2
if [ "$(readlink "$root/current" 2>/dev/null)" = "releases/$id" ]; then
  echo "release $id is live: not discarded" >&2; exit 1
fi
rm -rf -- "$root/releases/.staging-$id" "$root/releases/$id" "$root/.stagecoach/incoming/$id.tar.gz" \
  "$root/.stagecoach/manifests/$id.json" "$root/.stagecoach/manifests/$id.sha256" "$root/.stagecoach/manifests/$id.links"
`

// DiscardRelease removes a release that was staged but never activated,
// with its upload and metadata, after another host failed to prepare.
func DiscardRelease(l Layout, id string) (remote.Command, error) {
	if err := ValidID(id); err != nil {
		return remote.Command{}, err
	}
	return remote.Cmd("discard staged release "+id, "sh", "-c", discardSh, "sh", l.Root, id), nil
}
