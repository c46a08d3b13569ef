package swap_test

import (
	"archive/tar"
	"compress/gzip"
	"os"
	"strings"
	"testing"

	"github.com/stagecoach/stagecoach/stages/run/runtest"
	"github.com/stagecoach/stagecoach/stages/server"
)

// change commits new content for the project's files.
func change(t *testing.T, e *runtest.Env, files map[string]string) {
	t.Helper()
	for rel, content := range files {
		e.Write(t, rel, content)
	}
	e.Commit(t, "change")
}

// checkNothingOf fails if host i holds anything of release id: its tree,
// staging directory, upload or metadata.
func checkNothingOf(t *testing.T, e *runtest.Env, i int, id string) {
	t.Helper()
	l := server.Layout{Root: e.Roots[i]}
	for _, path := range []string{l.ReleaseDir(id), l.StagingDir(id), l.IncomingPath(id), l.ManifestPath(id), l.SumsPath(id), l.LinksPath(id)} {
		if runtest.Exists(t, path) {
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
