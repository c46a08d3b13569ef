package server

import (
	"archive/tar"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// archiveEntry is one member of an archive made by writeArchive: a regular
// file with body, or a symlink to link.
type archiveEntry struct{ name, body, link string }

// writeArchive writes a gzipped tar of entries, as they are: unlike tar(1),
// archive/tar keeps names with ".." or a leading "/".
func writeArchive(t *testing.T, path string, entries ...archiveEntry) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: tar.TypeReg}
		if e.link != "" {
			h = &tar.Header{Name: e.name, Mode: 0o777, Linkname: e.link, Typeflag: tar.TypeSymlink}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []interface{ Close() error }{tw, zw, f} {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestStageReleaseRefusesEscapingEntries: every entry that would land
// outside the release fails the stage with ExitUnsafeArchive and a message
// naming it — also those GNU tar refuses by itself ("Member name contains
// '..'", exit status 2) — and nothing is written outside.
func TestStageReleaseRefusesEscapingEntries(t *testing.T) {
	for _, tc := range []struct {
		name  string
		entry []archiveEntry
		named string // in the message on stderr
	}{
		{"dot-dot first", []archiveEntry{{name: "../escape", body: "x"}}, "unsafe archive entry ../escape:"},
		{"dot-dot inside", []archiveEntry{{name: "a/../../escape", body: "x"}}, "unsafe archive entry a/../../escape:"},
		{"dot-dot dir", []archiveEntry{{name: "web/../../../escape", body: "x"}}, "unsafe archive entry web/../../../escape:"},
		{"absolute", []archiveEntry{{name: "/escape", body: "x"}}, "unsafe archive entry /escape:"},
		{"symlink leaving the release", []archiveEntry{{name: "web/passwd", link: "../../../../../etc/passwd"}}, "unsafe archive entry web/passwd:"},
		{"write through a symlink", []archiveEntry{{name: "up", link: "../.."}, {name: "up/escape", body: "x"}}, "unsafe archive entry up:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newRoot(t)
			entries := append([]archiveEntry{{name: "a.txt", body: "a"}}, tc.entry...)
			entries = append(entries, archiveEntry{name: "z.txt", body: "z"})
			writeArchive(t, l.IncomingPath(id1), entries...)
			sums, links, err := TreeLists(nil)
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, l.SumsPath(id1), string(sums))
			writeFile(t, l.LinksPath(id1), string(links))
			res, err := run(t, mustCmd(StageRelease(l, StageSpec{ID: id1})).Cmd)
			if ExitCode(err) != ExitUnsafeArchive {
				t.Fatalf("exit %v, want %d\nstderr: %s", err, ExitUnsafeArchive, res.Stderr)
			}
			if !strings.Contains(string(res.Stderr), tc.named) {
				t.Errorf("stderr does not name the entry (%q):\n%s", tc.named, res.Stderr)
			}
			for _, p := range []string{l.StagingDir(id1), l.ReleaseDir(id1),
				filepath.Join(l.ReleasesDir(), "escape"), filepath.Join(l.Root, "escape"), filepath.Join(filepath.Dir(l.Root), "escape")} {
				if _, err := os.Lstat(p); !os.IsNotExist(err) {
					t.Errorf("%s exists after a refused archive", p)
				}
			}
		})
	}
}

// TestStageReleaseRemovesItsArchive: once staged, a release's uploaded
// archive goes (staging verified every file); other uploads stay, and a
// failed stage leaves its archive to the discard.
func TestStageReleaseRemovesItsArchive(t *testing.T) {
	l := newRoot(t)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "a.txt"), "a")
	ship(t, l, id1, src, nil, tree(t, src))
	writeFile(t, l.IncomingPath(id2), "another upload")
	mustRun(t, mustCmd(StageRelease(l, StageSpec{ID: id1})).Cmd, nil)
	if _, err := os.Stat(filepath.Join(l.ReleaseDir(id1), "a.txt")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(l.IncomingPath(id1)); !os.IsNotExist(err) {
		t.Errorf("the staged release's archive is still there: %v", err)
	}
	if _, err := os.Stat(l.IncomingPath(id2)); err != nil {
		t.Errorf("another release's upload went: %v", err)
	}

	// A stage that fails keeps the archive.
	writeFile(t, filepath.Join(src, "a.txt"), "tampered")
	full := tree(t, src)
	writeFile(t, filepath.Join(src, "a.txt"), "a")
	ship(t, l, id3, src, nil, full)
	if _, err := run(t, mustCmd(StageRelease(l, StageSpec{ID: id3})).Cmd); ExitCode(err) != ExitTreeMismatch {
		t.Fatalf("exit %v, want %d", err, ExitTreeMismatch)
	}
	if _, err := os.Stat(l.IncomingPath(id3)); err != nil {
		t.Errorf("a failed stage removed its archive: %v", err)
	}
}
