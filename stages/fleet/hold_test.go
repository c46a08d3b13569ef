package fleet_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/fleet"
	"github.com/stagecoach/stagecoach/stages/remote/remotetest"
	"github.com/stagecoach/stagecoach/stages/server"
)

// TestHold: the lock and the state come together, the state read only
// under the lock.
func TestHold(t *testing.T) {
	state := `{"version":1,"app":"shop","current":"` + liveID + `","releases":[{"id":"` + liveID + `","status":"live"}]}`
	for _, tc := range []struct {
		name       string
		stale      bool // alice's stale lock is on the host
		breakStale bool
		rules      func(f *remotetest.Fake)
		state      string
		want       string // in the error; "": none
		locked     bool   // the lock is held after
		reads      int    // reads of the state
	}{
		{name: "free lock", state: state, locked: true, reads: 1},
		{name: "no state yet", locked: true, reads: 1},
		// The read batched with the first attempt is skipped: the state is
		// read once the lock is taken.
		{name: "stale lock broken", stale: true, breakStale: true, state: state, locked: true, reads: 1},
		{name: "stale lock kept", stale: true, state: state, want: "STAGECOACH_BREAK_LOCK=1"},
		{name: "lock taken by a live deploy", rules: func(f *remotetest.Fake) {
			f.On("take deploy lock").Exit(server.ExitLockHeld, "").Stdout(heldReport(alice, 0))
		}, breakStale: true, want: "deploy locked by alice@laptop"},
		{name: "state unreadable", state: state, locked: true, reads: 1,
			rules: func(f *remotetest.Fake) { f.On("read deploy state").Exit(1, "permission denied") }, want: "permission denied"},
		{name: "state corrupt", state: "{", locked: true, reads: 1, want: "is corrupt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFleet(1)
			root := t.TempDir()
			if tc.state != "" {
				writeFiles(t, root, map[string]string{".stagecoach/state.json": tc.state})
				goLive(t, root, liveID)
			}
			if tc.stale {
				plantLock(t, root, alice, time.Hour)
			}
			h := f.open(t, "deploy@web1", root)
			fake := f.dialer.Host(h.Name)
			if tc.rules != nil {
				tc.rules(fake)
			}
			err := f.Hold(context.Background(), h, "deploy", tc.breakStale, "shop")
			defer f.Unlock([]*fleet.Host{h})
			if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Hold = %v, want %q", err, tc.want)
			}
			if tc.want == "STAGECOACH_BREAK_LOCK=1" && exitcode.Of(err) != exitcode.Locked {
				t.Errorf("exit %d, want %d", exitcode.Of(err), exitcode.Locked)
			}
			if h.Locked() != tc.locked || (tc.locked && lockToken(t, root) == alice.Token) {
				t.Errorf("Locked %v with token %q, want locked %v by this run", h.Locked(), lockToken(t, root), tc.locked)
			}
			if tc.stale && tc.breakStale && !strings.HasPrefix(h.BrokeLock(), "alice@laptop") {
				t.Errorf("BrokeLock %q", h.BrokeLock())
			}
			if n := fake.Count("read deploy state"); n != tc.reads {
				t.Errorf("state read %d times, want %d", n, tc.reads)
			}
			if err == nil && tc.state != "" && (h.Live != liveID || h.State.Current != liveID) {
				t.Errorf("Live %q, state current %q after Hold", h.Live, h.State.Current)
			}
			if err == nil && tc.state == "" && (h.Live != "" || h.State == nil || h.State.App != "shop") {
				t.Errorf("Live %q, state %+v on a host without state", h.Live, h.State)
			}
		})
	}
}
