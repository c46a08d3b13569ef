package pipeline

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/run/runtest"
	"github.com/stagecoach/stagecoach/stages/server"
)

// lastCalls is the last n commands host i was asked for, by description
// up to their arguments (see runtest.Env.CallsSince).
func lastCalls(e *runtest.Env, i, n int) []string {
	calls := e.CallsSince(i, 0)
	return calls[max(len(calls)-n, 0):]
}

// A successful deploy ends with its cleanup, the state's record of it and
// the lock's release in one batch, in that order; the state written there
// already forgets the releases the cleanup removed.
func TestConcludeCleansRecordsAndUnlocksInOneBatch(t *testing.T) {
	t.Parallel()
	e := runtest.New(t, runtest.Options{Environment: "    keep_releases: 2\n"})
	first := mustDeploy(t, e)
	e.Write(t, "site/index.html", "<h1>v2</h1>\n")
	e.Commit(t, "v2")
	second := mustDeploy(t, e)
	e.Write(t, "site/index.html", "<h1>v3</h1>\n")
	e.Commit(t, "v3")
	third := mustDeploy(t, e)

	want := []string{"clean up old releases", "write", "release deploy lock"}
	if got := lastCalls(e, 0, 3); !slices.Equal(got, want) {
		t.Errorf("the deploy ended with %q, want %q", got, want)
	}
	assertUnlocked(t, e)
	s := e.State(t, 0)
	var ids []string
	for _, r := range s.Releases {
		ids = append(ids, r.ID)
	}
	if !slices.Equal(ids, []string{second, third}) {
		t.Errorf("state lists releases %v, want %v (%s removed)", ids, []string{second, third}, first)
	}
	if runtest.Exists(t, filepath.Join(e.Roots[0], "releases", first)) {
		t.Errorf("release %s was not removed", first)
	}
	if d := lastDeploy(t, e, 0); d.Result != server.ResultSuccess || d.ID != third {
		t.Errorf("last deploy recorded %+v, want a success of %s", d, third)
	}
}

// A cleanup that removes other releases than the state predicted (one the
// state never knew) keeps the lock and the state's write from running in
// its batch: the state is then written for what it did, and the lock
// released after.
func TestConcludeAfterUnexpectedCleanup(t *testing.T) {
	t.Parallel()
	e := runtest.New(t, runtest.Options{Environment: "    keep_releases: 2\n"})
	first := mustDeploy(t, e)
	stray := "20000101T000000Z-abcdef0"
	if err := os.MkdirAll(filepath.Join(e.Roots[0], "releases", stray), 0o755); err != nil {
		t.Fatal(err)
	}
	e.Write(t, "site/index.html", "<h1>v2</h1>\n")
	e.Commit(t, "v2")
	r, err := deploy(context.Background(), t, e, run.Options{})
	if err != nil {
		t.Fatalf("deploy: %v\n%s", err, e.Log)
	}
	second := r.Plan.Release
	want := []string{"clean up old releases", "write", "release deploy lock"}
	if got := lastCalls(e, 0, 3); !slices.Equal(got, want) {
		t.Errorf("the deploy ended with %q, want %q", got, want)
	}
	assertUnlocked(t, e)
	if runtest.Exists(t, filepath.Join(e.Roots[0], "releases", stray)) {
		t.Errorf("stray release %s was not removed", stray)
	}
	s := e.State(t, 0)
	if len(s.Releases) != 2 || s.Releases[0].ID != first || s.Releases[1].ID != second || s.Current != second {
		t.Errorf("state: %+v, want releases %s and %s, %s live", s, first, second, second)
	}
	rep := readReport(t, r)
	hr := rep.Hosts[0]
	if hr.Cleanup == nil || !slices.Equal(hr.Cleanup.Removed, []string{stray}) {
		t.Errorf("report's cleanup: %+v, want %s removed", hr.Cleanup, stray)
	}
	for _, st := range rep.Stages {
		if st.Name == "cleanup" && st.Result != "ok" {
			t.Errorf("cleanup stage %s: %s", st.Result, st.Error)
		}
	}
}

// No change ends with the record and the lock's release in one batch.
func TestConcludeNoChange(t *testing.T) {
	t.Parallel()
	e := runtest.New(t, runtest.Options{})
	mustDeploy(t, e)
	mark := e.Marks()
	if _, err := deploy(context.Background(), t, e, run.Options{}); err != nil {
		t.Fatalf("deploy: %v\n%s", err, e.Log)
	}
	e.CheckCalls(t, 0, mark[0], "take deploy lock", "look for files not made by stagecoach", "prepare server",
		"write", "release deploy lock")
	assertUnlocked(t, e)
	if d := lastDeploy(t, e, 0); d.Result != server.ResultNoChange {
		t.Errorf("recorded %s, want no change", d.Result)
	}
}

// The report's critical path accounts for the whole deploy: its stretches
// add up to the wall time, in order, the package and the ship among them,
// and the summary of -v tells it.
func TestReportCriticalPath(t *testing.T) {
	t.Parallel()
	e := runtest.New(t, runtest.Options{})
	r, err := deploy(context.Background(), t, e, run.Options{})
	if err != nil {
		t.Fatalf("deploy: %v\n%s", err, e.Log)
	}
	rep := readReport(t, r)
	var sum time.Duration
	var stages []string
	prev := time.Duration(-1)
	for _, p := range rep.CriticalPath {
		sum += p.OnPath
		if p.Start < prev {
			t.Errorf("stretch %+v starts before the one before it", p)
		}
		prev = p.Start
		stages = append(stages, p.Stage)
	}
	if sum != rep.Duration {
		t.Errorf("critical path adds up to %s, the deploy took %s: %+v", sum, rep.Duration, rep.CriticalPath)
	}
	for _, want := range []string{"build", "ship", "swap"} {
		if !slices.Contains(stages, want) {
			t.Errorf("critical path %v lacks %s", stages, want)
		}
	}
	if !strings.Contains(e.Log.String(), "critical path of") {
		t.Errorf("the verbose log does not tell the critical path:\n%s", e.Log)
	}
}
