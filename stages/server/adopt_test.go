package server

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

const adoptID = "20260101T000000Z-" + AdoptRevision

// liveTree lays out a tree served from plain directories under root.
func liveTree(t *testing.T, root string) {
	t.Helper()
	for p, content := range map[string]string{
		"frontend/dist/index.html":    "<h1>old</h1>\n",
		"frontend/dist/assets/app.js": "console.log(1)\n",
		"backend/server":              "#!/bin/sh\n",
		"data/restaurant.sqlite3":     "not really sqlite\n",
		"data/uploads/menu.pdf":       "%PDF\n",
		"notes.txt":                   "left alone\n",
	} {
		must(t, os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755))
		must(t, os.WriteFile(filepath.Join(root, p), []byte(content), 0o644))
	}
	must(t, os.Chmod(filepath.Join(root, "backend/server"), 0o755))
	must(t, os.Symlink("index.html", filepath.Join(root, "frontend/dist/home.html")))
}

var (
	adoptApp  = []AdoptPath{{"frontend", "frontend/dist"}, {"backend", "backend"}}
	adoptData = []AdoptPath{{"data", "data"}}
)

func TestTakeOver(t *testing.T) {
	root := t.TempDir()
	liveTree(t, root)
	l := Layout{Root: root}
	op, err := TakeOver(l, adoptID, adoptApp, adoptData)
	if err != nil {
		t.Fatal(err)
	}
	res, rerr := run(t, op.Cmd)
	files, err := op.Decode(res, rerr)
	if err != nil {
		t.Fatalf("%v\n%s", err, res.Stderr)
	}
	var paths []string
	for _, f := range files {
		paths = append(paths, f.Path)
	}
	if want := []string{"backend/server", "frontend/assets/app.js", "frontend/home.html", "frontend/index.html"}; !reflect.DeepEqual(sorted(paths), want) {
		t.Errorf("listed %q, want %q", paths, want)
	}
	for _, f := range files {
		switch f.Path {
		case "backend/server":
			if f.Mode != 0o755 || f.Size != 10 || len(f.SHA256) != 64 {
				t.Errorf("server listed %+v", f)
			}
		case "frontend/home.html":
			if f.Link != "index.html" || f.SHA256 != "" {
				t.Errorf("link listed %+v", f)
			}
		}
	}
	if got, _ := os.ReadFile(filepath.Join(l.StagingDir(adoptID), "frontend/index.html")); string(got) != "<h1>old</h1>\n" {
		t.Errorf("staged index %q", got)
	}
	if target, _ := os.Readlink(filepath.Join(root, "shared/data")); target != "../data" {
		t.Errorf("shared/data -> %q, want ../data", target)
	}
	if got, _ := os.ReadFile(filepath.Join(root, "shared/data/uploads/menu.pdf")); string(got) != "%PDF\n" {
		t.Errorf("data through shared/: %q", got)
	}
	if got, _ := os.ReadFile(filepath.Join(l.BackupDir(adoptID), "data/restaurant.sqlite3")); string(got) != "not really sqlite\n" {
		t.Errorf("backup holds %q", got)
	}
	if got, _ := os.ReadFile(filepath.Join(root, "frontend/dist/index.html")); string(got) != "<h1>old</h1>\n" {
		t.Errorf("the live tree changed: %q", got)
	}

	// Again after an adoption stopped before its end: the link is kept.
	res, rerr = run(t, op.Cmd)
	if _, err := op.Decode(res, rerr); err != nil {
		t.Fatalf("taking over again: %v", err)
	}
	cmd, err := FinishAdopt(l, adoptID)
	mustRun(t, cmd, err)
	if _, err := os.Stat(filepath.Join(l.ReleaseDir(adoptID), "backend/server")); err != nil {
		t.Errorf("release not named: %v", err)
	}
}

