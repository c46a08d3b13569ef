package server

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/stagecoach/stagecoach/stages/remote"
)

// Exit codes of the ship scripts.
const (
	ExitToolsMissing    = 79 // CheckTools, Prepare: stderr names the missing tools
	ExitArchiveMismatch = 78 // VerifyArchive: stdout has "expected <sha>" and "actual <sha>"
)

// Tools are the commands the server scripts use. GNU tar and GNU coreutils
// are required for their options (tar --delay-directory-restore, mv -T,
// cp -l --parents, stat -c, find -printf).
var Tools = []string{"tar", "gzip", "sha256sum", "find", "df", "du", "xargs", "awk", "sort", "comm",
	"stat", "date", "readlink", "ln", "mv", "cp", "mkdir", "rm", "touch", "mktemp"}

var (
	checkToolsScript    = load("check_tools.sh")
	diskFreeScript      = load("disk_free.sh")
	verifyArchiveScript = load("verify_archive.sh")
)

// CheckTools fails with ExitToolsMissing, naming every missing tool, when
// the server lacks one of Tools or has non-GNU tar or coreutils.
func CheckTools(l Layout) remote.Command {
	return checkToolsScript.cmd("check server tools", append([]string{strconv.Itoa(ExitToolsMissing)}, Tools...)...)
}

// PrepareDirs creates the layout's directories (idempotent).
func PrepareDirs(l Layout) remote.Command {
	return remote.Cmd("create deploy directories",
		"mkdir", "-p", l.ReleasesDir(), l.SharedDir(), l.BackupsDir(), l.IncomingDir(), l.ManifestsDir())
}

// Prepare checks the tools, creates the directories, reports the free
// space of the root's filesystem and whether the server has zstd, in one
// round trip.
func Prepare(l Layout) Op[Readiness] {
	return op(remote.Script("prepare server", prepareSteps(l)+"\n"), ParseReadiness)
}

// Readiness is what Prepare found.
type Readiness struct {
	Usage DiskUsage
	// Zstd is set when the server can unpack zstd archives: it has zstd.
	Zstd bool
}

// hasZstd is the line Prepare prints before df's when zstd is there.
const hasZstd = "has zstd"

func prepareSteps(l Layout) string {
	tools := checkToolsScript.line(append([]string{strconv.Itoa(ExitToolsMissing)}, Tools...)...)
	zstd := "{ ! command -v zstd >/dev/null 2>&1 || echo " + remote.Quote(hasZstd) + "; }"
	steps := []string{tools, PrepareDirs(l).Script, zstd, remote.Join("df", "-Pk", l.Root)}
	return strings.Join(steps, " &&\n")
}

// ParseReadiness reads Prepare's output: a zstd line, then df's.
func ParseReadiness(stdout []byte) (Readiness, error) {
	u, err := ParseDiskFree(stdout)
	zstd := strings.HasPrefix(string(stdout), hasZstd+"\n")
	return Readiness{Usage: u, Zstd: zstd}, err
}

// Prepared is what PrepareDeployed found.
type Prepared struct {
	Done bool // the root was deployed to before: Prepare ran
	Readiness
}

// PrepareDeployed is Prepare for a root a deploy made before (it has its
// releases directory), for the lock's round trip. On any other it does
// nothing (Done false): a first deploy may be refused for the files it
// finds in the root, which must then stay as they were.
func PrepareDeployed(l Layout) Op[Prepared] {
	script := "if [ -d " + remote.Quote(l.ReleasesDir()) + " ]; then\n" + prepareSteps(l) + "\nfi\n"
	cmd := remote.Script("prepare server", script)
	cmd.Public = true // the tools' names and the layout's paths
	return op(cmd, func(stdout []byte) (Prepared, error) {
		if len(stdout) == 0 {
			return Prepared{}, nil
		}
		r, err := ParseReadiness(stdout)
		return Prepared{Done: err == nil, Readiness: r}, err
	})
}

// DiskUsage is one `df -Pk` line.
type DiskUsage struct {
	Filesystem string
	TotalKB    int64
	UsedKB     int64
	AvailKB    int64
	Mount      string
}

