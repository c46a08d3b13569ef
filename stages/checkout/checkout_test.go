package checkout

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLastDeployed(t *testing.T) {
	sha1 := strings.Repeat("ab", 20)
	sha256 := strings.Repeat("0f", 32)
	const id = "20261201T120000Z-abababa"
	cases := []struct {
		name, content string
		want          Deployed
	}{
		{"sha-1", sha1 + " " + id + "\n", Deployed{sha1, id}},
		{"sha-256", sha256 + " " + id, Deployed{sha256, id}},
		{"no release", sha1 + "\n", Deployed{}},
		{"short", "abc123 " + id + "\n", Deployed{}},
		{"upper case", strings.ToUpper(sha1) + " " + id, Deployed{}},
		{"more fields", sha1 + " " + id + " x\n", Deployed{}},
		{"empty", "", Deployed{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := deployedPath(dir, "prod")
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(c.content), 0o644); err != nil {
				t.Fatal(err)
			}
			if got := LastDeployed(dir, "prod"); got != c.want {
				t.Errorf("LastDeployed = %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestRecordDeployed(t *testing.T) {
	dir := t.TempDir()
	if got := LastDeployed(dir, "prod"); got != (Deployed{}) {
		t.Fatalf("nothing recorded, got %+v", got)
	}
	d := Deployed{Revision: strings.Repeat("1", 40), Release: "20261201T120000Z-1111111"}
	for _, env := range []string{"prod", "eu/west", ".."} {
		if err := RecordDeployed(dir, env, d); err != nil {
			t.Fatal(err)
		}
		if got := LastDeployed(dir, env); got != d {
			t.Errorf("%s: LastDeployed = %+v, want %+v", env, got, d)
		}
	}
	if got := LastDeployed(dir, "staging"); got != (Deployed{}) {
		t.Errorf("another environment's record was read: %+v", got)
	}
	entries, err := os.ReadDir(filepath.Join(dir, filepath.FromSlash(deployedDir)))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 3 {
		t.Errorf("%d files under %s, want one per environment and no temporary one", len(entries), deployedDir)
	}
	for _, bad := range []Deployed{{Revision: "abc", Release: d.Release}, {Revision: d.Revision}, {Revision: d.Revision, Release: "a b"}} {
		if err := RecordDeployed(dir, "prod", bad); err == nil {
			t.Errorf("RecordDeployed(%+v) took it", bad)
		}
	}
}

func TestBuildLock(t *testing.T) {
	dir := t.TempDir()
	first, err := TryLock(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := TryLock(dir); !errors.Is(err, ErrBuildLocked) {
		t.Fatalf("second TryLock: %v, want ErrBuildLocked", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*lockPoll)
	defer cancel()
	waited := 0
	if _, err := Lock(ctx, dir, func() { waited++ }); !errors.Is(err, context.DeadlineExceeded) || waited != 1 {
		t.Fatalf("Lock on a held lock: %v after %d waiting calls, want a deadline after 1", err, waited)
	}
	go func() {
		time.Sleep(lockPoll)
		first.Unlock()
	}()
	second, err := Lock(context.Background(), dir, nil)
	if err != nil {
		t.Fatalf("Lock once let go: %v", err)
	}
	second.Unlock()
	second.Unlock() // no-op
	var none *BuildLock
	none.Unlock()
}
