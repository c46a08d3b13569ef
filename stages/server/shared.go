package server

import (
	"bytes"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/stagecoach/stagecoach/stages/remote"
)

var (
	linkSharedScript  = load("link_shared.sh")
	carryAssetsScript = load("carry_assets.sh")
	carryScript       = load("carry.sh")
	writeFileScript   = load("write_file.sh")
)

// sharedTarget is the relative symlink target from releases/<id>/<p> to
// shared/<p>, so the root can move without breaking links.
func sharedTarget(p string) string {
	return strings.Repeat("../", strings.Count(p, "/")+2) + "shared/" + p
}

// LinkShared replaces each release-relative path in release id by a link
// into shared/. The first time a path is shared, the release's content
// there (a file or a directory) moves into shared/ as the initial content;
// when the release has nothing there, an empty directory is created.
// Afterwards shared/ wins: the release's own content at that path is
// removed.
func LinkShared(l Layout, id string, paths []string) (remote.Command, error) {
	if err := ValidID(id); err != nil {
		return remote.Command{}, err
	}
	args := []string{l.ReleaseDir(id), l.SharedDir()}
	for _, p := range paths {
		if err := ValidRelPath(p); err != nil {
			return remote.Command{}, fmt.Errorf("link shared paths of %s: %w", id, err)
		}
		args = append(args, p, sharedTarget(p))
	}
	return linkSharedScript.cmd("link shared paths into "+id, args...), nil
}

// CarryAssets hard-links the files under dir of the given earlier releases
// into release id, keeping its own files, so pages loaded before the swap
// can still fetch their content-hashed assets. Only each earlier release's
// own files (those in its manifest) are carried, so carried files do not
// pile up from release to release. VerifyRelease allows these extra files
// through VerifySpec.AssetsDir.
func CarryAssets(l Layout, id string, prevIDs []string, dir string) (remote.Command, error) {
	if err := ValidID(id); err != nil {
		return remote.Command{}, err
	}
	if err := ValidRelPath(dir); err != nil {
		return remote.Command{}, fmt.Errorf("carry assets: %w", err)
	}
	args := []string{l.ReleaseDir(id), dir, carryScript.src}
	for _, prev := range prevIDs {
		if err := ValidID(prev); err != nil {
			return remote.Command{}, fmt.Errorf("carry assets: %w", err)
		}
		args = append(args, l.ReleaseDir(prev), l.SumsPath(prev))
	}
	return carryAssetsScript.cmd("carry assets into "+id, args...), nil
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// shellOwned are the variables the shell sets or computes itself (those of
// bash, which is /bin/sh on some systems, and BASH_*): sourcing a file
// cannot give them its value, and some of them (OPTIND, bash's read-only
// ones) make the shell that sources the file exit.
var shellOwned = map[string]bool{
	"_": true, "OPTIND": true, "LINENO": true, "PPID": true, "UID": true, "EUID": true, "GROUPS": true,
	"RANDOM": true, "SRANDOM": true, "SECONDS": true, "HISTCMD": true, "DIRSTACK": true, "PIPESTATUS": true,
	"FUNCNAME": true, "SHELLOPTS": true, "BASHOPTS": true, "BASHPID": true, "EPOCHSECONDS": true, "EPOCHREALTIME": true,
}

// FormatEnv renders variables as shared/.env: sorted KEY='value' lines that
// sh can source (RunIn does). WriteEnv puts it on the server.
func FormatEnv(vars map[string]string) ([]byte, error) {
	keys := make([]string, 0, len(vars))
	for k, v := range vars {
		switch {
		case !envName.MatchString(k):
			return nil, fmt.Errorf("environment variable name %q is not a valid shell name", k)
		case shellOwned[k] || strings.HasPrefix(k, "BASH_"):
			return nil, fmt.Errorf("environment variable %s is the shell's own: the server's shell would not take its value from shared/.env", k)
		case strings.IndexByte(v, 0) >= 0:
			return nil, fmt.Errorf("environment variable %s: the value holds a NUL byte, which no shell variable can", k)
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s\n", k, remote.Quote(vars[k]))
	}
	return b.Bytes(), nil
}

// WriteEnv replaces shared/.env with content (FormatEnv's), in one round
// trip, owner-only (see writeRemoteFile).
func WriteEnv(l Layout, content []byte) remote.Command {
	return writeRemoteFile("write shared/.env", l.EnvPath(), "600", content)
}

// writeRemoteFile replaces path by content in one round trip: the content comes
// on stdin into a file created owner-only (umask 077, so secrets are
// never readable by others, not even for a moment), checked for its size,
// given mode and renamed over the old one.
func writeRemoteFile(desc, path, mode string, content []byte) remote.Command {
	cmd := writeFileScript.cmd(desc, path, mode, strconv.Itoa(len(content)))
	cmd.Stdin = bytes.NewReader(content)
	return cmd
}
