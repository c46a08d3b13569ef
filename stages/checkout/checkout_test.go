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
	cases := []struct {
		name, content, want string
	}{
		{"sha-1", sha1 + "\n", sha1},
		{"sha-256", sha256, sha256},
		{"short", "abc123\n", ""},
		{"upper case", strings.ToUpper(sha1), ""},
		{"junk", "not a revision at all, not a revision at\n", ""},
		{"empty", "", ""},
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
				t.Errorf("LastDeployed = %q, want %q", got, c.want)
			}
		})
	}
}

func TestRecordDeployed(t *testing.T) {
	dir := t.TempDir()
	if got := LastDeployed(dir, "prod"); got != "" {
		t.Fatalf("nothing recorded, got %q", got)
	}
	rev := strings.Repeat("1", 40)
	for _, env := range []string{"prod", "eu/west", ".."} {
		if err := RecordDeployed(dir, env, rev); err != nil {
			t.Fatal(err)
		}
		if got := LastDeployed(dir, env); got != rev {
			t.Errorf("%s: LastDeployed = %q, want %q", env, got, rev)
		}
	}
	if got := LastDeployed(dir, "staging"); got != "" {
		t.Errorf("another environment's record was read: %q", got)
	}
	entries, err := os.ReadDir(filepath.Join(dir, filepath.FromSlash(deployedDir)))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 3 {
		t.Errorf("%d files under %s, want one per environment and no temporary one", len(entries), deployedDir)
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
