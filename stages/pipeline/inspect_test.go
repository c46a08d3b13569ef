package pipeline

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/run/runtest"
)

// row is the line of a table in out whose first cell is first.
func row(t *testing.T, out, first string) string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, first+" ") {
			return line
		}
	}
	t.Fatalf("no row %q in:\n%s", first, out)
	return ""
}

// assertFields fails unless line holds every field of want as a cell.
func assertFields(t *testing.T, line string, want ...string) {
	t.Helper()
	cells := strings.Join(strings.Fields(line), " ")
	for _, w := range want {
		if !strings.Contains(" "+cells+" ", " "+w+" ") {
			t.Errorf("row %q lacks %q", line, w)
		}
	}
}

func TestShowPlanTellsWhatADeployWouldDo(t *testing.T) {
	t.Parallel()
	e, old := deployed(t, runtest.Options{Hosts: 2}, true)
	r := open(t, e, run.Options{})
	var out strings.Builder
	if err := r.ShowPlan(context.Background(), &out); err != nil {
		t.Fatalf("plan: %v\n%s", err, e.Log)
	}
	for i, name := range e.Names {
		line := row(t, out.String(), name)
		assertFields(t, line, old, r.Plan.Release, "sh app/migrate.sh")
		// The page and the migration are new; the app's other two
		// files are reused from the live release.
		if !strings.Contains(line, "(2 files, 2 reused)") {
			t.Errorf("host %d: the plan does not send just the changed files: %q", i, line)
		}
	}
	// It changed nothing and took no lock.
	assertLive(t, e, old)
	assertUnlocked(t, e)
	assertAbsent(t, e, r.Plan.Release)
	for i := range e.Names {
		assertServices(t, e, i, untouched, old, "")
	}
}

func TestShowPlanWithoutChange(t *testing.T) {
	t.Parallel()
	e := runtest.New(t, runtest.Options{})
	mustDeploy(t, e)
	var out strings.Builder
	if err := open(t, e, run.Options{}).ShowPlan(context.Background(), &out); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "nothing changed since ") {
		t.Errorf("plan without change: %q", out.String())
	}
}

func TestShowPlanFailures(t *testing.T) {
	t.Parallel()
	e := runtest.New(t, runtest.Options{})
	e.Write(t, "site/draft.html", "uncommitted")
	var out strings.Builder
	if err := open(t, e, run.Options{}).ShowPlan(context.Background(), &out); err == nil || !strings.Contains(err.Error(), "uncommitted") {
		t.Errorf("plan of a dirty work tree: %v", err)
	}
	// Allowed to be dirty, the build of a component whose sources are
	// gone fails.
	removeSite(t, e)
	if err := open(t, e, run.Options{AllowDirty: true}).ShowPlan(context.Background(), &out); err == nil || !strings.Contains(err.Error(), "build web") {
		t.Errorf("plan with a failing build: %v", err)
	}
	// Named by hand, the previous revision has no manifest to reuse
	// the unchanged app from: the package fails.
	e.Write(t, "site/index.html", "<h1>v1</h1>\n")
	mustDeploy(t, e)
	e.Write(t, "site/index.html", "<h1>v2</h1>\n")
	e.Commit(t, "v2")
	prev := e.State(t, 0).Revision
	if err := open(t, e, run.Options{Previous: prev}).ShowPlan(context.Background(), &out); err == nil || !strings.Contains(err.Error(), "no previous release to reuse") {
		t.Errorf("plan with a failing package: %v", err)
	}
	e.Dialer.Fail(e.Names[0], errors.New("connection refused"))
	if err := open(t, e, run.Options{}).ShowPlan(context.Background(), &out); exitcode.Of(err) != exitcode.Unreachable {
		t.Errorf("plan of an unreachable host: %v", err)
	}
	if out.Len() > 0 {
		t.Errorf("failed plans printed %q", out.String())
	}
}

func TestShowReleasesListsReleasesAndDeploys(t *testing.T) {
	t.Parallel()
	e, old := deployed(t, runtest.Options{Hosts: 2}, false)
	e.TakeLock(t, 0, "alice@laptop", time.Hour, time.Hour)
	e.Fake(1).On("stage release").Exit(1, "tar: short read")
	if _, err := deploy(context.Background(), t, e, run.Options{BreakLock: true}); exitcode.Of(err) != exitcode.Failed {
		t.Fatalf("deploy: %v", err)
	}
	var out strings.Builder
	if err := open(t, e, run.Options{}).ShowReleases(context.Background(), &out, 1); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for i, name := range e.Names {
		if !strings.Contains(text, name+" ("+e.Roots[i]+")") {
			t.Errorf("no heading for %s", name)
		}
	}
	assertFields(t, row(t, text, old), old, "live")
	// web1 did nothing wrong: its own outcome is not web2's failure.
	if !strings.Contains(text, "aborted at swap (deploy failed), broke lock of alice@laptop (pid 4242)") {
		t.Errorf("web1's deploy is not shown as aborted after breaking a lock:\n%s", text)
	}
	if !strings.Contains(text, "  failed at swap  ") {
		t.Errorf("web2's deploy is not shown as failed:\n%s", text)
	}
	// One deploy per host asked: the first deploy's success is not shown.
	if strings.Contains(text, " success ") {
		t.Errorf("more deploys shown than asked for:\n%s", text)
	}

	e.Dialer.Fail(e.Names[1], errors.New("connection refused"))
	if err := open(t, e, run.Options{}).ShowReleases(context.Background(), &out, 1); exitcode.Of(err) != exitcode.Unreachable {
		t.Errorf("releases of an unreachable host: %v", err)
	}
}

// TestShowReleasesShowsWhichHostRunsWhat: a deploy that reached two of
// three hosts; mage releases says so before the hosts' histories.
func TestShowReleasesShowsWhichHostRunsWhat(t *testing.T) {
	t.Parallel()
	e, old := deployed(t, runtest.Options{Hosts: 3}, false)
	r, err := deploy(context.Background(), t, e, run.Options{Hosts: "web1,web2"})
	if err != nil {
		t.Fatal(err)
	}
	id := r.Plan.Release
	var out strings.Builder
	if err := open(t, e, run.Options{}).ShowReleases(context.Background(), &out, 1); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	head, _, _ := strings.Cut(text, e.Names[0]+" (")
	for i, live := range []string{id, id, old} {
		f := strings.Fields(row(t, head, e.Names[i]))
		if len(f) < 5 || f[1] != live || f[3] != "success" {
			t.Errorf("row of %s = %q, want it live on %s after a success", e.Names[i], f, live)
		}
	}
	if want := "hosts run different releases: deploy@web3 runs " + old + ", the others " + id; !strings.Contains(head, want) {
		t.Errorf("no %q in:\n%s", want, head)
	}
}
