package pipeline

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/run/runtest"
)

// TestDeployRemovesLeftoverUploads: what deploys killed while shipping
// left in incoming/ (an archive, a partial upload, a metadata directory),
// minutes old, is gone after the next deploy's cleanup, and so is that
// deploy's own archive once its release is staged: incoming/ does not
// grow from deploy to deploy.
func TestDeployRemovesLeftoverUploads(t *testing.T) {
	t.Parallel()
	e, _ := deployed(t, runtest.Options{Hosts: 2}, false)
	leftovers := []string{"20200101T000000Z-aaaaaaa.tar.gz", "20200101T000001Z-bbbbbbb.tar.gz.partial-0123abcd", "metadata.Xy12Zw"}
	for _, root := range e.Roots {
		in := filepath.Join(root, ".stagecoach", "incoming")
		for _, name := range leftovers {
			if err := os.MkdirAll(in, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(in, name), []byte("left over"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	r := open(t, e, run.Options{})
	if err := r.Deploy(t.Context()); err != nil {
		t.Fatalf("deploy: %v\n%s", err, e.Log)
	}
	for i, root := range e.Roots {
		left, err := os.ReadDir(filepath.Join(root, ".stagecoach", "incoming"))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range left {
			t.Errorf("host %d keeps incoming/%s", i, l.Name())
		}
	}
	rep := readReport(t, r)
	for _, h := range rep.Hosts {
		if h.Cleanup == nil || h.Cleanup.RemovedIncoming < len(leftovers) {
			t.Errorf("report of %s: cleanup %+v, want at least %d uploads removed", h.Name, h.Cleanup, len(leftovers))
		}
	}
}
