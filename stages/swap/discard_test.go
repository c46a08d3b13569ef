package swap_test

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stagecoach/stagecoach/stages/fleet"
	"github.com/stagecoach/stagecoach/stages/pipeline/pipelinetest"
	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/run/runtest"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/swap"
)

func TestSwapStepDiscardsEveryHostWhenOneCannotStage(t *testing.T) {
	e := runtest.New(t, runtest.Options{Hosts: 3})
	live := pipelinetest.Deploy(t, e)
	change(t, e, map[string]string{"site/index.html": "<h1>v2</h1>\n", "app/migrations/002.sql": "alter table t;\n"})
	r := pipelinetest.Shipped(t, e)
	id := r.Plan.Release
	e.Fake(1).On("stage release").Exit(1, "tar: Unexpected EOF in archive")
	m := e.Marks()

	step := swap.Step{}
	if step.String() != "swap" {
		t.Errorf("step is called %q", step)
	}
	err := step.Run(context.Background(), r.Context)
	want := "stage " + id + " on deploy@web2: "
	if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "web1") || strings.Contains(err.Error(), "web3") {
		t.Fatalf("error %v, want only %q", err, want)
	}
	for i, h := range r.Hosts {
		// The failed host had the upload only; the others had staged.
		want := append(stageAndFurnish(id), "discard staged release "+id)
		if i == 1 {
			want = append(stageOnly(id), "discard staged release "+id)
		}
		e.CheckCalls(t, i, m[i], want...)
		checkNothingOf(t, e, i, id)
		if h.Staged || h.Switched || h.Migrated {
			t.Errorf("host %d: Staged %v, Switched %v, Migrated %v", i, h.Staged, h.Switched, h.Migrated)
		}
		if e.Live(t, i) != live {
			t.Errorf("host %d runs %q, want %s still", i, e.Live(t, i), live)
		}
		if got := e.Services(t, i); !slices.Equal(got, []string{"restart " + live}) {
			t.Errorf("host %d services: %q, want only the first deploy's restart", i, got)
		}
		if got := runtest.ReadFile(t, filepath.Join(h.Layout.SharedDir(), "data", "db")); got != live+"\n" {
			t.Errorf("host %d database is %q: migrated before every host staged", i, got)
		}
	}
}

func TestDiscard(t *testing.T) {
	tests := []struct {
		name    string
		set     func(h *fleet.Host)
		live    bool // current points at the release, unknown to the run
		discard bool // the host is asked to discard
		removed bool // the release is gone after
	}{
		{"staged", func(h *fleet.Host) {}, false, true, true},
		{"shipped only", func(h *fleet.Host) { h.Staged = false }, false, true, true},
		// An upload may have landed although its check failed.
		{"not known to be shipped", func(h *fleet.Host) { h.Shipped, h.Staged = false, false }, false, true, true},
		{"switched", func(h *fleet.Host) { h.Switched = true }, false, false, false},
		// As after a switch whose answer was lost: the script refuses to
		// remove a live release, and the run keeps it marked staged.
		{"live without the run knowing", func(h *fleet.Host) {}, true, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := runtest.New(t, runtest.Options{})
			r := pipelinetest.Shipped(t, e)
			id, h := r.Plan.Release, r.Hosts[0]
			if err := swap.StageAll(context.Background(), r.Context); err != nil {
				t.Fatal(err)
			}
			tt.set(h)
			staged := h.Staged
			if tt.live {
				cmd, _ := server.Switch(h.Layout, id)
				if _, err := remote.NewLocal().Run(context.Background(), cmd); err != nil {
					t.Fatal(err)
				}
			}
			mark := len(e.Fake(0).Calls())

			swap.Discard(context.Background(), r.Context)
			want := []string(nil)
			if tt.discard {
				want = []string{"discard staged release " + id}
			}
			e.CheckCalls(t, 0, mark, want...)
			if got := runtest.Exists(t, h.Layout.ReleaseDir(id)); got == tt.removed {
				t.Errorf("releases/%s exists %v, want %v", id, got, !tt.removed)
			}
			if tt.removed {
				checkNothingOf(t, e, 0, id)
			}
			if wantStaged := staged && !tt.removed; h.Staged != wantStaged {
				t.Errorf("Staged %v, want %v", h.Staged, wantStaged)
			}
			if logged := strings.Contains(e.Log.String(), "release "+id+" is live: not discarded"); logged != (tt.discard && !tt.removed) {
				t.Errorf("warning about the refused discard logged %v:\n%s", logged, e.Log)
			}
		})
	}
}

// A host whose connection was lost (a network cut) during staging gets
// its upload discarded over a new connection.
func TestDiscardReconnects(t *testing.T) {
	t.Parallel()
	e := runtest.New(t, runtest.Options{Hosts: 2})
	pipelinetest.Deploy(t, e)
	change(t, e, map[string]string{"site/index.html": "<h1>v2</h1>\n"})
	r := pipelinetest.Shipped(t, e)
	id := r.Plan.Release
	e.Fake(1).On("stage release").LoseConnection()
	dials := e.Dialer.Dials(e.Names[1])
	if err := swap.StageAll(context.Background(), r.Context); err == nil || !remote.IsConnectionLost(err) {
		t.Fatalf("StageAll: %v, want the connection lost", err)
	}
	if n := e.Dialer.Dials(e.Names[1]) - dials; n != 1 {
		t.Errorf("%d dials of the host whose connection was lost, want 1 (the reconnect)", n)
	}
	for i := range e.Names {
		checkNothingOf(t, e, i, id)
	}
}
