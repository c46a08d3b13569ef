package server

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func TestSwitchAndReadCurrent(t *testing.T) {
	l := newRoot(t)
	res := mustRun(t, ReadCurrent(l).Cmd, nil)
	if id, err := ParseCurrent(res.Stdout); err != nil || id != "" {
		t.Errorf("no current: %q %v", id, err)
	}
	if _, err := run(t, mustCmd(Switch(l, id1))); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("switch to a missing release: %v", err)
	}
	mustMkRelease(t, l, id1)
	mustMkRelease(t, l, id2)
	mustRun(t, mustCmd(Switch(l, id1)), nil)
	mustRun(t, mustCmd(Switch(l, id2)), nil)
	res = mustRun(t, ReadCurrent(l).Cmd, nil)
	if id, err := ParseCurrent(res.Stdout); err != nil || id != id2 {
		t.Errorf("current %q %v", id, err)
	}
	if _, err := Switch(l, "../../etc"); err == nil {
		t.Error("bad id accepted")
	}
	for _, bad := range []string{"/etc\n", "releases/x\n", "../releases/" + id1} {
		if _, err := ParseCurrent([]byte(bad)); err == nil {
			t.Errorf("ParseCurrent(%q) accepted", bad)
		}
	}
}

// TestSwitchIsAtomic switches 200 times while readers resolve current in a
// loop: current must never be missing or dangling.
func TestSwitchIsAtomic(t *testing.T) {
	l := newRoot(t)
	for _, id := range []string{id1, id2} {
		writeFile(t, filepath.Join(l.ReleaseDir(id), "index.html"), id)
	}
	mustRun(t, mustCmd(Switch(l, id1)), nil)
	var stop atomic.Bool
	var misses, reads atomic.Int64
	var wg sync.WaitGroup
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				reads.Add(1)
				if _, err := os.ReadFile(filepath.Join(l.CurrentLink(), "index.html")); err != nil {
					misses.Add(1)
				}
			}
		}()
	}
	ids := []string{id2, id1}
	for i := 0; i < 200; i++ {
		mustRun(t, mustCmd(Switch(l, ids[i%2])), nil)
	}
	stop.Store(true)
	wg.Wait()
	if misses.Load() > 0 {
		t.Errorf("current did not resolve %d times of %d", misses.Load(), reads.Load())
	}
	if reads.Load() == 0 {
		t.Error("readers never ran")
	}
}

// TestReadActivation: what an activation whose answer never came left is
// read back from the host: where current points, and whether the backup
// before the migration is complete (backup_files.sh marks it last).
func TestReadActivation(t *testing.T) {
	l := newRoot(t)
	read := func() Activation {
		t.Helper()
		op, err := ReadActivation(l, id2)
		res := mustRun(t, op.Cmd, err)
		a, err := ParseActivation(res.Stdout)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	if a := read(); a != (Activation{}) {
		t.Errorf("nothing yet: %+v", a)
	}
	mustMkRelease(t, l, id1)
	mustMkRelease(t, l, id2)
	mustRun(t, mustCmd(Switch(l, id2)), nil)
	writeFile(t, filepath.Join(l.Root, "shared", "db"), "data")
	if a := read(); a != (Activation{Current: id2}) {
		t.Errorf("switched, no backup: %+v", a)
	}
	mustRun(t, mustCmd(BackupFiles(l, id2, []string{"shared/db"})), nil)
	if a := read(); a != (Activation{Current: id2, BackedUp: true}) {
		t.Errorf("switched, backed up: %+v", a)
	}
	// A backup cut short leaves no mark.
	if err := os.Remove(filepath.Join(l.BackupDir(id2), ".complete")); err != nil {
		t.Fatal(err)
	}
	if a := read(); a.BackedUp {
		t.Errorf("incomplete backup read as complete: %+v", a)
	}
	if _, err := ReadActivation(l, "../x"); err == nil {
		t.Error("bad id accepted")
	}
	for _, bad := range []string{"", "nonsense\n", "current /etc\n"} {
		if _, err := ParseActivation([]byte(bad)); err == nil {
			t.Errorf("ParseActivation(%q) accepted", bad)
		}
	}
}
