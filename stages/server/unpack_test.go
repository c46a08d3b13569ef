package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/remote"
)

// unpackWhileUploading feeds release id's uploaded archive to the script
// an upload runs it through, as the transport does while it arrives.
func unpackWhileUploading(t *testing.T, l Layout, id string) {
	t.Helper()
	script, err := UnpackWhileUploading(l, id)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(l.IncomingPath(id))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mustRun(t, remote.Command{Desc: "unpack while uploading", Script: script, Stdin: f}, nil)
}

// TestStageReleaseTakesTheStreamedUnpack: an archive unpacked as it was
// uploaded is not extracted again (the archive could be anything by now:
// its SHA-256 was checked when shipped), the previous release's files are
// linked in after it, and what the unpack left goes.
func TestStageReleaseTakesTheStreamedUnpack(t *testing.T) {
	l := newRoot(t)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "kept/a.txt"), "a")
	writeFile(t, filepath.Join(src, "index.html"), "v1")
	ship(t, l, id1, src, nil, tree(t, src))
	unpackWhileUploading(t, l, id1)
	if b, err := os.ReadFile(filepath.Join(l.UnpackedDir(id1), "rc")); err != nil || strings.TrimSpace(string(b)) != "0" {
		t.Fatalf("unpack outcome %q, %v", b, err)
	}
	writeFile(t, l.IncomingPath(id1), "no longer an archive")
	mustRun(t, mustCmd(StageRelease(l, StageSpec{ID: id1})).Cmd, nil)
	if b, err := os.ReadFile(filepath.Join(l.ReleaseDir(id1), "index.html")); err != nil || string(b) != "v1" {
		t.Fatalf("index.html = %q, %v", b, err)
	}

	writeFile(t, filepath.Join(src, "index.html"), "v2")
	ship(t, l, id2, src, []string{"./index.html"}, tree(t, src))
	unpackWhileUploading(t, l, id2)
	mustRun(t, mustCmd(StageRelease(l, StageSpec{ID: id2, PrevID: id1, Reuse: []LinkPair{{"kept/a.txt", "kept/a.txt"}}})).Cmd, nil)
	if inode(t, filepath.Join(l.ReleaseDir(id1), "kept/a.txt")) != inode(t, filepath.Join(l.ReleaseDir(id2), "kept/a.txt")) {
		t.Error("kept/a.txt not hard-linked")
	}
	if b, _ := os.ReadFile(filepath.Join(l.ReleaseDir(id2), "index.html")); string(b) != "v2" {
		t.Errorf("index.html = %q", b)
	}
	for _, p := range []string{l.UnpackedDir(id1), l.UnpackedDir(id2), l.StagingDir(id2), l.IncomingPath(id2)} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s left behind", p)
		}
	}
}

// TestStageReleaseChecksTheStreamedUnpack: a streamed unpack that holds a
// file the manifest does not, or an escaping entry, fails the stage as an
// extraction would; an unpack that failed is redone from the archive.
func TestStageReleaseChecksTheStreamedUnpack(t *testing.T) {
	t.Run("escaping symlink", func(t *testing.T) {
		l := newRoot(t)
		writeArchive(t, l.IncomingPath(id1), archiveEntry{name: "a.txt", body: "a"}, archiveEntry{name: "web/passwd", link: "../../../../../etc/passwd"})
		writeLists(t, l, id1, nil)
		unpackWhileUploading(t, l, id1)
		res, err := run(t, mustCmd(StageRelease(l, StageSpec{ID: id1})).Cmd)
		if ExitCode(err) != ExitUnsafeArchive || !strings.Contains(string(res.Stderr), "unsafe archive entry web/passwd:") {
			t.Fatalf("exit %v, want %d naming web/passwd\nstderr: %s", err, ExitUnsafeArchive, res.Stderr)
		}
		if _, err := os.Lstat(l.StagingDir(id1)); !os.IsNotExist(err) {
			t.Error("staging left behind")
		}
	})
	t.Run("file not in the manifest", func(t *testing.T) {
		l := newRoot(t)
		writeArchive(t, l.IncomingPath(id1), archiveEntry{name: "a.txt", body: "a"}, archiveEntry{name: "extra.txt", body: "x"})
		writeLists(t, l, id1, []TreeEntry{{Path: "a.txt", SHA256: "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"}})
		unpackWhileUploading(t, l, id1)
		if _, err := run(t, mustCmd(StageRelease(l, StageSpec{ID: id1})).Cmd); ExitCode(err) != ExitTreeMismatch {
			t.Fatalf("exit %v, want %d", err, ExitTreeMismatch)
		}
	})
	t.Run("dot-dot refused by tar", func(t *testing.T) {
		l := newRoot(t)
		writeArchive(t, l.IncomingPath(id1), archiveEntry{name: "a.txt", body: "a"}, archiveEntry{name: "../escape", body: "x"})
		writeLists(t, l, id1, nil)
		unpackWhileUploading(t, l, id1)
		if b, _ := os.ReadFile(filepath.Join(l.UnpackedDir(id1), "rc")); strings.TrimSpace(string(b)) == "0" {
			t.Fatal("tar unpacked a member with .. without failing")
		}
		res, err := run(t, mustCmd(StageRelease(l, StageSpec{ID: id1})).Cmd)
		if ExitCode(err) != ExitUnsafeArchive || !strings.Contains(string(res.Stderr), "unsafe archive entry ../escape:") {
			t.Fatalf("exit %v, want %d naming ../escape\nstderr: %s", err, ExitUnsafeArchive, res.Stderr)
		}
	})
}