// DiskFree reports the free space of the filesystem holding the root (or
// its nearest existing parent, before the first deploy).
func DiskFree(l Layout) Op[DiskUsage] {
	return op(diskFreeScript.cmd("measure free disk", l.Root), ParseDiskFree)
}

// ParseDiskFree reads `df -Pk` output with one filesystem.
func ParseDiskFree(stdout []byte) (DiskUsage, error) {
	lines := strings.Split(strings.TrimSpace(string(stdout)), "\n")
	if len(lines) < 2 {
		return DiskUsage{}, fmt.Errorf("unexpected df output %q", string(stdout))
	}
	return parseDfLine(lines[len(lines)-1])
}

func parseDfLine(line string) (DiskUsage, error) {
	f := strings.Fields(line)
	if len(f) < 6 {
		return DiskUsage{}, fmt.Errorf("unexpected df line %q", line)
	}
	var u DiskUsage
	var err error
	n := len(f)
	// The filesystem name may contain spaces; the five last fields may not.
	u.Filesystem = strings.Join(f[:n-5], " ")
	u.Mount = f[n-1]
	for i, p := range []*int64{&u.TotalKB, &u.UsedKB, &u.AvailKB} {
		if *p, err = strconv.ParseInt(f[n-5+i], 10, 64); err != nil {
			return DiskUsage{}, fmt.Errorf("unexpected df line %q: %v", line, err)
		}
	}
	return u, nil
}

// VerifyArchive checks an uploaded archive's SHA-256 on the server. On a
// mismatch it prints "expected <sha>" and "actual <sha>" and exits
// ExitArchiveMismatch, which the Op decodes into an *ArchiveMismatchError.
// An archive of fastHashMin bytes or more is hashed with openssl where the
// server has it. When mark is set (Layout.VerifiedMark), a match is
// written there, for StageRelease to trust the files it extracted from
// this archive.
func VerifyArchive(path, sha256 string, size int64, mark string) Op[struct{}] {
	fast := ""
	if size >= fastHashMin {
		fast = "fast"
	}
	args := []string{path, strings.ToLower(sha256), strconv.Itoa(ExitArchiveMismatch), fast, mark}
	o := action(verifyArchiveScript.cmd("verify archive checksum", args...))
	o.failed = func(res remote.Result, code int, _ error) error {
		if code != ExitArchiveMismatch {
			return nil
		}
		return archiveMismatch(path, res.Stdout)
	}
	return o
}

// fastHashMin is the archive size from which openssl's start (about
// 10 ms) costs less than what it saves on sha256sum (about 6 ms a MB).
const fastHashMin = 2 << 20

// archiveMismatch reads VerifyArchive's report of a mismatch.
func archiveMismatch(path string, stdout []byte) *ArchiveMismatchError {
	e := &ArchiveMismatchError{Path: path}
	for _, line := range strings.Split(string(stdout), "\n") {
		if v, ok := strings.CutPrefix(line, "expected "); ok {
			e.Expected = v
		}
		if v, ok := strings.CutPrefix(line, "actual "); ok {
			e.Actual = v
		}
	}
	return e
}

// RemoveUpload removes the upload of release id, which failed its check,
// with what unpacking it as it arrived left (UnpackStream).
func RemoveUpload(l Layout, id string) remote.Command {
	return remote.Cmd("remove corrupt upload", "rm", "-rf", "--", l.IncomingPath(id), l.UnpackedDir(id), l.StagingDir(id))
}

// ExitCode returns the exit code of a command error (a *remote.ExitError),
// or -1 when err is not one.
func ExitCode(err error) int {
	var ee *remote.ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return -1
}

// IsDiskFull reports whether err comes from a command that ran out of
// disk space (ENOSPC), so the caller can say so plainly.
func IsDiskFull(err error) bool {
	if err == nil {
		return false
	}
	var ee *remote.ExitError
	if errors.As(err, &ee) && strings.Contains(ee.Stderr, "No space left on device") {
		return true
	}
	return strings.Contains(err.Error(), "No space left on device")
}
