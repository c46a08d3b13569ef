package detect

import (
	"testing"

	"github.com/stagecoach/stagecoach/stages/archive"
	"github.com/stagecoach/stagecoach/stages/fleet"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/ui"
)

// TestPreviousIsTheLiveRelease: Detect diffs against the revision of the
// release current points at, not that of the last deploy recorded.
// Regression (chaos seed 7): a rollback that restored the database and
// switched, then died before recording itself, left the last deploy's
// revision newer than the live release; diffing against it, the next
// deploy saw no migration pending and left its release on the older
// database.
func TestPreviousIsTheLiveRelease(t *testing.T) {
	const older, newer = "20260101T000000Z-aaaaaaa", "20260102T000000Z-bbbbbbb"
	st := &server.State{Version: server.StateVersion, App: "shop", Revision: "bbbb"}
	st.AddRelease(server.Release{ID: older, Revision: "aaaa"})
	st.AddRelease(server.Release{ID: newer, Revision: "bbbb"})
	h := &fleet.Host{Name: "web1", State: st, Live: older, LiveManifest: &archive.Manifest{}}
	rc := &run.Context{Hosts: []*fleet.Host{h}, Log: ui.Discard()}
	if rev, _ := previousRevision(rc, rc.Log); rev != "aaaa" {
		t.Errorf("previous revision %q, want the live release's, %q", rev, "aaaa")
	}
	// A release the state knows no revision of: the last deploy's.
	h.Live = "20260103T000000Z-ccccccc"
	if rev, _ := previousRevision(rc, rc.Log); rev != "bbbb" {
		t.Errorf("previous revision %q, want the last deploy's, %q", rev, "bbbb")
	}
}
