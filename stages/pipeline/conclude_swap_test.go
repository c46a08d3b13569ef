package pipeline

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/remote/remotetest"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/run/runtest"
	"github.com/stagecoach/stagecoach/stages/server"
)

// activateAndConclude is the batch of a deploy to one host with no health
// checks that activates the release and concludes the deploy.
var activateAndConclude = []string{"stop", "switch current to NEW", "restart",
	"clean up old releases", "write", "release deploy lock"}

// A deploy to one host with no health checks activates the release and
// concludes in one round trip; the conclusion runs only once the whole
// activation succeeded, so every failure before it leaves the lock held
// for the rollback, and a failure in it is the warning it always was.
func TestSwapConcludesInItsRoundTrip(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		migration bool
		fake      func(f *remotetest.Fake)
		interrupt string // the log line at which the deploy is interrupted
		code      int
		live      string   // OLD or NEW
		result    string   // what the host's state records
		batch     []string // the activation's batch, what ran of it
		after     []string // the calls after it
		cleanup   string   // the report's cleanup stage; "" when it has none
		warn      string
	}{{
		name:    "concludes in the swap's round trip",
		live:    "NEW",
		result:  server.ResultSuccess,
		batch:   activateAndConclude,
		cleanup: "ok",
	}, {
		// The record would leave the migration's time out.
		name:      "a migration keeps the conclusion apart",
		migration: true,
		live:      "NEW",
		result:    server.ResultSuccess,
		batch:     []string{"back up files before migrating NEW", "migrate", "stop", "switch current to NEW", "restart"},
		after:     []string{"clean up old releases", "write", "release deploy lock"},
		cleanup:   "ok",
	}, {
		name:   "the restart fails after the switch",
		fake:   func(f *remotetest.Fake) { f.On("restart").Times(1).Exit(1, "unit failed") },
		code:   exitcode.RolledBack,
		live:   "OLD",
		result: server.ResultRolledBack,
		batch:  []string{"stop", "switch current to NEW", "restart"},
		after:  []string{"switch current to OLD", "restart", "write", "release deploy lock"}, // the rollback, the record
	}, {
		name: "the switch fails",
		fake: func(f *remotetest.Fake) {
			f.On("switch current").Exit(server.ExitSwitchFailed, "current points at releases/X")
		},
		code:   exitcode.Failed,
		live:   "OLD",
		result: server.ResultFailed,
		batch:  []string{"stop", "switch current to NEW"},
		after:  []string{"restart", "write", "release deploy lock"}, // the live release's restart, the record
	}, {
		name:      "the migration fails",
		migration: true,
		fake:      func(f *remotetest.Fake) { f.On("migrate").Exit(3, "002: syntax error") },
		code:      exitcode.Failed,
		live:      "OLD",
		result:    server.ResultFailed,
		batch:     []string{"back up files before migrating NEW", "migrate"},
		after:     []string{"restore files backed up before NEW", "restart", "write", "release deploy lock"},
	}, {
		name:    "the cleanup fails",
		fake:    func(f *remotetest.Fake) { f.On("clean up old releases").Exit(1, "rm: cannot remove") },
		live:    "NEW",
		result:  server.ResultSuccess,
		batch:   []string{"stop", "switch current to NEW", "restart", "clean up old releases"},
		after:   []string{"write", "release deploy lock"}, // the state written alone, then Unlock
		cleanup: "failed",
		warn:    "rm: cannot remove",
	}, {
		name:    "the state's write fails once",
		fake:    func(f *remotetest.Fake) { f.On("state.json").Times(1).Exit(1, "injected") },
		live:    "NEW",
		result:  server.ResultSuccess,
		batch:   activateAndConclude[:5],
		after:   []string{"write", "release deploy lock"},
		cleanup: "ok",
	}, {
		name:    "the release of the lock fails once",
		fake:    func(f *remotetest.Fake) { f.On("release deploy lock").Times(1).Exit(1, "injected") },
		live:    "NEW",
		result:  server.ResultSuccess,
		batch:   activateAndConclude,
		after:   []string{"release deploy lock"},
		cleanup: "ok",
	}, {
		name:    "the connection is lost at the cleanup",
		fake:    func(f *remotetest.Fake) { f.On("clean up old releases").Times(1).LoseConnection() },
		live:    "NEW",
		result:  server.ResultSuccess,
		batch:   []string{"stop", "switch current to NEW", "restart", "clean up old releases"},
		after:   []string{"write", "write", "release deploy lock"}, // the first on the lost connection
		cleanup: "failed",
		warn:    "connection lost",
	}, {
		name:      "interrupted once concluded",
		interrupt: "cleanup: removed",
		live:      "NEW",
		result:    server.ResultSuccess,
		batch:     activateAndConclude,
		cleanup:   "ok",
		warn:      "but only once NEW was live and the deploy concluded",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e, old := deployed(t, runtest.Options{}, tc.migration)
			if tc.fake != nil {
				tc.fake(e.Fake(0))
			}
			mark := e.Marks()[0]
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var tweak []func(*run.Context)
			if tc.interrupt != "" {
				tweak = append(tweak, logTo(&cancelOn{Writer: e.Log, text: tc.interrupt, cancel: cancel}))
			}
			r, err := deploy(ctx, t, e, run.Options{}, tweak...)
			if exitcode.Of(err) != tc.code {
				t.Fatalf("exit code %d (%v), want %d\n%s", exitcode.Of(err), err, tc.code, e.Log)
			}
			id := r.Plan.Release
			live := map[string]string{"OLD": old, "NEW": id}[tc.live]
			assertLive(t, e, live)
			assertIntact(t, e, live)
			assertUnlocked(t, e)
			first := "stop"
			if tc.migration {
				first = "back up files"
			}
			batch, after := e.BatchWith(0, mark, first)
			if want := expand(tc.batch, old, id); !slices.Equal(batch, want) {
				t.Errorf("the activation's batch %q, want %q", batch, want)
			}
			e.CheckCalls(t, 0, after, expand(tc.after, old, id)...)
			if d := lastDeploy(t, e, 0); d.Result != tc.result || d.ID != id {
				t.Errorf("recorded %s of %s, want %s of %s", d.Result, d.ID, tc.result, id)
			}
			if s := e.State(t, 0); s.Current != live {
				t.Errorf("state's current %s, want %s", s.Current, live)
			}
			var cleanup string
			for _, st := range readReport(t, r).Stages {
				if st.Name == "cleanup" {
					cleanup = st.Result
				}
			}
			if cleanup != tc.cleanup {
				t.Errorf("report's cleanup stage %q, want %q", cleanup, tc.cleanup)
			}
			if warn := expand([]string{tc.warn}, old, id)[0]; warn != "" && !strings.Contains(e.Log.String(), warn) {
				t.Errorf("log lacks %q:\n%s", warn, e.Log)
			}
		})
	}
}

