package server

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// tree walks a local directory into manifest entries.
func tree(t testing.TB, dir string) []TreeEntry {
	t.Helper()
	var out []TreeEntry
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.Type()&fs.ModeSymlink != 0 {
			target, err := os.Readlink(p)
			out = append(out, TreeEntry{Path: rel, Link: target})
			return err
		}
		b, err := os.ReadFile(p)
		sum := sha256.Sum256(b)
		out = append(out, TreeEntry{Path: rel, SHA256: hex.EncodeToString(sum[:])})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// ship packs dir (only the given files, or all when nil) into id's
// incoming archive and uploads the manifest lists of full, the whole
// release tree.
func ship(t *testing.T, l Layout, id, dir string, only []string, full []TreeEntry) {
	t.Helper()
	args := []string{"-czf", l.IncomingPath(id), "-C", dir}
	if only == nil {
		args = append(args, ".")
	} else {
		args = append(args, only...)
	}
	if out, err := exec.Command("tar", args...).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, out)
	}
	sums, links, err := TreeLists(full)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, l.SumsPath(id), string(sums))
	writeFile(t, l.LinksPath(id), string(links))
}

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func TestTreeLists(t *testing.T) {
	h := strings.Repeat("a", 64)
	sums, links, err := TreeLists([]TreeEntry{{Path: "b/x", SHA256: h}, {Path: "a", SHA256: h}, {Path: "l", Link: "b/x"}})
	if err != nil {
		t.Fatal(err)
	}
	if string(sums) != h+"  a\n"+h+"  b/x\n" || string(links) != "l -> b/x\n" {
		t.Errorf("sums %q links %q", sums, links)
	}
	for _, bad := range []TreeEntry{{Path: "../x", SHA256: h}, {Path: "x", SHA256: "abc"}, {Path: "a -> b", SHA256: h}, {Path: "a\nb", SHA256: h}} {
		if _, _, err := TreeLists([]TreeEntry{bad}); err == nil {
			t.Errorf("accepted %+v", bad)
		}
	}
}

func TestStageReleaseValidation(t *testing.T) {
	l := Layout{Root: "/r"}
	for _, s := range []StageSpec{
		{ID: "x"},
		{ID: id1, PrevID: "../x"},
		{ID: id2, Reuse: []LinkPair{{"a", "a"}}},
		{ID: id2, PrevID: id1, Reuse: []LinkPair{{"../a", "a"}}},
	} {
		if _, err := StageRelease(l, s); err == nil {
			t.Errorf("accepted %+v", s)
		}
	}
	cmd, err := cmdOf(StageRelease(l, StageSpec{ID: id2, PrevID: id1, Reuse: []LinkPair{{"a", "a"}, {"old/b", "new/b"}}}))
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 100)
	n, _ := cmd.Stdin.Read(b)
	if got := string(b[:n]); got != "a\x00old/b\nnew/b\x00" {
		t.Errorf("stdin %q", got)
	}
	// The previous release is named only when there is something to reuse
	// from it: an empty PREV argument makes the script read no stdin.
	prev := " " + l.ReleaseDir(id1) + " "
	if !strings.Contains(cmd.Script, prev) {
		t.Errorf("previous release not passed:\n%s", cmd.Script)
	}
	if cmd := mustCmd(StageRelease(l, StageSpec{ID: id2, PrevID: id1})).Cmd; strings.Contains(cmd.Script, prev) {
		t.Errorf("previous release passed without files to reuse:\n%s", cmd.Script)
	}
}

