package server

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/testenv"
)

func TestScriptsShellcheckClean(t *testing.T) {
	names, err := fs.Glob(scriptFiles, "scripts/*.sh")
	if err != nil || len(names) == 0 {
		t.Fatalf("no embedded scripts: %v", err)
	}
	files := map[string][]byte{}
	for _, name := range names {
		if files[name], err = fs.ReadFile(scriptFiles, name); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Shellcheck(t, files)
}

func TestScriptsAllUsed(t *testing.T) {
	entries, err := fs.ReadDir(scriptFiles, "scripts")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !loaded[e.Name()] {
			t.Errorf("scripts/%s is embedded but never loaded", e.Name())
		}
	}
}

// TestScriptLine runs a script line the way the runner does, directly and
// inside a Chain, with arguments a splicing script would mangle.
func TestScriptLine(t *testing.T) {
	s := script{name: "echo.sh", src: "for a do printf '[%s]' \"$a\"; done; cat"}
	args := []string{"", "it's", `"$HOME"`, "`id`", "a\nb", "-n", "*", `back\slash`, "; exit 3"}
	want := "[][it's][\"$HOME\"][`id`][a\nb][-n][*][back\\slash][; exit 3]stdin"
	cmd := s.cmd("echo", args...)
	cmd.Stdin = strings.NewReader("stdin")
	if res := mustRun(t, cmd, nil); string(res.Stdout) != want {
		t.Errorf("got  %q\nwant %q", res.Stdout, want)
	}
	cmd.Stdin = strings.NewReader("stdin")
	chain, err := remote.Chain("chain", s.cmd("first"), cmd, remote.Script("last", "echo ."))
	if res := mustRun(t, chain, err); string(res.Stdout) != want+".\n" {
		t.Errorf("chained: got %q", res.Stdout)
	}
}

// awkward names break a script that splices values into its text or
// forgets a quote: blanks, quotes, expansions, globs, leading dashes,
// operators. MARK becomes the path of a file that must never be created.
var awkward = []struct{ name, root, path string }{
	{"plain", "srv", "public/uploads"},
	{"spaces", "srv root", "my dir/a  file"},
	{"single quotes", "it's", "it's/o'clock"},
	{"double quotes", `say "hi"`, `a "b"/c`},
	{"expansions", "$(touch MARK)", "$HOME/${x:-$(touch MARK)}"},
	{"backquotes", "`touch MARK`", "`touch MARK`"},
	{"globs", "*", "[a-z]*/?"},
	{"dashes", "-rf", "-n/-e"},
	{"operators", "a;b&&c|d", "x;y>z/w<v&"},
	{"backslash in root", `back\slash`, "plain"},
	{"newline and tab in root", "new\nline\there", "tab\there"},
	{"non-ASCII", "ünï cødé", "日本/語"},
}

// TestAwkwardNames runs a deploy's server side, two releases with shared
// paths, reused and carried files, locking, a backup, cleanup and a discard,
// in roots and with paths named awkwardly.
func TestAwkwardNames(t *testing.T) {
	for _, tc := range awkward {
		t.Run(tc.name, func(t *testing.T) {
			mark := filepath.Join(t.TempDir(), "pwned")
			x := strings.ReplaceAll(tc.path, "MARK", mark)
			l := Layout{Root: filepath.Join(t.TempDir(), strings.ReplaceAll(tc.root, "MARK", mark))}
			mustRun(t, Prepare(l).Cmd, nil)
			testAwkwardDeploy(t, l, x)
			if _, err := os.Lstat(mark); !os.IsNotExist(err) {
				t.Errorf("a name ran as code: %s exists", mark)
			}
		})
	}
}

