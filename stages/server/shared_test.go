package server

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

func TestLinkSharedAndVerify(t *testing.T) {
	l := newRoot(t)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "app.txt"), "app")
	writeFile(t, filepath.Join(src, "public/uploads/seed.png"), "seed")
	writeFile(t, filepath.Join(src, "public/assets/app-1.js"), "one")
	ship(t, l, id1, src, nil, tree(t, src))
	mustRun(t, mustCmd(StageRelease(l, StageSpec{ID: id1})).Cmd, nil)
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
	mustRun(t, mustCmd(StageRelease(l, StageSpec{ID: id2})).Cmd, nil)
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
	mustRun(t, mustCmd(VerifyRelease(l, id2, spec)).Cmd, nil)

	// Added and changed files are caught, carried ones are not.
	writeFile(t, filepath.Join(l.ReleaseDir(id2), "backdoor.php"), "<?php")
	writeFile(t, filepath.Join(l.ReleaseDir(id2), "app.txt"), "changed")
	if err := os.Remove(filepath.Join(l.ReleaseDir(id2), "data")); err != nil {
		t.Fatal(err)
	}
	res, err := run(t, mustCmd(VerifyRelease(l, id2, spec)).Cmd)
	if ExitCode(err) != ExitTreeMismatch {
		t.Fatalf("verify: %v", err)
	}
	r := ParseTreeReport(res.Stdout)
	if strings.Join(r.Extra, ",") != "backdoor.php" || strings.Join(r.Modified, ",") != "app.txt" || strings.Join(r.BadLinks, ",") != "data" {
		t.Errorf("report %+v", r)
	}
	// Without the assets allowance, carried files are extra.
	res, _ = run(t, mustCmd(VerifyRelease(l, id2, VerifySpec{Shared: shared})).Cmd)
	if r := ParseTreeReport(res.Stdout); !strings.Contains(strings.Join(r.Extra, ","), "public/assets/app-1.js") {
		t.Errorf("report %+v", r)
	}
	if _, err := LinkShared(l, id1, []string{"../etc"}); err == nil {
		t.Error("bad shared path accepted")
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

// TestVerifyReportsWhatTheWalkFinds: the one walk of a verified release
// reports as extra an unlisted file, an unlisted symlink and an entry that
// is neither a file nor a symlink, and as a bad link a listed symlink that
// points elsewhere; what lies behind a shared link is not walked.
func TestVerifyReportsWhatTheWalkFinds(t *testing.T) {
	l := newRoot(t)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "app.txt"), "app")
	if err := os.Symlink("app.txt", filepath.Join(src, "latest")); err != nil {
		t.Fatal(err)
	}
	ship(t, l, id1, src, nil, tree(t, src))
	mustRun(t, mustCmd(StageRelease(l, StageSpec{ID: id1})).Cmd, nil)
	shared := []string{"data"}
	mustRun(t, mustCmd(LinkShared(l, id1, shared)), nil)
	writeFile(t, filepath.Join(l.SharedDir(), "data/db.sqlite"), "rows")
	spec := VerifySpec{Shared: shared}
	mustRun(t, mustCmd(VerifyRelease(l, id1, spec)).Cmd, nil)

	dir := l.ReleaseDir(id1)
	writeFile(t, filepath.Join(dir, "extra dir/x.txt"), "x")
	if err := syscall.Mkfifo(filepath.Join(dir, "pipe"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("app.txt", filepath.Join(dir, "stray")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "latest")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "latest")); err != nil {
		t.Fatal(err)
	}
	res, err := run(t, mustCmd(VerifyRelease(l, id1, spec)).Cmd)
	want := TreeReport{Extra: []string{"extra dir/x.txt", "pipe", "stray"}, BadLinks: []string{"latest"}}
	if got := ParseTreeReport(res.Stdout); ExitCode(err) != ExitTreeMismatch || !reflect.DeepEqual(got, want) {
		t.Errorf("exit %v, report %+v; want %+v", err, got, want)
	}
}
