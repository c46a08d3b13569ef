package server

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/testenv"
)

// unpackOnArrival feeds release id's gzip archive, written where an
// upload would be, to UnpackStream's script, as the transport does while
// it arrives, and removes it: a feed leaves no archive on the host.
func unpackOnArrival(t *testing.T, l Layout, id string) {
	t.Helper()
	unpackOnArrivalAs(t, l, id, "gzip")
}

// unpackOnArrivalAs is unpackOnArrival for an archive of that compression.
func unpackOnArrivalAs(t *testing.T, l Layout, id, compression string) {
	t.Helper()
	cmd, err := UnpackStream(l, id, compression)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(l.IncomingPath(id))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdin = bytes.NewReader(data)
	mustRun(t, cmd, nil)
	if err := os.Remove(l.IncomingPath(id)); err != nil {
		t.Fatal(err)
	}
	// Kept where the test can upload it again, as the client would.
	writeFile(t, filepath.Join(l.MetaDir(), "sent-"+id), string(data))
}

// uploadAfterUnpack puts back the archive unpackOnArrival fed, as the
// client uploads it when staging from the unpacking failed.
func uploadAfterUnpack(t *testing.T, l Layout, id string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(l.MetaDir(), "sent-"+id))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, l.IncomingPath(id), string(data))
}

