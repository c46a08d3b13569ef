package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDiscardRelease(t *testing.T) {
	l := newRoot(t)
	for _, id := range []string{id1, id2} {
		writeFile(t, filepath.Join(l.ReleaseDir(id), "f"), "f")
		writeFile(t, filepath.Join(l.StagingDir(id), "f"), "f")
		writeFile(t, l.IncomingPath(id), "archive")
		for _, p := range []string{l.ManifestPath(id), l.SumsPath(id), l.LinksPath(id)} {
			writeFile(t, p, "")
		}
	}
	mustRun(t, mustCmd(Switch(l, id1)), nil)
	mustRun(t, mustCmd(DiscardRelease(l, id2)), nil)
	for _, p := range []string{l.ReleaseDir(id2), l.StagingDir(id2), l.IncomingPath(id2), l.ManifestPath(id2), l.SumsPath(id2), l.LinksPath(id2)} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s left: %v", p, err)
		}
	}
	// The live release stays, and so does everything of it.
	if _, err := run(t, mustCmd(DiscardRelease(l, id1))); ExitCode(err) != 1 || !strings.Contains(err.Error(), "is live: not discarded") {
		t.Errorf("discard live release: %v", err)
	}
	for _, p := range []string{l.ReleaseDir(id1), l.IncomingPath(id1), l.SumsPath(id1)} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("live release lost %s: %v", p, err)
		}
	}
	if _, err := DiscardRelease(l, "../x"); err == nil {
		t.Error("bad id accepted")
	}
}
