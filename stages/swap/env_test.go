package swap_test

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/stagecoach/stagecoach/stages/pipeline"
	"github.com/stagecoach/stagecoach/stages/remote/remotetest"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/run/runtest"
	"github.com/stagecoach/stagecoach/stages/server"
)

// shipped returns a run of e that has read the hosts' state and built,
// packaged and shipped the release, ready to stage. It takes no deploy
// lock, so the calls on the fakes are only the test's and the state reads.
func shipped(t *testing.T, e *runtest.Env) *pipeline.Run {
	t.Helper()
	r := pipeline.New(e.Open(t, run.Options{}))
	t.Cleanup(r.Close)
	ctx := context.Background()
	for _, step := range []func(context.Context) error{r.Detect, r.Build, r.Package, r.Ship} {
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

// change commits new content for the project's files.
func change(t *testing.T, e *runtest.Env, files map[string]string) {
	t.Helper()
	for rel, content := range files {
		e.Write(t, rel, content)
	}
	e.Commit(t, "change")
}

// marks notes how many calls every host has had, for callsSince.
func marks(e *runtest.Env) []int {
	m := make([]int, len(e.Names))
	for i := range m {
		m[i] = len(e.Fake(i).Calls())
	}
	return m
}

// callsSince is what a host was asked for after its first mark calls,
// without the state reads, each command by its Desc up to a colon (a
// service command's own text follows it).
func callsSince(f *remotetest.Fake, mark int) []string {
	var out []string
	for _, d := range f.Descs()[mark:] {
		if d != "read deploy state" {
			out = append(out, strings.SplitN(d, ":", 2)[0])
		}
	}
	return out
}

func checkCalls(t *testing.T, e *runtest.Env, i, mark int, want ...string) {
	t.Helper()
	if got := callsSince(e.Fake(i), mark); !slices.Equal(got, want) {
		t.Errorf("host %d was asked for %q, want %q", i, got, want)
	}
}

// exists reports whether path exists on a host, symlinks included.
func exists(t *testing.T, path string) bool {
	t.Helper()
	_, err := os.Lstat(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return err == nil
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// checkNothingOf fails if host i holds anything of release id: its tree,
// staging directory, upload or metadata.
func checkNothingOf(t *testing.T, e *runtest.Env, i int, id string) {
	t.Helper()
	l := server.Layout{Root: e.Roots[i]}
	for _, path := range []string{l.ReleaseDir(id), l.StagingDir(id), l.IncomingPath(id), l.ManifestPath(id), l.SumsPath(id), l.LinksPath(id)} {
		if exists(t, path) {
			t.Errorf("host %d still has %s", i, strings.TrimPrefix(path, l.Root))
		}
	}
}

// entry is one member of a hand-made archive: a file, or a symlink when
// link is set.
type entry struct{ name, body, link string }

// writeArchive replaces path by a tar.gz of entries, as an upload that was
// swapped after its checksum was verified.
func writeArchive(t *testing.T, path string, entries ...entry) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	tw := tar.NewWriter(zw)
	for _, en := range entries {
		h := &tar.Header{Name: en.name, Mode: 0o644, Size: int64(len(en.body)), Typeflag: tar.TypeReg}
		if en.link != "" {
			h = &tar.Header{Name: en.name, Mode: 0o777, Linkname: en.link, Typeflag: tar.TypeSymlink}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(en.body)); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []interface{ Close() error }{tw, zw, f} {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// sameFile reports whether two paths are hard links of one file.
func sameFile(t *testing.T, a, b string) bool {
	t.Helper()
	ia, err := os.Stat(a)
	if err != nil {
		t.Fatal(err)
	}
	ib, err := os.Stat(b)
	if err != nil {
		t.Fatal(err)
	}
	return os.SameFile(ia, ib)
}
