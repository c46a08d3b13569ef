package run

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/ui"
)

// TestOpenPassesTheLockWait: the fleet of a run waits for held locks as
// long as its options say.
func TestOpenPassesTheLockWait(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stagecoach.yml")
	config := "app: shop\ncomponents:\n  web:\n    watch: [\"web/**\"]\n    build: make\n    output: web/dist\nenvironments:\n  prod:\n    hosts: [local]\n    root: srv\n"
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, wait := range []time.Duration{0, 2 * time.Minute} {
		rc, err := Open(Options{ConfigPath: path, LockWait: wait}, ui.Discard())
		if err != nil {
			t.Fatal(err)
		}
		if rc.Fleet.LockWait != wait || rc.Opts.LockWait != wait {
			t.Errorf("LockWait %v: the fleet waits %v", wait, rc.Fleet.LockWait)
		}
	}
}
