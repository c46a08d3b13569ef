package pipeline

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/checkout"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/run/runtest"
)

// lockDelay makes taking the lock slow enough to tell what ran meanwhile.
const lockDelay = 300 * time.Millisecond

// stageStart is when stage began in r's report, from the run's start.
func stageStart(t *testing.T, r *Run, stage string) time.Duration {
	t.Helper()
	for _, s := range readReport(t, r).Stages {
		if s.Name == stage {
			return s.Start
		}
	}
	t.Fatalf("no %s stage in the report", stage)
	return 0
}

// TestDeployAhead: a deploy from the checkout that made the live release
// detects, builds and scans the build's files while it takes the locks,
// and its lines are in the log once, in order.
func TestDeployAhead(t *testing.T) {
	t.Parallel()
	e, old := deployed(t, runtest.Options{Hosts: 2}, false)
	e.Fake(1).On("take deploy lock").Delay(lockDelay)
	r, err := deploy(context.Background(), t, e, run.Options{})
	if err != nil {
		t.Fatalf("deploy: %v\n%s", err, e.Log)
	}
	if r.Plan.Previous == "" || r.Previous == nil || r.Previous.Release != old {
		t.Fatalf("plan diffs against %q with manifest %v, want the live release %s", r.Plan.Previous, r.Previous, old)
	}
	for _, stage := range []string{"detect", "build", "package"} {
		if at := stageStart(t, r, stage); at >= lockDelay {
			t.Errorf("%s began %s into the deploy, after the lock (%s): it did not run ahead", stage, at, lockDelay)
		}
	}
	assertLive(t, e, r.Plan.Release)
	log := e.Log.String()
	if n := strings.Count(log, "build web: done"); n != 2 { // the first deploy's and this one's
		t.Errorf("log has %d builds of web, want 2:\n%s", n, log)
	}
}

// TestDeployAheadWrongGuess: when the hosts run another revision than the
// one this checkout recorded, what ran ahead is dropped, lines included,
// and the deploy plans against the hosts' revision.
func TestDeployAheadWrongGuess(t *testing.T) {
	t.Parallel()
	e, _ := deployed(t, runtest.Options{Hosts: 1}, false)
	live := e.State(t, 0).Revision
	e.Write(t, "site/index.html", "<h1>v3</h1>\n")
	e.Commit(t, "v3")
	// Recorded as deployed, though no host runs it.
	v2 := strings.TrimSpace(gitOut(t, e, "rev-parse", "HEAD~1"))
	if err := checkout.RecordDeployed(e.Dir, "test", checkout.Deployed{Revision: v2, Release: "20200101T000000Z-" + v2[:7]}); err != nil {
		t.Fatal(err)
	}
	r, err := deploy(context.Background(), t, e, run.Options{})
	if err != nil {
		t.Fatalf("deploy: %v\n%s", err, e.Log)
	}
	if r.Plan.Previous != live {
		t.Errorf("plan diffs against %s, want the hosts' %s", r.Plan.Previous, live)
	}
	if got, want := checkout.LastDeployed(e.Dir, "test"), (checkout.Deployed{Revision: r.Plan.Revision, Release: r.Plan.Release}); got != want {
		t.Errorf("recorded %+v, want the deployed %+v", got, want)
	}
	if n := strings.Count(e.Log.String(), "build web: done"); n != 2 {
		t.Errorf("log has %d builds of web, want 2 (the dropped one is not logged):\n%s", n, e.Log)
	}
}

// TestDeployAheadRebased: the guess is wrong, but the plan against the
// hosts' revision builds the same components: the build made ahead is
// kept (one build), the plan diffs against the hosts' revision, and the
// release keeps the id it was built under.
func TestDeployAheadRebased(t *testing.T) {
	t.Parallel()
	e, old := deployed(t, runtest.Options{Hosts: 1}, false)
	live := e.State(t, 0).Revision
	// v2, which changed the web component, recorded as deployed though no
	// host runs it; v3 changes it again. The record names the live
	// release, so that the id made ahead sorts after it even within the
	// second the first deploy made its own.
	v2 := strings.TrimSpace(gitOut(t, e, "rev-parse", "HEAD"))
	if err := checkout.RecordDeployed(e.Dir, "test", checkout.Deployed{Revision: v2, Release: old}); err != nil {
		t.Fatal(err)
	}
	e.Write(t, "site/index.html", "<h1>v3</h1>\n")
	e.Commit(t, "v3")
	r, err := deploy(context.Background(), t, e, run.Options{})
	if err != nil {
		t.Fatalf("deploy: %v\n%s", err, e.Log)
	}
	if r.Plan.Previous != live {
		t.Errorf("plan diffs against %s, want the hosts' %s", r.Plan.Previous, live)
	}
	// The first deploy's lines, then this one's: one plan, one build.
	if n := strings.Count(e.Log.String(), "build web: done"); n != 2 {
		t.Errorf("log has %d builds of web, want 2:\n%s", n, e.Log)
	}
	if n := strings.Count(e.Log.String(), "COMPONENT"); n != 2 {
		t.Errorf("log has %d plan tables, want 2:\n%s", n, e.Log)
	}
	// Built ahead: the build began before the detect that planned it.
	stages := map[string]run.StageReport{}
	for _, st := range r.Report.Stages {
		stages[st.Name] = st
	}
	if b, d := stages["build"], stages["detect"]; b.Start >= d.Start {
		t.Errorf("build began at %v, detect at %v: the build ahead was not kept", b.Start, d.Start)
	}
	assertLive(t, e, r.Plan.Release)
	assertIntact(t, e, r.Plan.Release)
}

// TestDeployWaitsForBuildLock: a deploy whose checkout another deploy is
// building waits for it rather than build into the same directories.
func TestDeployWaitsForBuildLock(t *testing.T) {
	t.Parallel()
	e, _ := deployed(t, runtest.Options{Hosts: 1}, false)
	held, err := checkout.TryLock(e.Dir)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	var r *Run
	go func() {
		var err error
		r, err = deploy(context.Background(), t, e, run.Options{})
		done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(e.Log.String(), "waiting for another deploy of this checkout") {
		select {
		case err := <-done:
			t.Fatalf("deploy ended (%v) without waiting for the build lock\n%s", err, e.Log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("deploy did not wait for the build lock\n%s", e.Log)
		}
		time.Sleep(10 * time.Millisecond)
	}
	held.Unlock()
	if err := <-done; err != nil {
		t.Fatalf("deploy: %v\n%s", err, e.Log)
	}
	assertLive(t, e, r.Plan.Release)
	if _, err := os.Stat(filepath.Join(e.Dir, ".stagecoach", "build.lock")); err != nil {
		t.Error(err)
	}
	again, err := checkout.TryLock(e.Dir)
	if err != nil {
		t.Fatalf("the deploy kept the build lock: %v", err)
	}
	again.Unlock()
}

// gitOut runs git in e's work tree and returns its output.
func gitOut(t *testing.T, e *runtest.Env, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = e.Dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git %s: %v", strings.Join(args, " "), err)
	}
	return string(out)
}