func writeLists(t *testing.T, l Layout, id string, entries []TreeEntry) {
	t.Helper()
	sums, links, err := TreeLists(entries)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, l.SumsPath(id), string(sums))
	writeFile(t, l.LinksPath(id), string(links))
}

// TestStageReleaseTrustsUnwrittenReusedFiles: a file hard-linked from the
// previous release is hashed again only when it was written since that
// release was verified; one rewritten in place in the live release fails
// the stage. The mtime is what tells: a rewrite that put the old mtime back
// passes the stage, and the full check of the live release finds it.
func TestStageReleaseTrustsUnwrittenReusedFiles(t *testing.T) {
	l := newRoot(t)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "kept.txt"), "kept")
	writeFile(t, filepath.Join(src, "edited.txt"), "original")
	writeFile(t, filepath.Join(src, "index.html"), "v1")
	ship(t, l, id1, src, nil, tree(t, src))
	mustRun(t, mustCmd(StageRelease(l, StageSpec{ID: id1})).Cmd, nil)

	stage := func(id string) error {
		writeFile(t, filepath.Join(src, "index.html"), "page of "+id)
		ship(t, l, id, src, []string{"./index.html"}, tree(t, src))
		_, err := run(t, mustCmd(StageRelease(l, StageSpec{ID: id, PrevID: id1, Reuse: []LinkPair{{"kept.txt", "kept.txt"}, {"edited.txt", "edited.txt"}}})).Cmd)
		return err
	}
	// Rewritten in place after id1 was verified: its mtime is newer.
	edited := filepath.Join(l.ReleaseDir(id1), "edited.txt")
	old, err := os.Stat(edited)
	if err != nil {
		t.Fatal(err)
	}
	later := old.ModTime().Add(2 * time.Second)
	if err := os.WriteFile(edited, []byte("tampered"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(edited, later, later); err != nil {
		t.Fatal(err)
	}
	if err := stage(id2); ExitCode(err) != ExitTreeMismatch {
		t.Fatalf("a reused file rewritten since: exit %v, want %d", err, ExitTreeMismatch)
	}

	// The same rewrite with the old mtime put back is not hashed again.
	if err := os.Chtimes(edited, old.ModTime(), old.ModTime()); err != nil {
		t.Fatal(err)
	}
	if err := stage(id3); err != nil {
		t.Fatalf("stage with the reused files unwritten since: %v", err)
	}
	res, err := run(t, mustCmd(VerifyRelease(l, id3, VerifySpec{})).Cmd)
	if ExitCode(err) != ExitTreeMismatch || !strings.Contains(string(res.Stdout), "modified edited.txt") {
		t.Errorf("the full check of the release: exit %v, stdout %q; want it to find edited.txt modified", err, res.Stdout)
	}
}
