// Package checkout keeps what one checkout of the project knows of its own
// deploys, under .stagecoach/: the revision it last deployed to each
// environment, which lets a deploy detect and build while it connects, and
// the build lock, which keeps two deploys of the checkout from building
// into the same output directories at once.
package checkout

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/stagecoach/stagecoach/stages/run"
)

// Paths relative to the project root.
const (
	deployedDir = ".stagecoach/deployed"
	lockFile    = ".stagecoach/build.lock"
)

// Deployed is what a deploy from this checkout left live.
type Deployed struct {
	Revision string // the commit
	Release  string // the release id
}

// LastDeployed is what this checkout last deployed to env successfully,
// the zero Deployed when it recorded nothing readable.
func LastDeployed(projectDir, env string) Deployed {
	data, err := os.ReadFile(deployedPath(projectDir, env))
	if err != nil {
		return Deployed{}
	}
	f := strings.Fields(string(data))
	if len(f) != 2 || !isRevision(f[0]) || f[1] == "" {
		return Deployed{}
	}
	return Deployed{Revision: f[0], Release: f[1]}
}

// RecordDeployed notes d as what env runs after a deploy from this
// checkout. The file is replaced whole, never seen half written.
func RecordDeployed(projectDir, env string, d Deployed) error {
	if !isRevision(d.Revision) || d.Release == "" || strings.ContainsAny(d.Release, " \t\n") {
		return fmt.Errorf("record the deployed revision: %q at %q is not a revision and a release id", d.Revision, d.Release)
	}
	if err := run.WriteFileAtomic(deployedPath(projectDir, env), []byte(d.Revision+" "+d.Release+"\n")); err != nil {
		return fmt.Errorf("record the deployed revision: %w", err)
	}
	return nil
}

func deployedPath(projectDir, env string) string {
	// Escaped and suffixed, so that no name is a path or "..".
	return filepath.Join(projectDir, filepath.FromSlash(deployedDir), url.PathEscape(env)+".revision")
}

// isRevision tells a full commit id (SHA-1 or SHA-256, in hex).
func isRevision(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	return strings.Trim(s, "0123456789abcdef") == ""
}

// BuildLock is the checkout's build lock, held from a deploy's build to
// the end of its package: another deploy building meanwhile would rewrite
// the files being packaged.
type BuildLock struct{ f *os.File }

// ErrBuildLocked is TryLock's error when another process holds the lock.
var ErrBuildLocked = errors.New("another deploy of this checkout is building")

// TryLock takes the build lock if it is free.
func TryLock(projectDir string) (*BuildLock, error) {
	path := filepath.Join(projectDir, filepath.FromSlash(lockFile))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("build lock: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("build lock: %w", err)
	}
	ok, err := tryFlock(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("build lock %s: %w", path, err)
	}
	if !ok {
		f.Close()
		return nil, ErrBuildLocked
	}
	return &BuildLock{f: f}, nil
}

// lockPoll is how often Lock tries again.
const lockPoll = 100 * time.Millisecond

// Lock takes the build lock, waiting for another deploy of the checkout
// to let it go; waiting is called once if it has to.
func Lock(ctx context.Context, projectDir string, waiting func()) (*BuildLock, error) {
	for told := false; ; {
		l, err := TryLock(projectDir)
		if !errors.Is(err, ErrBuildLocked) {
			return l, err
		}
		if !told && waiting != nil {
			waiting()
			told = true
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for the build lock: %w", ctx.Err())
		case <-time.After(lockPoll):
		}
	}
}

// Unlock lets the lock go; a nil lock, or one let go already, is no-op.
func (l *BuildLock) Unlock() {
	if l == nil || l.f == nil {
		return
	}
	l.f.Close() // closing the file releases the flock
	l.f = nil
}