// TestStageReleaseTakesTheStreamedUnpack: an archive unpacked as it
// arrived, of which the host kept no copy, is staged from what it
// unpacked, the previous release's files are linked in after it, and what
// the unpack left goes.
func TestStageReleaseTakesTheStreamedUnpack(t *testing.T) {
	l := newRoot(t)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "kept/a.txt"), "a")
	writeFile(t, filepath.Join(src, "index.html"), "v1")
	ship(t, l, id1, src, nil, tree(t, src))
	unpackOnArrival(t, l, id1)
	if b, err := os.ReadFile(filepath.Join(l.UnpackedDir(id1), "rc")); err != nil || strings.TrimSpace(string(b)) != "0" {
		t.Fatalf("unpack outcome %q, %v", b, err)
	}
	mustRun(t, mustCmd(StageRelease(l, StageSpec{ID: id1})).Cmd, nil)
	if b, err := os.ReadFile(filepath.Join(l.ReleaseDir(id1), "index.html")); err != nil || string(b) != "v1" {
		t.Fatalf("index.html = %q, %v", b, err)
	}

	writeFile(t, filepath.Join(src, "index.html"), "v2")
	ship(t, l, id2, src, []string{"./index.html"}, tree(t, src))
	unpackOnArrival(t, l, id2)
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
// extraction would; an unpack that failed fails the stage with
// ExitNotUnpacked and the unpacking's messages, and once the archive is
// uploaded, staging extracts it and says what is wrong with it.
func TestStageReleaseChecksTheStreamedUnpack(t *testing.T) {
	t.Run("escaping symlink", func(t *testing.T) {
		l := newRoot(t)
		writeArchive(t, l.IncomingPath(id1), archiveEntry{name: "a.txt", body: "a"}, archiveEntry{name: "web/passwd", link: "../../../../../etc/passwd"})
		writeLists(t, l, id1, nil)
		unpackOnArrival(t, l, id1)
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
		unpackOnArrival(t, l, id1)
		if _, err := run(t, mustCmd(StageRelease(l, StageSpec{ID: id1})).Cmd); ExitCode(err) != ExitTreeMismatch {
			t.Fatalf("exit %v, want %d", err, ExitTreeMismatch)
		}
	})
	t.Run("dot-dot refused by tar", func(t *testing.T) {
		l := newRoot(t)
		writeArchive(t, l.IncomingPath(id1), archiveEntry{name: "a.txt", body: "a"}, archiveEntry{name: "../escape", body: "x"})
		writeLists(t, l, id1, nil)
		unpackOnArrival(t, l, id1)
		if b, _ := os.ReadFile(filepath.Join(l.UnpackedDir(id1), "rc")); strings.TrimSpace(string(b)) == "0" {
			t.Fatal("tar unpacked a member with .. without failing")
		}
		stage := mustCmd(StageRelease(l, StageSpec{ID: id1}))
		res, err := run(t, stage.Cmd)
		if ExitCode(err) != ExitNotUnpacked || !strings.Contains(string(res.Stderr), "../escape") {
			t.Fatalf("exit %v, want %d with tar's message on ../escape\nstderr: %s", err, ExitNotUnpacked, res.Stderr)
		}
		var notUnpacked *NotUnpackedError
		if _, err := stage.Decode(res, err); !errors.As(err, &notUnpacked) || notUnpacked.Release != id1 {
			t.Errorf("decoded as %v, want a *NotUnpackedError", err)
		}
		for _, p := range []string{l.UnpackedDir(id1), l.StagingDir(id1)} {
			if _, err := os.Lstat(p); !os.IsNotExist(err) {
				t.Errorf("%s left behind", p)
			}
		}
		uploadAfterUnpack(t, l, id1)
		res, err = run(t, stage.Cmd)
		if ExitCode(err) != ExitUnsafeArchive || !strings.Contains(string(res.Stderr), "unsafe archive entry ../escape:") {
			t.Fatalf("exit %v, want %d naming ../escape\nstderr: %s", err, ExitUnsafeArchive, res.Stderr)
		}
	})
	// gunzip finds the wrong CRC only after writing out every byte, so tar
	// unpacked the whole tree and succeeds: the decompressor's failure
	// alone must fail the unpack.
	t.Run("corrupt compression after the last entry", func(t *testing.T) {
		l := newRoot(t)
		writeArchive(t, l.IncomingPath(id1), archiveEntry{name: "a.txt", body: "a"})
		b, err := os.ReadFile(l.IncomingPath(id1))
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)-8] ^= 0xff // the CRC-32 of the last member
		writeFile(t, l.IncomingPath(id1), string(b))
		writeLists(t, l, id1, []TreeEntry{{Path: "a.txt", SHA256: "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"}})
		unpackOnArrival(t, l, id1)
		if b, _ := os.ReadFile(filepath.Join(l.UnpackedDir(id1), "rc")); strings.TrimSpace(string(b)) == "0" {
			t.Fatal("an archive gunzip fails on unpacked with rc 0")
		}
		if _, err := os.ReadFile(filepath.Join(l.StagingDir(id1), "a.txt")); err != nil {
			t.Fatalf("tar did not get to unpack the entry, so the case is not the one meant: %v", err)
		}
		stage := mustCmd(StageRelease(l, StageSpec{ID: id1})).Cmd
		if res, err := run(t, stage); ExitCode(err) != ExitNotUnpacked || !strings.Contains(string(res.Stderr), "crc error") {
			t.Fatalf("exit %v, want %d with gzip's message\nstderr: %s", err, ExitNotUnpacked, res.Stderr)
		}
		uploadAfterUnpack(t, l, id1)
		if _, err := run(t, stage); err == nil {
			t.Fatal("staged a release from an archive gunzip fails on")
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

// TestStageReleaseTrustsAVerifiedArchive: files extracted from an archive
// that VerifyArchive marked as having the expected SHA-256 are not hashed
// again, the rest of the tree check still runs, and without that mark,
// with a stale one, after a failed verification, with the archive written
// since, or unpacked on arrival (no archive vouches for them), every file
// is hashed.
// The manifest list here lies about a.txt, so that only hashing finds it.
func TestStageReleaseTrustsAVerifiedArchive(t *testing.T) {
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "a.txt"), "a")
	writeFile(t, filepath.Join(src, "index.html"), "v1")
	lying := tree(t, src)
	for i := range lying {
		if lying[i].Path == "a.txt" {
			lying[i].SHA256 = strings.Repeat("ab", 32)
		}
	}
	setUp := func(t *testing.T, streamed bool) (Layout, string) {
		l := newRoot(t)
		ship(t, l, id1, src, nil, lying)
		data, err := os.ReadFile(l.IncomingPath(id1))
		if err != nil {
			t.Fatal(err)
		}
		if streamed {
			unpackOnArrival(t, l, id1)
		}
		sum := sha256.Sum256(data)
		return l, hex.EncodeToString(sum[:])
	}
	stage := func(t *testing.T, l Layout, sum string) (remote.Result, error) {
		return run(t, mustCmd(StageRelease(l, StageSpec{ID: id1, ArchiveSHA256: sum})).Cmd)
	}
	t.Run("verified", func(t *testing.T) {
		l, sum := setUp(t, false)
		mustRun(t, VerifyArchive(l.IncomingPath(id1), sum, 0, l.VerifiedMark(id1)).Cmd, nil)
		if _, err := stage(t, l, sum); err != nil {
			t.Fatalf("a verified archive's files are hashed again: %v", err)
		}
	})
	t.Run("no mark", func(t *testing.T) {
		l, sum := setUp(t, false)
		res, err := stage(t, l, sum)
		if ExitCode(err) != ExitTreeMismatch || !strings.Contains(string(res.Stdout), "modified a.txt") {
			t.Fatalf("exit %v, stdout %q; want a.txt modified", err, res.Stdout)
		}
	})
	t.Run("stale mark", func(t *testing.T) {
		l, sum := setUp(t, false)
		writeFile(t, l.VerifiedMark(id1), strings.Repeat("cd", 32)+"\n")
		if _, err := stage(t, l, sum); ExitCode(err) != ExitTreeMismatch {
			t.Fatalf("exit %v, want %d", err, ExitTreeMismatch)
		}
	})
	t.Run("failed verification", func(t *testing.T) {
		l, sum := setUp(t, false)
		writeFile(t, l.VerifiedMark(id1), sum+"\n")
		op := VerifyArchive(l.IncomingPath(id1), strings.Repeat("0", 64), 0, l.VerifiedMark(id1))
		if _, err := op.Decode(run(t, op.Cmd)); err == nil {
			t.Fatal("a wrong checksum passed")
		}
		if _, err := stage(t, l, sum); ExitCode(err) != ExitTreeMismatch {
			t.Fatalf("exit %v, want %d", err, ExitTreeMismatch)
		}
	})
	t.Run("unpacked on arrival, with a mark", func(t *testing.T) {
		l, sum := setUp(t, true)
		writeFile(t, l.VerifiedMark(id1), sum+" 1 2 3\n")
		res, err := stage(t, l, sum)
		if ExitCode(err) != ExitTreeMismatch || !strings.Contains(string(res.Stdout), "modified a.txt") {
			t.Fatalf("exit %v, stdout %q; want a.txt modified", err, res.Stdout)
		}
	})
	t.Run("archive written since its check", func(t *testing.T) {
		l, sum := setUp(t, false)
		mustRun(t, VerifyArchive(l.IncomingPath(id1), sum, 0, l.VerifiedMark(id1)).Cmd, nil)
		later := time.Now().Add(time.Second)
		if err := os.Chtimes(l.IncomingPath(id1), later, later); err != nil {
			t.Fatal(err)
		}
		if _, err := stage(t, l, sum); ExitCode(err) != ExitTreeMismatch {
			t.Fatalf("exit %v, want %d", err, ExitTreeMismatch)
		}
	})
	t.Run("missing and extra files", func(t *testing.T) {
		l, sum := setUp(t, true)
		entries := append(tree(t, src), TreeEntry{Path: "ghost.txt", SHA256: strings.Repeat("ef", 32)})
		entries = slices.DeleteFunc(entries, func(e TreeEntry) bool { return e.Path == "index.html" })
		writeLists(t, l, id1, entries)
		res, err := stage(t, l, sum)
		want := TreeReport{Missing: []string{"ghost.txt"}, Extra: []string{"index.html"}}
		if got := ParseTreeReport(res.Stdout); ExitCode(err) != ExitTreeMismatch || !reflect.DeepEqual(got, want) {
			t.Fatalf("exit %v, report %+v; want %+v", err, got, want)
		}
	})
}