// Where another host, a health check or an outer hold could still undo
// the activation, the conclusion keeps a round trip of its own.
func TestSwapConcludesOnlyWhereNothingCanUndoIt(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		opts runtest.Options
		hold bool // an outer Hold, as a chain of targets takes
	}{
		{name: "two hosts", opts: runtest.Options{Hosts: 2}},
		{name: "a health check", opts: runtest.Options{Health: "      - command: test -f web/index.html\n"}},
		{name: "held by an outer target", hold: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e, _ := deployed(t, tc.opts, false)
			mark := e.Marks()
			r := open(t, e, run.Options{})
			ctx := context.Background()
			if tc.hold {
				release, err := r.Hold(ctx)
				if err != nil {
					t.Fatal(err)
				}
				defer release()
			}
			if err := r.Deploy(ctx); err != nil {
				t.Fatalf("deploy: %v\n%s", err, e.Log)
			}
			want := []string{"clean up old releases", "write", "release deploy lock"}
			if tc.hold {
				// The record, then the cleanup; the lock is the outer holder's.
				want = []string{"write", "clean up old releases"}
			}
			for i := range e.Names {
				batch, after := e.BatchWith(i, mark[i], "switch current to "+r.Plan.Release)
				if !slices.Equal(batch, []string{"stop", "switch current to " + r.Plan.Release, "restart"}) {
					t.Errorf("host %d: the activation's batch %q, want the stop, the switch and the restart", i, batch)
				}
				if got := e.CallsSince(i, after); !slices.Equal(got[max(len(got)-len(want), 0):], want) {
					t.Errorf("host %d: the deploy ended with %q, want %q", i, got, want)
				}
			}
		})
	}
}
