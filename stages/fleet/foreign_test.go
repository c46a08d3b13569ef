package fleet_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/fleet"
	"github.com/stagecoach/stagecoach/stages/server"
)

// TestHoldRefusesAForeignTree: a command that deploys refuses a root that
// no deploy has used and that holds a tree Stagecoach did not create, in
// the round trip that takes the lock; other commands and used roots pass.
func TestHoldRefusesAForeignTree(t *testing.T) {
	live := map[string]string{"frontend/dist/index.html": "<h1>old</h1>", "backend/server": "#!/bin/sh\n", "data/app.sqlite3": "rows"}
	state := `{"version":1,"app":"shop","current":"` + liveID + `","releases":[{"id":"` + liveID + `","status":"live"}]}`
	for _, tc := range []struct {
		name    string
		command string
		files   map[string]string
		used    bool // a deploy went live there before
		stale   bool // a stale lock is broken first
		want    *server.ForeignTreeError
	}{
		{name: "deploy onto a live tree", command: "deploy", files: live,
			want: &server.ForeignTreeError{Entries: []string{"backend", "data", "frontend"}, Databases: []string{"data/app.sqlite3"}}},
		{name: "ship onto a database alone", command: "ship", files: map[string]string{"data/app.sqlite3": "rows"},
			want: &server.ForeignTreeError{Entries: []string{"data"}, Databases: []string{"data/app.sqlite3"}}},
		{name: "swap after breaking a stale lock", command: "swap", files: live, stale: true,
			want: &server.ForeignTreeError{Entries: []string{"backend", "data", "frontend"}, Databases: []string{"data/app.sqlite3"}}},
		{name: "deploy onto an empty root", command: "deploy"},
		{name: "deploy onto shared files prepared by hand", command: "deploy", files: map[string]string{"shared/.env": "A=1\n", "shared/data/app.sqlite3": "rows"}},
		{name: "deploy onto a used root", command: "deploy", files: live, used: true},
		{name: "rollback", command: "rollback", files: live},
		{name: "cleanup", command: "cleanup", files: live},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFleet(1)
			f.Databases = []string{"data/app.sqlite3"}
			root := t.TempDir()
			writeFiles(t, root, tc.files)
			if tc.used {
				writeFiles(t, root, map[string]string{".stagecoach/state.json": state})
				goLive(t, root, liveID)
			}
			if tc.stale {
				plantLock(t, root, alice, time.Hour)
			}
			h := f.open(t, "deploy@web1", root)
			err := f.Hold(context.Background(), h, tc.command, tc.stale, "shop")
			defer f.Unlock([]*fleet.Host{h})
			var fe *server.ForeignTreeError
			switch {
			case tc.want == nil && err != nil:
				t.Fatalf("Hold = %v", err)
			case tc.want != nil && !errors.As(err, &fe):
				t.Fatalf("Hold = %v, want a ForeignTreeError", err)
			case tc.want != nil:
				tc.want.Root = root
				if !reflect.DeepEqual(fe, tc.want) {
					t.Errorf("refusal %+v, want %+v", fe, tc.want)
				}
				if exitcode.Of(err) != exitcode.Failed {
					t.Errorf("exit %d", exitcode.Of(err))
				}
			}
			if !h.Locked() {
				t.Error("the lock is not held: the caller releases it")
			}
			looks := f.dialer.Host(h.Name).Count("look for files not made by stagecoach")
			if want := map[bool]int{true: 1, false: 0}[fleet.Deploys(tc.command)]; looks != want {
				t.Errorf("looked %d times, want %d", looks, want)
			}
		})
	}
}

func TestDeploys(t *testing.T) {
	for cmd, want := range map[string]bool{"deploy": true, "ship": true, "swap": true, "rollback": false, "health": false, "cleanup": false, "adopt": false, "check": false} {
		if fleet.Deploys(cmd) != want {
			t.Errorf("Deploys(%q) = %v", cmd, !want)
		}
	}
}
