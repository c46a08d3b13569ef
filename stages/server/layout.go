// Package server knows the layout of a deploy root on a target and builds
// every operation on it as a remote.Command value: pure functions that
// return a POSIX sh script of scripts/ with its values as quoted arguments
// (or on stdin), plus pure parsers of what those scripts print. Nothing
// here connects anywhere; a remote.Runner runs the commands.
//
// On the server:
//
//	<root>/releases/<id>/                   one directory per release
//	<root>/releases/.staging-<id>/          a release being extracted and verified
//	<root>/current -> releases/<id>         relative symlink, swapped by rename(2)
//	<root>/shared/                          what outlives releases (.env, data, uploads)
//	<root>/.stagecoach/state.json           deploy state (State)
//	<root>/.stagecoach/lock/                deploy lock: mkdir is the atomic test-and-set
//	<root>/.stagecoach/lock/info.json       who holds it (LockInfo); its mtime is the heartbeat
//	<root>/.stagecoach/lock/token           the holder's token, compared before heartbeat/unlock
//	<root>/.stagecoach/backups/<id>/        pre-migration copies of files under <root>
//	<root>/.stagecoach/incoming/<id>.archive uploads in progress and shipped archives (gzip or zstd: the manifest says)
//	<root>/.stagecoach/manifests/<id>.json  the release's manifest as packaged
//	<root>/.stagecoach/manifests/<id>.sha256 sha256sum list of the release's regular files
//	<root>/.stagecoach/manifests/<id>.links  "path -> target" lines of its symlinks
//
// Manifests live beside the releases rather than inside them so that a
// release directory holds exactly the application's files: a web server
// serving current/ never exposes the file list, and "no extra files" checks
// need no exception for the manifest itself.
package server

import (
	"fmt"
	"path"
	"regexp"
	"strings"
)

// Layout is a deploy root on a target and the paths inside it.
type Layout struct {
	Root string // absolute on the target
}

var releaseID = regexp.MustCompile(`^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{7,40}$`)

// ValidID reports whether id is a release id: UTC time plus short commit,
// e.g. 20261128T122605Z-b609e69. Anything else is refused so that an id can
// never name a path outside releases/.
func ValidID(id string) error {
	if !releaseID.MatchString(id) {
		return fmt.Errorf("invalid release id %q: want <yyyymmdd>T<hhmmss>Z-<commit>, e.g. 20261128T122605Z-b609e69", id)
	}
	return nil
}

// ValidRelPath checks a path relative to a release or the root: not empty,
// not absolute, no "." or ".." components, no newline or backslash (they
// would be escaped in sha256sum lists).
func ValidRelPath(p string) error {
	if p == "" {
		return fmt.Errorf("empty path")
	}
	if strings.HasPrefix(p, "/") {
		return fmt.Errorf("path %q must be relative", p)
	}
	if strings.ContainsAny(p, "\n\r\\\x00") {
		return fmt.Errorf("path %q contains a newline, backslash or NUL", p)
	}
	for _, c := range strings.Split(p, "/") {
		if c == "" || c == "." || c == ".." {
			return fmt.Errorf("path %q must be clean, without empty, . or .. components", p)
		}
	}
	return nil
}

func (l Layout) join(elem ...string) string {
	return path.Join(append([]string{l.Root}, elem...)...)
}

// ReleasesDir is <root>/releases.
func (l Layout) ReleasesDir() string { return l.join("releases") }

// ReleaseDir is <root>/releases/<id>.
func (l Layout) ReleaseDir(id string) string { return l.join("releases", id) }

// StagingDir is where a release is assembled before it gets its name.
func (l Layout) StagingDir(id string) string { return l.join("releases", ".staging-"+id) }

// CurrentLink is <root>/current.
func (l Layout) CurrentLink() string { return l.join("current") }

// SharedDir is <root>/shared.
func (l Layout) SharedDir() string { return l.join("shared") }

// EnvPath is <root>/shared/.env, exported into release commands.
func (l Layout) EnvPath() string { return l.join("shared", ".env") }

// MetaDir is <root>/.stagecoach.
func (l Layout) MetaDir() string { return l.join(".stagecoach") }

// StatePath is <root>/.stagecoach/state.json; write it with Runner.Upload,
// which replaces it by rename.
func (l Layout) StatePath() string { return l.join(".stagecoach", "state.json") }

// LockDir is the lock directory.
func (l Layout) LockDir() string { return l.join(".stagecoach", "lock") }

// BackupsDir is <root>/.stagecoach/backups.
func (l Layout) BackupsDir() string { return l.join(".stagecoach", "backups") }

// BackupDir holds the backups taken before release id's migrations.
func (l Layout) BackupDir(id string) string { return l.join(".stagecoach", "backups", id) }

// IncomingDir is <root>/.stagecoach/incoming.
func (l Layout) IncomingDir() string { return l.join(".stagecoach", "incoming") }

// IncomingPath is where release id's archive is uploaded.
func (l Layout) IncomingPath(id string) string {
	return l.join(".stagecoach", "incoming", id+".archive")
}

// UnpackedDir is where unpacking release id's archive as it arrives
// (UnpackStream) leaves its listing, messages and outcome for
// StageRelease.
func (l Layout) UnpackedDir(id string) string {
	return l.join(".stagecoach", "incoming", id+".unpacked")
}

// VerifiedMark is where VerifyArchive writes the SHA-256 of release id's
// archive once it matched, inside UnpackedDir, which staging removes.
func (l Layout) VerifiedMark(id string) string {
	return l.UnpackedDir(id) + "/verified"
}

// ManifestsDir is <root>/.stagecoach/manifests.
func (l Layout) ManifestsDir() string { return l.join(".stagecoach", "manifests") }

// ManifestPath is release id's manifest as packaged (JSON).
func (l Layout) ManifestPath(id string) string { return l.join(".stagecoach", "manifests", id+".json") }

// SumsPath is release id's sha256sum list (see TreeLists).
func (l Layout) SumsPath(id string) string { return l.join(".stagecoach", "manifests", id+".sha256") }

// LinksPath is release id's symlink list (see TreeLists).
func (l Layout) LinksPath(id string) string { return l.join(".stagecoach", "manifests", id+".links") }

// IncomingPath is Layout.IncomingPath, for callers that prefer a function.
func IncomingPath(l Layout, id string) string { return l.IncomingPath(id) }
