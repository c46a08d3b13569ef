package ship_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stagecoach/stagecoach/stages/pipeline"
	"github.com/stagecoach/stagecoach/stages/remote/remotetest"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/run/runtest"
	"github.com/stagecoach/stagecoach/stages/server"
)

// packaged returns a run of e that has read the hosts' state, built and
// packaged the release, ready to ship. It takes no deploy lock, so the
// calls on the fakes are only the test's and the state reads.
func packaged(t *testing.T, e *runtest.Env) *pipeline.Run {
	t.Helper()
	r := pipeline.New(e.Open(t, run.Options{}))
	t.Cleanup(r.Close)
	ctx := context.Background()
	for _, step := range []func(context.Context) error{r.Detect, r.Build, r.Package} {
		if err := step(ctx); err != nil {
			t.Fatalf("%v\n%s", err, e.Log)
		}
	}
	return r
}

// deployed runs a whole deploy of e's committed project and returns the
// release that went live.
func deployed(t *testing.T, e *runtest.Env) string {
	t.Helper()
	r := pipeline.New(e.Open(t, run.Options{}))
	if err := r.Deploy(context.Background()); err != nil {
		t.Fatalf("deploy: %v\n%s", err, e.Log)
	}
	return r.Plan.Release
}

// shipCalls is what a host was asked for after its first mark calls,
// without Detect's state reads, an upload's path cut off.
func shipCalls(f *remotetest.Fake, mark int) []string {
	var out []string
	for _, d := range f.Descs()[mark:] {
		if d != "read deploy state" {
			out = append(out, strings.SplitN(d, " /", 2)[0])
		}
	}
	return out
}

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
	if got := readFile(t, l.IncomingPath(id)); got != string(want) {
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
		if got := readFile(t, path); got != want {
			t.Errorf("host %d: %s is %q, want %q", i, filepath.Base(path), got, want)
		}
	}
	if got := readFile(t, l.ManifestPath(id)); !strings.Contains(got, `"sha256": "`+p.Manifest.Archive.SHA256+`"`) {
		t.Errorf("host %d: manifest does not carry the archive's sha256:\n%s", i, got)
	}
	if left := dirNames(t, l.IncomingDir()); !slices.Equal(left, []string{id + ".tar.gz"}) {
		t.Errorf("host %d: incoming/ holds %v, want only the archive", i, left)
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

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
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
