package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/pipeline"
	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/testenv"
)

// servicesLog is what the host's services were told, one line each.
func servicesLog(t *testing.T, root string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "shared", "services.log"))
	if err != nil {
		t.Fatalf("read services log: %v", err)
	}
	return strings.Split(strings.TrimSpace(string(data)), "\n")
}

// corruptingRunner keeps the host from staging the release, as a disk
// gone read-only or an intruder would: just before the round trip that
// verifies the upload and stages it, something else takes the release's
// place under releases/. The upload itself verifies.
type corruptingRunner struct {
	remote.Runner
	layout server.Layout
}

func (c *corruptingRunner) Run(ctx context.Context, cmd remote.Command) (remote.Result, error) {
	// The release id is the deploy's own, from the name of the batch that
	// stages it (the ship's last).
	if _, rest, ok := strings.Cut(cmd.Desc, "stage release "); ok {
		id := strings.SplitN(rest, ",", 2)[0]
		if _, err := c.Runner.Run(ctx, remote.Cmd("block staging", "mkdir", "-p", c.layout.ReleaseDir(id))); err != nil {
			return remote.Result{}, err
		}
	}
	return c.Runner.Run(ctx, cmd)
}

// TestNoHostActivatesUntilAllPrepared deploys to three sshd hosts, the
// third of which cannot stage the second release: no host may switch
// current or touch its services, and the staged release is gone from the
// hosts that had staged it.
func TestNoHostActivatesUntilAllPrepared(t *testing.T) {
	t.Parallel()
	hosts := []*testenv.Host{
		testenv.StartSSHD(t, testenv.WithAddr("127.0.0.4")),
		testenv.StartSSHD(t, testenv.WithAddr("127.0.0.5")),
		testenv.StartSSHD(t, testenv.WithAddr("127.0.0.6")),
	}
	opts := testenv.ProjectOptions{Hosts: hosts, Root: filepath.Join(t.TempDir(), "{host}", "srv")}
	p := testenv.NewProject(t, opts)
	first := mustDeploy(t, p).run.Plan.Release
	before := make([][]string, len(hosts))
	for i, h := range hosts {
		before[i] = servicesLog(t, p.HostRoot(h.Addr))
	}

	changeFrontend(t, p, "a change the third host cannot stage")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	r, out := openRun(t, p, pipeline.Options{})
	// Detect connects without locking; the deploy then runs on the same
	// connections, the third wrapped to corrupt its upload.
	if err := r.Detect(ctx); err != nil {
		t.Fatal(err)
	}
	third := r.Hosts[2]
	third.Runner = &corruptingRunner{Runner: third.Runner, layout: third.Layout}
	err := r.Deploy(ctx)
	if err == nil || exitcode.Of(err) != exitcode.Failed {
		t.Fatalf("deploy: %v (exit %d), want a failure before any switch (exit 1)\n%s", err, exitcode.Of(err), out)
	}
	second := r.Plan.Release
	for i, h := range hosts {
		root := p.HostRoot(h.Addr)
		if got := verifyLive(t, root); got != first {
			t.Errorf("%s runs %s, want %s still", h.Addr, got, first)
		}
		if got := servicesLog(t, root); strings.Join(got, "\n") != strings.Join(before[i], "\n") {
			t.Errorf("%s: services were touched: %q, before %q", h.Addr, got, before[i])
		}
		if v := versionAt(t, h.Addr, p.Port); v != first {
			t.Errorf("the backend on %s serves %s, want %s", h.Addr, v, first)
		}
		l := server.Layout{Root: root}
		mustNotExist(t, l.ReleaseDir(second))
		mustNotExist(t, l.StagingDir(second))
		mustNotExist(t, l.IncomingPath(second))
		if _, err := os.Stat(l.LockDir()); !os.IsNotExist(err) {
			t.Errorf("%s: lock left behind (%v)", h.Addr, err)
		}
		// Each host records its own outcome: the third failed, the
		// others were kept from going live by it.
		want := server.ResultAborted
		if i == 2 {
			want = server.ResultFailed
		}
		if d := lastDeploy(t, root); d.Result != want || d.Stage != "swap" {
			t.Errorf("%s recorded %s at %s, want %s at swap", h.Addr, d.Result, d.Stage, want)
		}
	}
	if !strings.Contains(err.Error(), hosts[2].Target()) {
		t.Errorf("the error does not name the host that failed: %v", err)
	}
}
