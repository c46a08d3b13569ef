package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/pipeline"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/testenv"
)

// TestRollbackTarget rolls back to the previous release, then forward to
// a named one, the way `mage rollback` does, and logs how long current
// took to move and how long the whole rollback (restart and health) took.
func TestRollbackTarget(t *testing.T) {
	t.Parallel()
	host := testenv.StartSSHD(t)
	p := testenv.NewProject(t, testenv.ProjectOptions{Hosts: []*testenv.Host{host}})
	mustDeploy(t, p)
	id1 := verifyLive(t, p.Root)
	changeFrontend(t, p, "second release")
	mustDeploy(t, p)
	id2 := verifyLive(t, p.Root)
	guest := reserve(t, p.Port, "Rollback Guest")

	rollback(t, p, pipeline.Options{}, id1)
	if v := healthVersion(t, p.Port); v != id1 {
		t.Errorf("the backend serves %s after the rollback, want %s", v, id1)
	}
	s := state(t, p.Root)
	if s.Current != id1 {
		t.Errorf("state says %s is live", s.Current)
	}
	if prev, ok := s.Previous(); !ok || prev.ID != id2 {
		t.Errorf("previous release is %+v, want %s", prev, id2)
	}
	if d := lastDeploy(t, p.Root); d.Result != server.ResultRollback || d.ID != id1 {
		t.Errorf("deploy history: %+v, want a rollback to %s", d, id1)
	}

	rollback(t, p, pipeline.Options{Release: id2}, id2)
	if v := healthVersion(t, p.Port); v != id2 {
		t.Errorf("the backend serves %s after rolling forward, want %s", v, id2)
	}
	if d := lastDeploy(t, p.Root); d.Result != server.ResultRollback || d.ID != id2 {
		t.Errorf("deploy history: %+v, want a rollback to %s", d, id2)
	}
	mustHaveReservations(t, p, p.Root, guest)
	mustNotExist(t, lockDir(p.Root))

	// Back on the first release, the checked-out commit (the second
	// release's) differs from what is live: deploying it must ship the
	// second release's frontend again, not call it unchanged.
	rollback(t, p, pipeline.Options{}, id1)
	again := mustDeploy(t, p)
	id3 := verifyLive(t, p.Root)
	if id3 == id1 || id3 != again.run.Plan.Release {
		t.Fatalf("current is %s after deploying the second release's commit again\n%s", id3, again.log)
	}
	if js := liveScript(t, p.Root); !strings.Contains(js, "second release") {
		t.Error("the live frontend is not the second release's")
	}
	mustHaveReservations(t, p, p.Root, guest)
}

// liveScript returns the live frontend's script, found through its build.json.
func liveScript(t *testing.T, root string) string {
	t.Helper()
	var b struct{ Assets map[string]string }
	if err := json.Unmarshal([]byte(readFile(t, filepath.Join(root, "current", "frontend", "build.json"))), &b); err != nil {
		t.Fatal(err)
	}
	return readFile(t, filepath.Join(root, "current", "frontend", b.Assets["index.js"]))
}

// rollback runs Hold + Rollback under opts, as the rollback target does,
// checks current lands on want, verified, and logs the timings.
func rollback(t *testing.T, p *testenv.Project, opts pipeline.Options, want string) {
	t.Helper()
	r, out := openRun(t, p, opts)
	r.Command = "rollback"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	release, err := r.Hold(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Watch current from the moment the rollback starts, to time the
	// switch apart from the restart and health check after it.
	moved := make(chan time.Time, 1)
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go func() {
		link := filepath.Join(p.Root, "current")
		for watchCtx.Err() == nil {
			if target, _ := os.Readlink(link); target == "releases/"+want {
				moved <- time.Now()
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	start := time.Now()
	err = r.Rollback(ctx)
	total := time.Since(start)
	release()
	if err != nil {
		t.Fatalf("rollback: %v\n%s", err, out.String())
	}
	select {
	case at := <-moved:
		t.Logf("rollback to %s: current moved after %s; done with restart and health check after %s",
			want, at.Sub(start).Round(time.Millisecond), total.Round(time.Millisecond))
	case <-time.After(time.Second):
		t.Errorf("current never pointed at %s", want)
	}
	if got := verifyLive(t, p.Root); got != want {
		t.Errorf("current is %s, want %s", got, want)
	}
}