func testAwkwardDeploy(t *testing.T, l Layout, x string) {
	leaf := strings.ReplaceAll(x, "/", "_")
	shared := "s/" + x
	reused, moved := "r/"+x+"/f.txt", "r/"+x+"/g.txt"
	asset1, asset2 := "assets/"+leaf+"-1.js", "assets/"+leaf+"-2.js"

	lk := mustCmd(Lock(l, LockInfo{Holder: x, Token: x})).Cmd
	mustRun(t, lk, nil)
	if st, err := ParseLock(mustRun(t, ReadLock(l).Cmd, nil).Stdout); err != nil || !st.Held || st.Holder.Info.Holder != x {
		t.Fatalf("lock: %+v %v", st, err)
	}
	mustRun(t, Heartbeat(l, x), nil)

	src := t.TempDir()
	writeFile(t, filepath.Join(src, "app.txt"), "v1")
	writeFile(t, filepath.Join(src, shared, "seed"), "seed")
	writeFile(t, filepath.Join(src, reused), "reused")
	writeFile(t, filepath.Join(src, asset1), "one")
	if err := os.Symlink("../"+strings.Repeat("../", strings.Count(x, "/")+1)+"app.txt", filepath.Join(src, "r", x, "link")); err != nil {
		t.Fatal(err)
	}
	ship(t, l, id1, src, nil, tree(t, src))
	data := mustRead(t, l.IncomingPath(id1))
	sum := sha256.Sum256(data)
	mustRun(t, VerifyArchive(l.IncomingPath(id1), hex.EncodeToString(sum[:]), int64(len(data)), "").Cmd, nil)
	mustRun(t, mustCmd(StageRelease(l, StageSpec{ID: id1})).Cmd, nil)
	furnish(t, l, id1, nil, shared, x)
	spec := VerifySpec{Shared: []string{shared}, AssetsDir: "assets", Jobs: 2}
	mustRun(t, mustCmd(VerifyRelease(l, id1, spec)).Cmd, nil)
	mustRun(t, mustCmd(Switch(l, id1)), nil)

	// Release 2 ships app.txt and a new asset, moves a file and reuses
	// the rest.
	writeFile(t, filepath.Join(src, "app.txt"), "v2")
	if err := os.Rename(filepath.Join(src, reused), filepath.Join(src, moved)); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(src, asset1)); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(src, asset2), "two")
	var only []string
	for _, e := range tree(t, src) {
		if e.Path != moved && !strings.HasPrefix(e.Path, shared+"/") {
			only = append(only, "./"+e.Path)
		}
	}
	full := tree(t, src)
	ship(t, l, id2, src, only, full)
	mustRun(t, mustCmd(StageRelease(l, StageSpec{ID: id2, PrevID: id1, Reuse: []LinkPair{{reused, moved}, {shared + "/seed", shared + "/seed"}}})).Cmd, nil)
	if inode(t, filepath.Join(l.ReleaseDir(id1), reused)) != inode(t, filepath.Join(l.ReleaseDir(id2), moved)) {
		t.Error("moved file not hard-linked")
	}
	furnish(t, l, id2, []string{id1}, shared, x)
	mustRun(t, mustCmd(VerifyRelease(l, id2, spec)).Cmd, nil)
	if b := mustRead(t, filepath.Join(l.ReleaseDir(id2), asset1)); string(b) != "one" {
		t.Errorf("carried asset %q", b)
	}
	// A tampered file in the awkward directory is reported by its name.
	writeFile(t, filepath.Join(l.ReleaseDir(id2), moved), "tampered")
	res, err := run(t, mustCmd(VerifyRelease(l, id2, spec)).Cmd)
	if r := ParseTreeReport(res.Stdout); ExitCode(err) != ExitTreeMismatch || !reflect.DeepEqual(r.Modified, []string{moved}) {
		t.Errorf("tampered: %v %+v", err, r)
	}
	writeFile(t, filepath.Join(l.ReleaseDir(id2), moved), "reused")

	// Back up a file under the awkward shared path and one that is absent,
	// and restore them.
	db, absent := "shared/"+shared+"/db", "shared/"+x+"-absent"
	dbPath := filepath.Join(l.Root, db)
	_, noSQLite := exec.LookPath("sqlite3")
	content := func() string {
		if noSQLite != nil {
			return string(mustRead(t, dbPath))
		}
		out, err := exec.Command("sqlite3", dbPath, "SELECT v FROM t;").CombinedOutput()
		if err != nil {
			t.Fatalf("%v %s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	set := func(v string) {
		if noSQLite != nil {
			writeFile(t, dbPath, v)
			return
		}
		if out, err := exec.Command("sqlite3", dbPath, "CREATE TABLE IF NOT EXISTS t(v); DELETE FROM t; INSERT INTO t VALUES('"+v+"');").CombinedOutput(); err != nil {
			t.Fatalf("%v %s", err, out)
		}
	}
	set("before")
	mustRun(t, mustCmd(BackupFiles(l, id2, []string{db, absent})), nil)
	set("after")
	writeFile(t, filepath.Join(l.Root, absent), "created")
	mustRun(t, mustCmd(RestoreFiles(l, id2, []string{db, absent})), nil)
	if got := content(); got != "before" {
		t.Errorf("restored %q", got)
	}
	if b := mustRead(t, filepath.Join(l.Root, absent+".before-rollback")); string(b) != "created" {
		t.Errorf("moved aside %q", b)
	}
	if _, err := run(t, mustCmd(RestoreFiles(l, id1, []string{db}))); err == nil || !strings.Contains(err.Error(), "no backup of "+db+" for release "+id1) {
		t.Errorf("restore without backup: %v", err)
	}

	res = mustRun(t, mustCmd(RunIn(l, id2, "print", `printf '%s|%s|%s|%s' "$PWD" "$V" "$STAGECOACH_ROOT" "$STAGECOACH_RELEASE"`)), nil)
	if want := l.ReleaseDir(id2) + "|" + x + "|" + l.Root + "|" + id2; string(res.Stdout) != want {
		t.Errorf("run in: got %q\nwant %q", res.Stdout, want)
	}
	mustRun(t, mustCmd(Switch(l, id2)), nil)
	if cur, err := ParseCurrent(mustRun(t, ReadCurrent(l).Cmd, nil).Stdout); err != nil || cur != id2 {
		t.Errorf("current %q %v", cur, err)
	}
	writeFile(t, l.ManifestPath(id2), "{}")
	if live, err := ParseLive(mustRun(t, ReadLive(l).Cmd, nil).Stdout); err != nil || live.Current != id2 || string(live.Manifest) != "{}" {
		t.Errorf("live %+v %v", live, err)
	}
	if u, err := ParseDiskFree(mustRun(t, DiskFree(l).Cmd, nil).Stdout); err != nil || u.AvailKB <= 0 {
		t.Errorf("disk free %+v %v", u, err)
	}
	mustRun(t, Unlock(l, x), nil)

	r, err := ParseCleanup(mustRun(t, mustCmd(Cleanup(l, CleanupSpec{Keep: 1, IncomingMaxAge: time.Minute})).Cmd, nil).Stdout)
	if err != nil || !reflect.DeepEqual(r.Removed, []string{id1}) {
		t.Errorf("cleanup %+v %v", r, err)
	}
	if b := mustRead(t, filepath.Join(l.CurrentLink(), moved)); string(b) != "reused" {
		t.Errorf("live release after cleanup: %q", b)
	}

	// A release staged elsewhere but never activated is discarded; the live
	// one is not.
	writeFile(t, filepath.Join(l.StagingDir(id3), "f"), "f")
	writeFile(t, l.IncomingPath(id3), "archive")
	mustRun(t, mustCmd(DiscardRelease(l, id3)), nil)
	for _, p := range []string{l.StagingDir(id3), l.IncomingPath(id3)} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s not discarded: %v", p, err)
		}
	}
	if _, err := run(t, mustCmd(DiscardRelease(l, id2))); ExitCode(err) != 1 {
		t.Errorf("discard the live release: %v", err)
	}
}

