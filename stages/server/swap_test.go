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
	"sync"
	"sync/atomic"
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
	cmd, err := StageRelease(l, StageSpec{ID: id2, PrevID: id1, Reuse: []LinkPair{{"a", "a"}, {"old/b", "new/b"}}})
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 100)
	n, _ := cmd.Stdin.Read(b)
	if got := string(b[:n]); got != "a\x00old/b\nnew/b\x00" {
		t.Errorf("stdin %q", got)
	}
	if !strings.Contains(cmd.Script, "xargs -0 -r sh -c") || !strings.Contains(cmd.Script, "--delay-directory-restore") {
		t.Errorf("script:\n%s", cmd.Script)
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
	cmd, err := StageRelease(l, StageSpec{ID: id1})
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
	cmd, err = StageRelease(l, StageSpec{ID: id2, PrevID: id1, Reuse: reuse})
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
			cmd, err := StageRelease(l, StageSpec{ID: id2})
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

// mustMkRelease makes an empty verified release id and returns the args of
// Switch to it.
func mustMkRelease(t *testing.T, l Layout, id string) (Layout, string) {
	t.Helper()
	if err := os.MkdirAll(l.ReleaseDir(id), 0o755); err != nil {
		t.Fatal(err)
	}
	return l, id
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

func TestSwitchAndReadCurrent(t *testing.T) {
	l := newRoot(t)
	res := mustRun(t, ReadCurrent(l), nil)
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
	res = mustRun(t, ReadCurrent(l), nil)
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

func mustCmd[T any](c T, err error) T {
	if err != nil {
		panic(err)
	}
	return c
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

func TestLinkSharedAndVerify(t *testing.T) {
	l := newRoot(t)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "app.txt"), "app")
	writeFile(t, filepath.Join(src, "public/uploads/seed.png"), "seed")
	writeFile(t, filepath.Join(src, "public/assets/app-1.js"), "one")
	ship(t, l, id1, src, nil, tree(t, src))
	mustRun(t, mustCmd(StageRelease(l, StageSpec{ID: id1})), nil)
	shared := []string{"public/uploads", "data"}
	mustRun(t, mustCmd(LinkShared(l, id1, shared)), nil)
	// The release's initial content moved into shared/; data was created.
	if b, err := os.ReadFile(filepath.Join(l.SharedDir(), "public/uploads/seed.png")); err != nil || string(b) != "seed" {
		t.Fatalf("seed: %q %v", b, err)
	}
	if target, _ := os.Readlink(filepath.Join(l.ReleaseDir(id1), "public/uploads")); target != "../../../shared/public/uploads" {
		t.Errorf("link target %q", target)
	}
	if fi, err := os.Stat(filepath.Join(l.ReleaseDir(id1), "data")); err != nil || !fi.IsDir() {
		t.Errorf("data: %v", err)
	}
	writeFile(t, filepath.Join(l.SharedDir(), "public/uploads/user.png"), "user")

	// Release 2 ships different seed content: shared/ wins.
	writeFile(t, filepath.Join(src, "public/uploads/seed.png"), "new seed")
	writeFile(t, filepath.Join(src, "public/assets/app-2.js"), "two")
	if err := os.Remove(filepath.Join(src, "public/assets/app-1.js")); err != nil {
		t.Fatal(err)
	}
	ship(t, l, id2, src, nil, tree(t, src))
	mustRun(t, mustCmd(StageRelease(l, StageSpec{ID: id2})), nil)
	mustRun(t, mustCmd(LinkShared(l, id2, shared)), nil)
	if b, _ := os.ReadFile(filepath.Join(l.ReleaseDir(id2), "public/uploads/seed.png")); string(b) != "seed" {
		t.Errorf("shared content replaced: %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(l.ReleaseDir(id2), "public/uploads/user.png")); string(b) != "user" {
		t.Errorf("uploads lost: %q", b)
	}

	// Old assets stay reachable, as hard links, without clobbering.
	writeFile(t, filepath.Join(l.ReleaseDir(id1), "public/assets/app-2.js"), "stale copy in the old release")
	mustRun(t, mustCmd(CarryAssets(l, id2, []string{id1}, "public/assets")), nil)
	if inode(t, filepath.Join(l.ReleaseDir(id1), "public/assets/app-1.js")) != inode(t, filepath.Join(l.ReleaseDir(id2), "public/assets/app-1.js")) {
		t.Error("asset not carried as a hard link")
	}
	if b, _ := os.ReadFile(filepath.Join(l.ReleaseDir(id2), "public/assets/app-2.js")); string(b) != "two" {
		t.Errorf("carried asset clobbered the release's own: %q", b)
	}

	spec := VerifySpec{Shared: shared, AssetsDir: "public/assets"}
	mustRun(t, mustCmd(VerifyRelease(l, id2, spec)), nil)

	// Added and changed files are caught, carried ones are not.
	writeFile(t, filepath.Join(l.ReleaseDir(id2), "backdoor.php"), "<?php")
	writeFile(t, filepath.Join(l.ReleaseDir(id2), "app.txt"), "changed")
	if err := os.Remove(filepath.Join(l.ReleaseDir(id2), "data")); err != nil {
		t.Fatal(err)
	}
	res, err := run(t, mustCmd(VerifyRelease(l, id2, spec)))
	if ExitCode(err) != ExitTreeMismatch {
		t.Fatalf("verify: %v", err)
	}
	r := ParseTreeReport(res.Stdout)
	if strings.Join(r.Extra, ",") != "backdoor.php" || strings.Join(r.Modified, ",") != "app.txt" || strings.Join(r.BadLinks, ",") != "data" {
		t.Errorf("report %+v", r)
	}
	// Without the assets allowance, carried files are extra.
	res, _ = run(t, mustCmd(VerifyRelease(l, id2, VerifySpec{Shared: shared})))
	if r := ParseTreeReport(res.Stdout); !strings.Contains(strings.Join(r.Extra, ","), "public/assets/app-1.js") {
		t.Errorf("report %+v", r)
	}
	if _, err := LinkShared(l, id1, []string{"../etc"}); err == nil {
		t.Error("bad shared path accepted")
	}
}

func TestBackupRestore(t *testing.T) {
	for _, withSQLite := range []bool{true, false} {
		t.Run(fmt.Sprint("sqlite3=", withSQLite), func(t *testing.T) {
			if _, err := exec.LookPath("sqlite3"); withSQLite && err != nil {
				if os.Getenv("CI") != "" {
					t.Fatal("sqlite3 CLI missing: apt-get install sqlite3")
				}
				t.Skip("install the sqlite3 CLI to test online backups")
			}
			l := newRoot(t)
			db := filepath.Join(l.Root, "shared/data/app.sqlite3")
			files := []string{"shared/data/app.sqlite3", "shared/data/new.sqlite3"}
			if err := os.MkdirAll(filepath.Dir(db), 0o755); err != nil {
				t.Fatal(err)
			}
			if withSQLite {
				if out, err := exec.Command("sqlite3", db, "PRAGMA journal_mode=WAL; CREATE TABLE t(v); INSERT INTO t VALUES('before');").CombinedOutput(); err != nil {
					t.Fatalf("%v %s", err, out)
				}
			} else {
				writeFile(t, db, "before")
				writeFile(t, db+"-wal", "wal before")
			}
			cmd, err := BackupFiles(l, id2, files)
			if !withSQLite {
				cmd.Script = "PATH=/usr/bin:/bin; sqlite3() { return 127; }\ncommand() { [ \"$2\" = sqlite3 ] && return 1; builtin command \"$@\"; }\n" + cmd.Script
			}
			mustRun(t, cmd, err)
			// The migration changes the database and creates another one.
			if withSQLite {
				if out, err := exec.Command("sqlite3", db, "UPDATE t SET v='after';").CombinedOutput(); err != nil {
					t.Fatalf("%v %s", err, out)
				}
			} else {
				writeFile(t, db, "after")
				writeFile(t, db+"-shm", "shm after")
			}
			writeFile(t, filepath.Join(l.Root, "shared/data/new.sqlite3"), "created by migration")

			mustRun(t, mustCmd(RestoreFiles(l, id2, files)), nil)
			if withSQLite {
				out, err := exec.Command("sqlite3", db, "SELECT v FROM t;").CombinedOutput()
				if err != nil || strings.TrimSpace(string(out)) != "before" {
					t.Errorf("restored db says %q %v", out, err)
				}
			} else {
				for name, want := range map[string]string{db: "before", db + "-wal": "wal before"} {
					if b, _ := os.ReadFile(name); string(b) != want {
						t.Errorf("%s = %q", name, b)
					}
				}
				if _, err := os.Stat(db + "-shm"); !os.IsNotExist(err) {
					t.Error("stale -shm kept")
				}
			}
			if _, err := os.Stat(filepath.Join(l.Root, "shared/data/new.sqlite3")); !os.IsNotExist(err) {
				t.Error("file absent before the migration still there")
			}
			if _, err := os.Stat(filepath.Join(l.Root, "shared/data/new.sqlite3.before-rollback")); err != nil {
				t.Error("file absent before the migration not moved aside")
			}
			if _, err := run(t, mustCmd(RestoreFiles(l, id1, files))); err == nil || !strings.Contains(err.Error(), "no backup of") {
				t.Errorf("restore without backup: %v", err)
			}
		})
	}
}

func TestRunInAndEnv(t *testing.T) {
	l := newRoot(t)
	mustMkRelease(t, l, id1)
	env, err := FormatEnv(map[string]string{"B_VAR": "it's $HOME; `x`", "A": "1"})
	if err != nil {
		t.Fatal(err)
	}
	if string(env) != "A=1\nB_VAR='it'\\''s $HOME; `x`'\n" {
		t.Errorf("env %q", env)
	}
	writeFile(t, l.EnvPath(), "OLD=1\n")
	mustRun(t, WriteEnv(l, env), nil)
	if fi, _ := os.Stat(l.EnvPath()); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}
	if got, _ := os.ReadFile(l.EnvPath()); string(got) != string(env) {
		t.Errorf("shared/.env = %q, want %q", got, env)
	}
	res := mustRun(t, mustCmd(RunIn(l, id1, "print", `printf '%s|%s|%s|%s' "$(pwd)" "$B_VAR" "$STAGECOACH_RELEASE" "$(env | grep -c ^A=)"`)), nil)
	want := l.ReleaseDir(id1) + "|it's $HOME; `x`|" + id1 + "|1"
	if string(res.Stdout) != want {
		t.Errorf("got  %s\nwant %s", res.Stdout, want)
	}
	if _, err := FormatEnv(map[string]string{"1BAD": "x"}); err == nil {
		t.Error("bad name accepted")
	}
}