// TestStageReleaseZstd: a zstd archive is unpacked on arrival and at
// staging alike.
func TestStageReleaseZstd(t *testing.T) {
	testenv.RequireTool(t, "zstd", "apt-get install zstd")
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "kept/a.txt"), "a")
	writeFile(t, filepath.Join(src, "index.html"), "v1")
	for _, streamed := range []bool{true, false} {
		l := newRoot(t)
		ship(t, l, id1, src, nil, tree(t, src))
		if out, err := exec.Command("tar", "--use-compress-program=zstd", "-cf", l.IncomingPath(id1), "-C", src, ".").CombinedOutput(); err != nil {
			t.Fatalf("tar: %v %s", err, out)
		}
		if streamed {
			unpackOnArrivalAs(t, l, id1, "zstd")
			if b, err := os.ReadFile(filepath.Join(l.UnpackedDir(id1), "rc")); err != nil || strings.TrimSpace(string(b)) != "0" {
				t.Fatalf("unpack outcome %q, %v", b, err)
			}
		}
		mustRun(t, mustCmd(StageRelease(l, StageSpec{ID: id1, Compression: "zstd"})).Cmd, nil)
		if b, err := os.ReadFile(filepath.Join(l.ReleaseDir(id1), "kept/a.txt")); err != nil || string(b) != "a" {
			t.Errorf("streamed %v: kept/a.txt = %q, %v", streamed, b, err)
		}
	}
	if _, err := StageRelease(Layout{Root: "/srv/app"}, StageSpec{ID: id1, Compression: "xz"}); err == nil || !strings.Contains(err.Error(), `unknown archive compression "xz"`) {
		t.Errorf("compression xz: %v", err)
	}
}