// TestStageRelease stages two releases from real archives: the second
// ships one changed file and hard-links 2,000 unchanged ones.
func TestStageRelease(t *testing.T) {
	l := newRoot(t)
	src := t.TempDir()
	const files = 2000
	for i := 0; i < files; i++ {
		writeFile(t, filepath.Join(src, fmt.Sprintf("static/d%02d/f %04d.txt", i%50, i)), fmt.Sprint("content ", i))
	}
	writeFile(t, filepath.Join(src, "bin/server"), "v1")
	writeFile(t, filepath.Join(src, "moved/old.txt"), "moving")
	if err := os.Symlink("../bin/server", filepath.Join(src, "static/server-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(src, "bin/server"), 0o755); err != nil {
		t.Fatal(err)
	}
	ship(t, l, id1, src, nil, tree(t, src))
	cmd, err := cmdOf(StageRelease(l, StageSpec{ID: id1}))
	mustRun(t, cmd, err)
	if fi, err := os.Stat(filepath.Join(l.ReleaseDir(id1), "bin/server")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("mode not kept: %v %v", fi, err)
	}

	// Release 2: bin/server changes, moved/old.txt moves to moved/new.txt,
	// everything else is reused.
	writeFile(t, filepath.Join(src, "bin/server"), "v2")
	if err := os.Rename(filepath.Join(src, "moved/old.txt"), filepath.Join(src, "moved/new.txt")); err != nil {
		t.Fatal(err)
	}
	var reuse []LinkPair
	for _, e := range tree(t, src) {
		if strings.HasPrefix(e.Path, "static/d") {
			reuse = append(reuse, LinkPair{e.Path, e.Path})
		}
	}
	reuse = append(reuse, LinkPair{"moved/old.txt", "moved/new.txt"})
	ship(t, l, id2, src, []string{"./bin/server", "./static/server-link"}, tree(t, src))
	cmd, err = cmdOf(StageRelease(l, StageSpec{ID: id2, PrevID: id1, Reuse: reuse}))
	mustRun(t, cmd, err)
	for _, p := range []string{"static/d07/f 0007.txt", "static/d49/f 1999.txt"} {
		if inode(t, filepath.Join(l.ReleaseDir(id1), p)) != inode(t, filepath.Join(l.ReleaseDir(id2), p)) {
			t.Errorf("%s not hard-linked", p)
		}
	}
	if inode(t, filepath.Join(l.ReleaseDir(id1), "moved/old.txt")) != inode(t, filepath.Join(l.ReleaseDir(id2), "moved/new.txt")) {
		t.Error("moved file not hard-linked")
	}
	if b, _ := os.ReadFile(filepath.Join(l.ReleaseDir(id2), "bin/server")); string(b) != "v2" {
		t.Errorf("bin/server = %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(l.ReleaseDir(id1), "bin/server")); string(b) != "v1" {
		t.Errorf("previous release changed: %q", b)
	}
	if _, err := os.Stat(l.StagingDir(id2)); !os.IsNotExist(err) {
		t.Error("staging left behind")
	}
	// Staging the same id again is refused.
	if _, err := run(t, cmd); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("restage: %v", err)
	}
}

func TestStageReleaseRejects(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mangle func(t *testing.T, src string, entries []TreeEntry) []TreeEntry
		code   int
		report string
	}{
		{"tampered file", func(t *testing.T, src string, e []TreeEntry) []TreeEntry {
			writeFile(t, filepath.Join(src, "a.txt"), "evil")
			return e
		}, ExitTreeMismatch, "modified a.txt"},
		{"extra file", func(t *testing.T, src string, e []TreeEntry) []TreeEntry {
			writeFile(t, filepath.Join(src, "sub/extra.php"), "<?php")
			return e
		}, ExitTreeMismatch, "extra sub/extra.php"},
		{"missing file", func(t *testing.T, src string, e []TreeEntry) []TreeEntry {
			return append(e, TreeEntry{Path: "gone.txt", SHA256: strings.Repeat("0", 64)})
		}, ExitTreeMismatch, "missing gone.txt"},
		{"wrong link", func(t *testing.T, src string, e []TreeEntry) []TreeEntry {
			return append(e, TreeEntry{Path: "link", Link: "b.txt"})
		}, ExitTreeMismatch, "badlink link"},
		{"escaping symlink", func(t *testing.T, src string, e []TreeEntry) []TreeEntry {
			if err := os.Symlink("../../etc/passwd", filepath.Join(src, "sub/pw")); err != nil {
				t.Fatal(err)
			}
			return e
		}, ExitUnsafeArchive, ""},
		{"absolute symlink", func(t *testing.T, src string, e []TreeEntry) []TreeEntry {
			if err := os.Symlink("/etc/passwd", filepath.Join(src, "pw")); err != nil {
				t.Fatal(err)
			}
			return e
		}, ExitUnsafeArchive, ""},
		{"fifo", func(t *testing.T, src string, e []TreeEntry) []TreeEntry {
			if err := syscall.Mkfifo(filepath.Join(src, "fifo"), 0o644); err != nil {
				t.Fatal(err)
			}
			return e
		}, ExitUnsafeArchive, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newRoot(t)
			src := t.TempDir()
			writeFile(t, filepath.Join(src, "a.txt"), "a")
			writeFile(t, filepath.Join(src, "sub/b.txt"), "b")
			if err := os.Symlink("a.txt", filepath.Join(src, "link")); err != nil {
				t.Fatal(err)
			}
			entries := tree(t, src)
			// Something live that must stay untouched.
			mustRun(t, mustCmd(Switch(mustMkRelease(t, l, id1))), nil)
			entries = tc.mangle(t, src, entries)
			var clean []TreeEntry
			for _, e := range entries {
				if e.Path != "link" || e.Link == "b.txt" || tc.name != "wrong link" {
					clean = append(clean, e)
				}
			}
			ship(t, l, id2, src, nil, clean)
			cmd, err := cmdOf(StageRelease(l, StageSpec{ID: id2}))
			if err != nil {
				t.Fatal(err)
			}
			res, err := run(t, cmd)
			if ExitCode(err) != tc.code {
				t.Fatalf("exit %v, want %d\nstdout: %s", err, tc.code, res.Stdout)
			}
			if tc.report != "" && !strings.Contains(string(res.Stdout), tc.report+"\n") {
				t.Errorf("report %q lacks %q", res.Stdout, tc.report)
			}
			if tc.code == ExitUnsafeArchive && !strings.Contains(string(res.Stderr), "unsafe archive entry") {
				t.Errorf("stderr %q", res.Stderr)
			}
			for _, p := range []string{l.StagingDir(id2), l.ReleaseDir(id2)} {
				if _, err := os.Stat(p); !os.IsNotExist(err) {
					t.Errorf("%s exists after a failed stage", p)
				}
			}
			if cur, _ := os.Readlink(l.CurrentLink()); cur != "releases/"+id1 {
				t.Errorf("current = %q", cur)
			}
		})
	}
}

func TestParseTreeReport(t *testing.T) {
	r := ParseTreeReport([]byte("modified a\nmissing b\nextra c d\nextra e\nextra f\nextra g\nbadlink h\nnoise\n"))
	if r.Empty() || len(r.Extra) != 4 || r.Extra[0] != "c d" {
		t.Fatalf("%+v", r)
	}
	want := "1 modified (a); 1 missing (b); 4 extra (c d, e, f, and 1 more); 1 wrong link (h)"
	if r.String() != want {
		t.Errorf("got  %s\nwant %s", r.String(), want)
	}
	if !ParseTreeReport(nil).Empty() {
		t.Error("empty report not empty")
	}
}
