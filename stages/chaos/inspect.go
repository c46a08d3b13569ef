package chaos

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/server"
)

// Snapshot is what a deploy root holds, read directly from its files,
// not through the code under test's own reading of them.
type Snapshot struct {
	Root string
	// Current is the release `current` names, "" when there is none.
	Current string
	// Intact is nil when Current matches its manifest, file by file, with
	// its shared links; the verification's error otherwise.
	Intact error
	// Releases are the complete release directories.
	Releases []string
	// Leftovers are what a finished deploy must not leave: staging
	// directories, archives and partial uploads in incoming, manifests
	// of releases never staged, temporary links beside current, what a
	// killed take or break of the lock left beside it.
	Leftovers []string
	// Locked: .stagecoach/lock exists.
	Locked bool
	// State is state.json; nil when there is none.
	State *server.State
	// DB is the content of the database file, nil when there is none.
	DB []byte
	// Backup is the database as backed up before Current was deployed,
	// what a rollback restoring the database puts back; nil when there
	// is none.
	Backup []byte
}

// Inspect reads root. db is the database file relative to root (e.g.
// "shared/data/db"); verify says, as the environment configures it, what
// the integrity check of current allows beside the manifest (shared
// links, carried assets).
func Inspect(ctx context.Context, root, db string, verify server.VerifySpec) (*Snapshot, error) {
	l := server.Layout{Root: root}
	s := &Snapshot{Root: root}
	target, err := os.Readlink(l.CurrentLink())
	switch {
	case os.IsNotExist(err):
	case err != nil:
		return nil, fmt.Errorf("%s: current is not a symlink: %w", root, err)
	default:
		id, ok := strings.CutPrefix(target, "releases/")
		if !ok || strings.Contains(id, "/") {
			return nil, fmt.Errorf("%s: current points at %q, not at a release", root, target)
		}
		s.Current = id
	}
	entries, err := os.ReadDir(l.ReleasesDir())
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			s.Leftovers = append(s.Leftovers, "releases/"+e.Name())
			continue
		}
		s.Releases = append(s.Releases, e.Name())
	}
	for _, e := range readDir(l.IncomingDir()) {
		s.Leftovers = append(s.Leftovers, ".stagecoach/incoming/"+e.Name())
	}
	for _, e := range readDir(l.ManifestsDir()) {
		id := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(e.Name(), ".json"), ".sha256"), ".links")
		if _, err := os.Stat(l.ReleaseDir(id)); os.IsNotExist(err) {
			s.Leftovers = append(s.Leftovers, ".stagecoach/manifests/"+e.Name())
		}
	}
	for _, e := range readDir(l.MetaDir()) {
		// A take or a break of the lock killed part-way.
		if strings.HasPrefix(e.Name(), "lock.") {
			s.Leftovers = append(s.Leftovers, ".stagecoach/"+e.Name())
		}
	}
	for _, e := range readDir(root) {
		if strings.HasPrefix(e.Name(), ".current") || strings.HasPrefix(e.Name(), "current.") {
			s.Leftovers = append(s.Leftovers, e.Name())
		}
	}
	if _, err := os.Lstat(l.LockDir()); err == nil {
		s.Locked = true
	}
	if data, err := os.ReadFile(l.StatePath()); err == nil {
		st, err := server.ParseState(l.StatePath(), data)
		if err != nil {
			return nil, err
		}
		s.State = st
	} else if !os.IsNotExist(err) {
		return nil, err
	}
	if data, err := os.ReadFile(filepath.Join(root, db)); err == nil {
		s.DB = data
	} else if !os.IsNotExist(err) {
		return nil, err
	}
	if s.Current != "" {
		if data, err := os.ReadFile(filepath.Join(l.BackupDir(s.Current), db)); err == nil {
			s.Backup = data
		}
		op, err := server.VerifyRelease(l, s.Current, verify)
		if err != nil {
			return nil, err
		}
		_, s.Intact = server.Run(ctx, remote.NewLocal(), op)
	}
	return s, nil
}

func readDir(dir string) []os.DirEntry {
	entries, _ := os.ReadDir(dir)
	return entries
}
