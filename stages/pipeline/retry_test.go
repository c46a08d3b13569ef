package pipeline

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/run/runtest"
	"github.com/stagecoach/stagecoach/stages/server"
)

// TestRetryFailedHosts: staging fails on web2, so no host goes live on the
// new release. STAGECOACH_HOSTS=failed then deploys that same release id,
// from its kept package, to every host, building nothing; a second retry
// finds nothing to do.
func TestRetryFailedHosts(t *testing.T) {
	t.Parallel()
	e, old := deployed(t, runtest.Options{Hosts: 3}, true)
	e.Fake(1).On("stage release").Nth(1).Exit(1, "tar: short read")
	r, err := deploy(context.Background(), t, e, run.Options{})
	if exitcode.Of(err) != exitcode.Failed {
		t.Fatalf("first attempt: %v", err)
	}
	id := r.Plan.Release
	assertLive(t, e, old)

	// The work tree moves on: a retry deploys what was packaged, not HEAD.
	e.Write(t, "site/index.html", "<h1>v3</h1>\n")
	e.Commit(t, "v3")
	e = e.Fresh()
	r, err = deploy(context.Background(), t, e, run.Options{Hosts: run.FailedHosts})
	if err != nil {
		t.Fatalf("retry: %v\n%s", err, e.Log)
	}
	if r.Plan.Release != id {
		t.Errorf("retry deployed %s, want the same release %s", r.Plan.Release, id)
	}
	assertLive(t, e, id)
	assertIntact(t, e, id)
	assertUnlocked(t, e)
	for i := range e.Names {
		if d := lastDeploy(t, e, i); d.ID != id || d.Result != server.ResultSuccess {
			t.Errorf("host %d recorded %s %s, want %s success", i, d.ID, d.Result, id)
		}
	}
	if strings.Contains(e.Log.String(), "build web") || !strings.Contains(e.Log.String(), "retrying "+id+" on deploy@web1, deploy@web2, deploy@web3") {
		t.Errorf("log:\n%s", e.Log)
	}
	if got := runtest.ReadFile(t, filepath.Join(e.Roots[0], "current", "web", "index.html")); got != "<h1>v2</h1>\n" {
		t.Errorf("web1 serves %q, want v2's page", got)
	}

	e = e.Fresh()
	r, err = deploy(context.Background(), t, e, run.Options{Hosts: run.FailedHosts})
	if err != nil || r.Report.Result != server.ResultNoChange || !strings.Contains(e.Log.String(), "nothing to retry") {
		t.Errorf("second retry: %v, %s\n%s", err, r.Report.Result, e.Log)
	}
}

// TestRetryOnlyTheHostsBehind: a deploy reached web1 and web2; the retry
// ships to web3 alone, and touches the others only to lock them and read
// their state.
func TestRetryOnlyTheHostsBehind(t *testing.T) {
	t.Parallel()
	e, old := deployed(t, runtest.Options{Hosts: 3}, false)
	r, err := deploy(context.Background(), t, e, run.Options{Hosts: "web1,web2"})
	if err != nil {
		t.Fatal(err)
	}
	id := r.Plan.Release
	if e.Live(t, 2) != old {
		t.Fatalf("web3 runs %s", e.Live(t, 2))
	}
	marks := e.Marks()
	if _, err := deploy(context.Background(), t, e, run.Options{Hosts: run.FailedHosts}); err != nil {
		t.Fatalf("retry: %v\n%s", err, e.Log)
	}
	assertLive(t, e, id)
	for i := range 2 {
		for _, c := range e.CallsSince(i, marks[i]) {
			if strings.Contains(c, ".archive") || strings.Contains(c, "stage release") || strings.Contains(c, "switch current") {
				t.Errorf("host %d, which ran %s already, got %q", i, id, c)
			}
		}
	}
	assertUnlocked(t, e)
}

func TestRetryWithoutThePackage(t *testing.T) {
	t.Parallel()
	e, _ := deployed(t, runtest.Options{Hosts: 2}, false)
	r, err := deploy(context.Background(), t, e, run.Options{Hosts: "web1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(e.Dir, run.PackagesDir, r.Plan.Release)); err != nil {
		t.Fatal(err)
	}
	_, err = deploy(context.Background(), t, e, run.Options{Hosts: run.FailedHosts})
	if exitcode.Of(err) != exitcode.Failed || !strings.Contains(err.Error(), "the package of "+r.Plan.Release+" is gone") {
		t.Errorf("retry without its package: %v", err)
	}
	assertUnlocked(t, e)
}

// TestRetryAfterARollback: a restart fails on web2 after the switch, and
// every host goes back; each keeps the failed release's directory, which
// the retry stages anew.
func TestRetryAfterARollback(t *testing.T) {
	t.Parallel()
	e, old := deployed(t, runtest.Options{Hosts: 2}, true)
	e.Fake(1).On("restart").Nth(1).Exit(1, "unit failed")
	r, err := deploy(context.Background(), t, e, run.Options{})
	if exitcode.Of(err) != exitcode.RolledBack {
		t.Fatalf("first attempt: %v", err)
	}
	id := r.Plan.Release
	assertLive(t, e, old)
	e = e.Fresh()
	if _, err := deploy(context.Background(), t, e, run.Options{Hosts: run.FailedHosts}); err != nil {
		t.Fatalf("retry: %v\n%s", err, e.Log)
	}
	assertLive(t, e, id)
	assertIntact(t, e, id)
	for i := range e.Names {
		if got := database(t, e, i); !strings.HasSuffix(got, id+"\n") || strings.Count(got, id) != 1 {
			t.Errorf("host %d database %q: want %s migrated once, after its rollback", i, got, id)
		}
	}
}
