package git

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseStatus(t *testing.T) {
	tests := []struct {
		name string
		out  string
		want []Change
		err  string
	}{
		{"empty", "", nil, ""},
		{"modified, untracked, deleted",
			" M a.go\x00?? dir/new file\x00D  gone\x00",
			[]Change{{Path: "a.go", Index: ' ', WorkTree: 'M'}, {Path: "dir/new file", Index: '?', WorkTree: '?'}, {Path: "gone", Index: 'D', WorkTree: ' '}}, ""},
		{"staged rename: the source is the next entry",
			"R  new/main.go\x00old/main.go\x00 M x\x00",
			[]Change{{Path: "new/main.go", From: "old/main.go", Index: 'R', WorkTree: ' '}, {Path: "x", Index: ' ', WorkTree: 'M'}}, ""},
		{"work tree rename of an intent-to-add file",
			" R b.go\x00a.go\x00",
			[]Change{{Path: "b.go", From: "a.go", Index: ' ', WorkTree: 'R'}}, ""},
		{"copy", "C  b\x00a\x00", []Change{{Path: "b", From: "a", Index: 'C', WorkTree: ' '}}, ""},
		{"a source path that looks like an entry", "R  b\x00?? c\x00", []Change{{Path: "b", From: "?? c", Index: 'R', WorkTree: ' '}}, ""},
		{"newline in a path", "?? a\nb\x00", []Change{{Path: "a\nb", Index: '?', WorkTree: '?'}}, ""},
		{"rename without its source", "R  b\x00", nil, "without its source"},
		{"garbage", "what\x00", nil, "unexpected entry"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatus([]byte(tt.out))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// TestDirty runs git status in a real repository holding every kind of
// change, each path chosen so that a parser that loses its place would
// report a wrong one.
func TestDirty(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("git is required (apt-get install git)")
		}
		t.Skip("git not installed (apt-get install git)")
	}
	dir := t.TempDir()
	gitc := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
			"GIT_AUTHOR_NAME=Test", "GIT_AUTHOR_EMAIL=test@example.com", "GIT_COMMITTER_NAME=Test", "GIT_COMMITTER_EMAIL=test@example.com")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	write := func(name, content string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	long := strings.Repeat("a line long enough for rename detection\n", 20)
	gitc("init", "-q", "-b", "main")
	write("old dir/main.go", long)
	write("moved.go", long+"x\n")
	write("modified.go", "v1")
	write("deleted.go", "v1")
	write("ignored/.gitignore", "*.log\n")
	gitc("add", "-A")
	gitc("commit", "-q", "-m", "initial")

	if err := os.Mkdir(filepath.Join(dir, "new dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	gitc("mv", "old dir/main.go", "new dir/main.go")
	if err := os.Rename(filepath.Join(dir, "moved.go"), filepath.Join(dir, "renamed.go")); err != nil {
		t.Fatal(err)
	}
	gitc("add", "-N", "renamed.go")
	write("modified.go", "v2")
	if err := os.Remove(filepath.Join(dir, "deleted.go")); err != nil {
		t.Fatal(err)
	}
	write("untracked dir/a\nb.txt", "x")
	write("ignored/debug.log", "x")

	got, err := Repo{Dir: dir}.Dirty(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Change{
		"new dir/main.go":        {Path: "new dir/main.go", From: "old dir/main.go", Index: 'R', WorkTree: ' '},
		"renamed.go":             {Path: "renamed.go", From: "moved.go", Index: ' ', WorkTree: 'R'},
		"modified.go":            {Path: "modified.go", Index: ' ', WorkTree: 'M'},
		"deleted.go":             {Path: "deleted.go", Index: ' ', WorkTree: 'D'},
		"untracked dir/a\nb.txt": {Path: "untracked dir/a\nb.txt", Index: '?', WorkTree: '?'},
	}
	if len(got) != len(want) {
		t.Errorf("got %d changes, want %d: %+v", len(got), len(want), got)
	}
	for _, c := range got {
		if w, ok := want[c.Path]; !ok || c != w {
			t.Errorf("change %+v, want %+v", c, w)
		}
		if c.Untracked() != (c.Path == "untracked dir/a\nb.txt") {
			t.Errorf("%q: untracked = %v", c.Path, c.Untracked())
		}
	}

	// In a subdirectory, only its paths, still relative to the top.
	got, err = Repo{Dir: filepath.Join(dir, "new dir")}.Dirty(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Path != "new dir/main.go" {
		t.Errorf("in a subdirectory: %+v", got)
	}
}
