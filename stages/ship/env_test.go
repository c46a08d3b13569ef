package ship_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stagecoach/stagecoach/stages/pipeline"
	"github.com/stagecoach/stagecoach/stages/run/runtest"
	"github.com/stagecoach/stagecoach/stages/server"
)

// shippedCalls is what a host that took a release was asked for (see
// runtest.Env.CallsSince).
var shippedCalls = []string{"prepare server", "upload", "verify archive checksum", "write release metadata"}

// checkShipped fails unless host i of e holds the release of r exactly as
// packaged: the archive in incoming/ and the manifest and tree lists in
// .stagecoach/manifests, with nothing left over.
func checkShipped(t *testing.T, e *runtest.Env, r *pipeline.Run, i int) {
	t.Helper()
	h, p := r.Hosts[i], r.Packaged
	id := p.Manifest.Release
	if !h.Shipped || h.BytesSent <= p.Manifest.Archive.Size {
		t.Errorf("host %d: Shipped %v, %d bytes sent for an archive of %d", i, h.Shipped, h.BytesSent, p.Manifest.Archive.Size)
	}
	want, err := os.ReadFile(p.ArchivePath)
	if err != nil {
		t.Fatal(err)
	}
	l := server.Layout{Root: e.Roots[i]}
	if got := runtest.ReadFile(t, l.IncomingPath(id)); got != string(want) {
		t.Errorf("host %d: incoming archive has %d bytes, want the %d packaged", i, len(got), len(want))
	}
	var entries []server.TreeEntry
	for _, f := range p.Manifest.Files {
		entries = append(entries, server.TreeEntry{Path: f.Path, SHA256: f.SHA256, Link: f.Link})
	}
	sums, links, err := server.TreeLists(entries)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{l.SumsPath(id): string(sums), l.LinksPath(id): string(links)} {
		if got := runtest.ReadFile(t, path); got != want {
			t.Errorf("host %d: %s is %q, want %q", i, filepath.Base(path), got, want)
		}
	}
	if got := runtest.ReadFile(t, l.ManifestPath(id)); !strings.Contains(got, `"sha256": "`+p.Manifest.Archive.SHA256+`"`) {
		t.Errorf("host %d: manifest does not carry the archive's sha256:\n%s", i, got)
	}
	// The archive, and in the unpack directory the mark of its checksum.
	if left := dirNames(t, l.IncomingDir()); !slices.Equal(left, []string{id + ".archive", id + ".unpacked"}) {
		t.Errorf("host %d: incoming/ holds %v, want the archive and its unpack directory", i, left)
	}
	if mark := runtest.ReadFile(t, l.VerifiedMark(id)); !strings.HasPrefix(mark, p.Manifest.Archive.SHA256+" ") {
		t.Errorf("host %d: the archive's mark is %q, want its sha256 first", i, mark)
	}
}

// checkNotShipped fails if host i got any metadata of the release, and
// unless its incoming archive is there exactly when upload is true.
func checkNotShipped(t *testing.T, e *runtest.Env, r *pipeline.Run, i int, upload bool) {
	t.Helper()
	id, l := r.Packaged.Manifest.Release, server.Layout{Root: e.Roots[i]}
	if r.Hosts[i].Shipped {
		t.Errorf("host %d marked shipped", i)
	}
	if _, err := os.Stat(l.IncomingPath(id)); (err == nil) != upload {
		t.Errorf("host %d: incoming archive present %v, want %v", i, err == nil, upload)
	}
	for _, path := range []string{l.ManifestPath(id), l.SumsPath(id), l.LinksPath(id)} {
		if _, err := os.Stat(path); err == nil {
			t.Errorf("host %d: %s written", i, filepath.Base(path))
		}
	}
}

// dirNames lists dir, nothing when it does not exist.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
