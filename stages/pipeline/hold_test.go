package pipeline

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/run/runtest"
	"github.com/stagecoach/stagecoach/stages/server"
)

// assertUnchanged fails unless the deploy left every host as it found
// it: old live, its services untouched, its history as long as before.
func assertUnchanged(t *testing.T, e *runtest.Env, old string, deploys []int) {
	t.Helper()
	assertLive(t, e, old)
	for i := range e.Names {
		assertServices(t, e, i, untouched, old, "")
		if n := len(e.State(t, i).Deploys); n != deploys[i] {
			t.Errorf("host %d history has %d deploys, want %d", i, n, deploys[i])
		}
	}
}

// historyLengths is how many deploys each host recorded so far.
func historyLengths(t *testing.T, e *runtest.Env) []int {
	t.Helper()
	var n []int
	for i := range e.Names {
		n = append(n, len(e.State(t, i).Deploys))
	}
	return n
}

func TestDeployAgainstAHeldLock(t *testing.T) {
	t.Parallel()
	f := fixtures(t, shape{hosts: 2})[shape{hosts: 2}]
	for _, c := range []struct {
		name      string
		heartbeat time.Duration // how long ago the holder renewed its lease
		breakLock bool
		code      int
		says      []string
	}{
		{name: "a live holder keeps it", heartbeat: 0, code: exitcode.Locked, says: []string{"locked by alice@laptop (pid 4242)"}},
		{name: "a stale lock is broken only on request", heartbeat: time.Hour, code: exitcode.Locked, says: []string{"stale lock", "STAGECOACH_BREAK_LOCK=1"}},
		{name: "a stale lock is broken and recorded", heartbeat: time.Hour, breakLock: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			e, old := f.restore(t), f.old
			before := historyLengths(t, e)
			e.TakeLock(t, 1, "alice@laptop", c.heartbeat, c.heartbeat)
			r, err := deploy(context.Background(), t, e, run.Options{BreakLock: c.breakLock})
			assertCode(t, e, err, c.code, c.says...)
			if c.code != exitcode.OK {
				assertUnchanged(t, e, old, before)
				if runtest.Exists(t, lockPath(e, 0)) {
					t.Error("host 0 is still locked by the refused deploy")
				}
				token, _ := os.ReadFile(filepath.Join(lockPath(e, 1), "token"))
				if strings.TrimSpace(string(token)) != "token-of-alice@laptop" {
					t.Errorf("the holder's lock on host 1 now holds %q", token)
				}
				if rep := readReport(t, r); rep.ExitCode != c.code || rep.Result != server.ResultFailed {
					t.Errorf("report: exit %d, result %s", rep.ExitCode, rep.Result)
				}
				return
			}
			assertLive(t, e, r.Plan.Release)
			assertUnlocked(t, e)
			for i := range e.Names {
				broke := lastDeploy(t, e, i).BrokeLock
				if want := i == 1; want != strings.Contains(broke, "alice@laptop (pid 4242)") {
					t.Errorf("host %d recorded broken lock %q", i, broke)
				}
			}
		})
	}
}

func TestDeployToAnUnreachableHostChangesNothing(t *testing.T) {
	t.Parallel()
	e, old := deployed(t, runtest.Options{Hosts: 2}, false)
	before := historyLengths(t, e)
	e.Dialer.Fail(e.Names[1], errors.New("dial tcp 10.0.0.3:22: connect: connection refused"))
	r, err := deploy(context.Background(), t, e, run.Options{})
	assertCode(t, e, err, exitcode.Unreachable, "connection refused")
	assertUnchanged(t, e, old, before)
	assertUnlocked(t, e)
	if rep := readReport(t, r); rep.ExitCode != exitcode.Unreachable {
		t.Errorf("report: exit %d", rep.ExitCode)
	}
}

func TestDeployWithACorruptStateChangesNothing(t *testing.T) {
	t.Parallel()
	e, old := deployed(t, runtest.Options{Hosts: 2}, false)
	if err := os.WriteFile(filepath.Join(e.Roots[1], ".stagecoach", "state.json"), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The report cannot be written either: a warning, not another failure.
	_, err := deploy(context.Background(), t, e, run.Options{ReportPath: filepath.Join(e.Config, "report.json")})
	assertCode(t, e, err, exitcode.Failed, "corrupt")
	if !strings.Contains(e.Log.String(), "write report") {
		t.Errorf("the log does not warn that the report went unwritten:\n%s", e.Log)
	}
	assertLive(t, e, old)
	assertUnlocked(t, e)
	assertServices(t, e, 0, untouched, old, "")
}

// The connection to a host drops as the deploy records its outcome there:
// the deploy reconnects, so the host's history still tells what happened.
func TestDeployRecordsOverANewConnection(t *testing.T) {
	t.Parallel()
	f := fixtures(t, shape{hosts: 2})[shape{hosts: 2}]
	for _, c := range []struct {
		name      string
		reconnect bool
	}{
		{"reconnecting works", true},
		{"reconnecting fails", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			e, old := f.restore(t), f.old
			name := e.Names[1]
			dials := e.Dialer.Dials(name)
			rule := e.Fake(1).On("state.json").Nth(1)
			if !c.reconnect {
				rule.Then(func() { e.Dialer.Fail(name, errors.New("no route to host")) })
			}
			rule.LoseConnection()
			r, err := deploy(context.Background(), t, e, run.Options{})
			// The release is live and healthy whatever the history says.
			if err != nil {
				t.Fatalf("deploy: %v\n%s", err, e.Log)
			}
			id := r.Plan.Release
			assertLive(t, e, id)
			got := lastDeploy(t, e, 1)
			if c.reconnect {
				if got.ID != id || got.Result != server.ResultSuccess {
					t.Errorf("host 2 recorded %s %s, want %s success", got.ID, got.Result, id)
				}
				if n := e.Dialer.Dials(name) - dials; n != 2 {
					t.Errorf("host 2 dialled %d times, want 2 (connect, reconnect)", n)
				}
				assertUnlocked(t, e)
				return
			}
			if got.ID != old {
				t.Errorf("host 2 recorded %s although its connection was gone", got.ID)
			}
			if !strings.Contains(e.Log.String(), "reconnecting failed") {
				t.Errorf("the log does not warn that the outcome went unrecorded:\n%s", e.Log)
			}
			if runtest.Exists(t, lockPath(e, 0)) {
				t.Error("host 1 is still locked")
			}
		})
	}
}

// Targets chained in one Mage invocation share the run: the locks are
// taken once and given back when the outermost holder is done.
func TestNestedHoldsKeepTheLocksUntilTheOutermostReleases(t *testing.T) {
	t.Parallel()
	e, _ := deployed(t, runtest.Options{Hosts: 2}, false)
	ctx := context.Background()
	r := open(t, e, run.Options{})
	release, err := r.Hold(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Deploy(ctx); err != nil {
		t.Fatalf("deploy: %v\n%s", err, e.Log)
	}
	for i := range e.Names {
		if !runtest.Exists(t, lockPath(e, i)) {
			t.Errorf("host %d was unlocked by the inner deploy", i)
		}
	}
	release()
	assertUnlocked(t, e)
	assertLive(t, e, r.Plan.Release)
}
