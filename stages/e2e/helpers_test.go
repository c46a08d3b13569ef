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
	"github.com/stagecoach/stagecoach/stages/ui"
)

// deployResult is one deploy's outcome and its log.
type deployResult struct {
	run *pipeline.Run
	err error
	log string
}

// deploy runs the whole pipeline on p's test environment, as `mage deploy`
// would, and returns the run with its log.
func deploy(t *testing.T, ctx context.Context, p *testenv.Project, opts pipeline.Options) deployResult {
	t.Helper()
	r, out := openRun(t, p, opts)
	err := r.Deploy(ctx)
	return deployResult{run: r, err: err, log: out.String()}
}

// openRun opens a run on p's test environment with a verbose log that the
// test can read.
func openRun(t testing.TB, p *testenv.Project, opts pipeline.Options) (*pipeline.Run, *testenv.SyncBuffer) {
	t.Helper()
	out := &testenv.SyncBuffer{}
	opts.ConfigPath, opts.Environment = p.Config, "test"
	r, err := pipeline.Open(opts, ui.New(out, true))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return r, out
}

// mustDeploy deploys and fails the test on error.
func mustDeploy(t *testing.T, p *testenv.Project) deployResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res := deploy(t, ctx, p, pipeline.Options{})
	if res.err != nil {
		t.Fatalf("deploy: %v\n%s", res.err, res.log)
	}
	return res
}

// state reads the deploy state on the host's root.
func state(t *testing.T, root string) *server.State {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, ".stagecoach", "state.json"))
	if err != nil {
		t.Fatalf("read state: %v", err)
	}
	s, err := server.ParseState("state.json", data)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// live returns the release current points at under root.
func live(t *testing.T, root string) string {
	t.Helper()
	target, err := os.Readlink(filepath.Join(root, "current"))
	if err != nil {
		t.Fatalf("read current: %v", err)
	}
	return strings.TrimPrefix(target, "releases/")
}

// report reads the JSON report of the run.
func report(t testing.TB, p *testenv.Project, release string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(p.Dir, pipeline.ReportsDir, release+".json"))
	if err != nil {
		t.Fatalf("read report: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
