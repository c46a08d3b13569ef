package server

import "github.com/stagecoach/stagecoach/stages/remote"

var discardScript = load("discard_release.sh")

// DiscardRelease removes a release that was staged but never activated,
// with its upload and metadata, after another host failed to prepare.
// It refuses, exiting 1, when current points at the release.
func DiscardRelease(l Layout, id string) (remote.Command, error) {
	if err := ValidID(id); err != nil {
		return remote.Command{}, err
	}
	return discardScript.cmd("discard staged release "+id, l.Root, id), nil
}
