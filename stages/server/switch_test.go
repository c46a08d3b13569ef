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