// furnish links the shared path, carries assets from prev and writes
// shared/.env with V=v in one chain, as a deploy does.
func furnish(t *testing.T, l Layout, id string, prev []string, shared, v string) {
	t.Helper()
	env, err := FormatEnv(map[string]string{"V": v})
	if err != nil {
		t.Fatal(err)
	}
	cmd, err := remote.Chain("furnish "+id, mustCmd(LinkShared(l, id, []string{shared})),
		mustCmd(CarryAssets(l, id, prev, "assets")), WriteEnv(l, env))
	mustRun(t, cmd, err)
	if b := mustRead(t, filepath.Join(l.ReleaseDir(id), shared, "seed")); string(b) != "seed" {
		t.Errorf("shared seed %q", b)
	}
	if b := mustRead(t, l.EnvPath()); string(b) != string(env) {
		t.Errorf("shared/.env %q", b)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestExitCodesAreDistinct: each script's own exit code means one thing,
// so an answer is never decoded as another operation's failure.
func TestExitCodesAreDistinct(t *testing.T) {
	codes := map[string]int{
		"ExitLockHeld": ExitLockHeld, "ExitLockLost": ExitLockLost, "ExitLockRefused": ExitLockRefused,
		"ExitArchiveMismatch": ExitArchiveMismatch, "ExitToolsMissing": ExitToolsMissing,
		"ExitTreeMismatch": ExitTreeMismatch, "ExitUnsafeArchive": ExitUnsafeArchive, "ExitNotUnpacked": ExitNotUnpacked,
		"ExitAdoptRefused": ExitAdoptRefused, "ExitPortTaken": ExitPortTaken, "ExitNginxTest": ExitNginxTest,
		"ExitCleanupUnexpected": ExitCleanupUnexpected, "ExitSwitchFailed": ExitSwitchFailed,
	}
	seen := map[int]string{}
	for name, code := range codes {
		if code < 64 || code > 113 {
			t.Errorf("%s = %d: outside 64-113, where no shell or tool puts its own codes", name, code)
		}
		if other, ok := seen[code]; ok {
			t.Errorf("%s and %s are both %d", name, other, code)
		}
		seen[code] = name
	}
}