func TestTakeOverSQLiteOnline(t *testing.T) {
	if _, err := exec.LookPath("sqlite3"); err != nil {
		t.Skip("no sqlite3 CLI")
	}
	root := t.TempDir()
	liveTree(t, root)
	db := filepath.Join(root, "data/restaurant.sqlite3")
	os.Remove(db)
	if out, err := exec.Command("sqlite3", db, "create table r(x); insert into r values (1), (2), (3);").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	op, _ := TakeOver(Layout{Root: root}, adoptID, adoptApp, adoptData)
	mustRun(t, op.Cmd, nil)
	out, err := exec.Command("sqlite3", filepath.Join(Layout{Root: root}.BackupDir(adoptID), "data/restaurant.sqlite3"), "select count(*) from r").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "3" {
		t.Errorf("backup: %v %s", err, out)
	}
}

func TestTakeOverRefuses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(root string)
		app   []AdoptPath
		want  string
	}{
		{"used root", func(root string) {
			must(t, os.MkdirAll(filepath.Join(root, ".stagecoach"), 0o755))
			must(t, os.WriteFile(filepath.Join(root, ".stagecoach/state.json"), []byte("{}"), 0o644))
		}, adoptApp, "is deployed by stagecoach already"},
		{"current", func(root string) { must(t, os.Symlink("releases/x", filepath.Join(root, "current"))) }, adoptApp, "is deployed by stagecoach already"},
		{"missing app dir", func(string) {}, []AdoptPath{{"frontend", "www"}}, "the live directory www does not exist under"},
		{"shared in the way", func(root string) { must(t, os.MkdirAll(filepath.Join(root, "shared/data"), 0o755)) }, adoptApp, "shared/data exists already: move it aside"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			liveTree(t, root)
			tc.setup(root)
			op, err := TakeOver(Layout{Root: root}, adoptID, tc.app, adoptData)
			if err != nil {
				t.Fatal(err)
			}
			res, rerr := run(t, op.Cmd)
			_, err = op.Decode(res, rerr)
			var re *AdoptRefusedError
			if !errors.As(err, &re) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("TakeOver = %v, want a refusal saying %q", err, tc.want)
			}
			if _, err := os.Lstat(filepath.Join(root, "releases")); err == nil {
				t.Error("a refusal staged a release")
			}
			if tc.name != "shared in the way" {
				if _, err := os.Lstat(filepath.Join(root, "shared")); err == nil {
					t.Error("a refusal linked shared/")
				}
			}
		})
	}
}

func TestTakeOverValidatesPaths(t *testing.T) {
	for _, app := range [][]AdoptPath{{{"../x", "www"}}, {{"frontend", "a/../b"}}, {{"frontend", ""}}} {
		if _, err := TakeOver(Layout{Root: "/srv"}, adoptID, app, nil); err == nil {
			t.Errorf("%+v accepted", app)
		}
	}
	if _, err := TakeOver(Layout{Root: "/srv"}, "r0", adoptApp, nil); err == nil {
		t.Error("a bad id accepted")
	}
	if got := dataTarget(AdoptPath{"db/main", "var/db"}); got != "../../var/db" {
		t.Errorf("dataTarget = %q", got)
	}
	if got := dataTarget(AdoptPath{"data", "/var/lib/app"}); got != "/var/lib/app" {
		t.Errorf("dataTarget = %q", got)
	}
}

func TestParseLiveTreeRefusesOddOutput(t *testing.T) {
	sum := strings.Repeat("a", 64)
	for _, out := range []string{
		"no separators",
		"\\" + sum + "  a\\nb\n\x00\x00",
		sum + "  a\n\x00644 3 b\n\x00",
		sum + "  a\n\x00644 x a\n\x00",
		"\x00\x00a/../b -> x\n",
	} {
		if _, err := ParseLiveTree([]byte(out)); err == nil {
			t.Errorf("%q parsed", out)
		}
	}
}

func sorted(s []string) []string {
	c := append([]string(nil), s...)
	sort.Strings(c)
	return c
}
