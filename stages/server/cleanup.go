package server

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/stagecoach/stagecoach/stages/remote"
)

var cleanupScript = load("cleanup.sh")

// ExitCleanupUnexpected is Cleanup's exit code, with CleanupSpec.Expect,
// when it removed other releases than expected (*CleanupUnexpectedError).
const ExitCleanupUnexpected = 85

// CleanupSpec says what Cleanup removes.
type CleanupSpec struct {
	Keep    int      // newest releases kept; below 1 counts as 1
	Protect []string // never removed: the live and previous releases
	// Held says the caller holds the deploy lock, so no other deploy is in
	// progress: every upload in incoming/ but Current's archive is a
	// leftover (of a deploy killed or failed while shipping) and goes, as
	// do the manifests of releases never staged but Current's. Without
	// the lock, a deploy holding it may be uploading: what it wrote since
	// it took the lock is kept, up to IncomingMaxAge; with no lock at all,
	// every upload but Current's goes.
	Held bool
	// Current is the release the caller is deploying, whose archive is
	// kept; "" when none is waiting to be staged.
	Current string
	// IncomingMaxAge is how long staging and lock-breaking leftovers,
	// manifests of releases never staged (without Held) and the uploads of
	// another deploy holding the lock are kept; default 24h.
	IncomingMaxAge time.Duration
	DockerLogs     bool // truncate containers' json logs
	DockerPrune    bool // docker system prune -f
	// ReleaseImages removes, with each removed release, the docker images
	// tagged with its id: what a compose file that tags its image with
	// ${STAGECOACH_RELEASE} built for it. Being tagged, they are not
	// dangling, so a prune would keep them.
	ReleaseImages bool
	// Expect, when non-nil, is the releases the caller expects Cleanup to
	// remove, newest first (PlanCleanup over what it knows), having
	// written the state for them in the same batch: Cleanup then fails,
	// once done, with a *CleanupUnexpectedError when it removed others,
	// so that the commands after it in the batch do not run.
	Expect []string
}

// CleanupUnexpectedError means Cleanup removed other releases than
// CleanupSpec.Expect said; Report is what it did.
type CleanupUnexpectedError struct {
	Expected []string
	Report   CleanupReport
}

func (e *CleanupUnexpectedError) Error() string {
	return fmt.Sprintf("cleanup removed %v, not the expected %v", e.Report.Removed, e.Expected)
}

// PlanCleanup returns the releases Cleanup removes from ids: all but the
// newest keep (ids sort in time order) and the protected ones, newest
// first. Strings that are not release ids are never touched.
func PlanCleanup(ids []string, keep int, protect []string) []string {
	if keep < 1 {
		keep = 1
	}
	prot := map[string]bool{}
	for _, p := range protect {
		prot[p] = true
	}
	var valid []string
	for _, id := range ids {
		if ValidID(id) == nil {
			valid = append(valid, id)
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(valid)))
	var remove []string
	for i, id := range valid {
		if i >= keep && !prot[id] {
			remove = append(remove, id)
		}
	}
	return remove
}

// Cleanup builds the one cleanup script. It applies PlanCleanup's rule on
// the server's own listing (also protecting whatever current points at),
// removes the dropped releases with their manifests, backups whose release
// is gone, staging leftovers and the uploads no deploy in progress owns
// (see CleanupSpec.Held), optionally truncates docker json logs and prunes
// docker, and prints disk usage before and after in the lines
// ParseCleanup reads:
//
//	before free_kb=N
//	removed <id>
//	removed-backup <id>
//	removed-incoming N
//	after free_kb=N
func Cleanup(l Layout, s CleanupSpec) (Op[CleanupReport], error) {
	keep := s.Keep
	if keep < 1 {
		keep = 1
	}
	for _, p := range s.Protect {
		if err := ValidID(p); err != nil {
			return Op[CleanupReport]{}, fmt.Errorf("cleanup: protected release: %w", err)
		}
	}
	if s.Current != "" {
		if err := ValidID(s.Current); err != nil {
			return Op[CleanupReport]{}, fmt.Errorf("cleanup: current release: %w", err)
		}
	}
	age := s.IncomingMaxAge
	if age <= 0 {
		age = 24 * time.Hour
	}
	minutes := int64((age + time.Minute - 1) / time.Minute)
	args := []string{l.Root, strconv.Itoa(keep), strings.Join(s.Protect, " "),
		strconv.FormatInt(minutes, 10), flag(s.DockerLogs), flag(s.DockerPrune), flag(s.ReleaseImages),
		flag(s.Held), s.Current}
	if s.Expect != nil {
		for _, id := range s.Expect {
			if err := ValidID(id); err != nil {
				return Op[CleanupReport]{}, fmt.Errorf("cleanup: expected release: %w", err)
			}
		}
		args = append(args, strconv.Itoa(ExitCleanupUnexpected), strings.Join(s.Expect, " "))
	}
	o := op(cleanupScript.cmd("clean up old releases", args...), ParseCleanup)
	o.failed = func(res remote.Result, code int, _ error) error {
		if code != ExitCleanupUnexpected || s.Expect == nil {
			return nil
		}
		rep, err := ParseCleanup(res.Stdout)
		if err != nil {
			return err
		}
		return &CleanupUnexpectedError{Expected: s.Expect, Report: rep}
	}
	return o, nil
}

// flag is a boolean as the scripts take it.
func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// CleanupReport is what Cleanup did.
type CleanupReport struct {
	Removed         []string // release ids
	RemovedBackups  []string // release ids whose backups went
	RemovedIncoming int      // leftover uploads (entries of incoming/)
	FreeBeforeKB    int64
	FreeAfterKB     int64
	FreedKB         int64 // FreeAfterKB - FreeBeforeKB, never below 0
}

// ParseCleanup reads Cleanup's output.
func ParseCleanup(stdout []byte) (CleanupReport, error) {
	var r CleanupReport
	var sawBefore, sawAfter bool
	for _, line := range strings.Split(string(stdout), "\n") {
		kind, rest, _ := strings.Cut(line, " ")
		var err error
		switch kind {
		case "before":
			sawBefore = true
			r.FreeBeforeKB, err = parseFreeKB(rest)
		case "after":
			sawAfter = true
			r.FreeAfterKB, err = parseFreeKB(rest)
		case "removed":
			r.Removed = append(r.Removed, rest)
		case "removed-backup":
			r.RemovedBackups = append(r.RemovedBackups, rest)
		case "removed-incoming":
			r.RemovedIncoming, err = strconv.Atoi(strings.TrimSpace(rest))
		}
		if err != nil {
			return r, fmt.Errorf("unexpected cleanup output line %q: %v", line, err)
		}
	}
	if !sawBefore || !sawAfter {
		return r, fmt.Errorf("cleanup output is incomplete: %q", remote.Tail(string(stdout), 5))
	}
	if r.FreedKB = r.FreeAfterKB - r.FreeBeforeKB; r.FreedKB < 0 {
		r.FreedKB = 0
	}
	return r, nil
}

// parseFreeKB reads "free_kb=N".
func parseFreeKB(s string) (int64, error) {
	n, ok := strings.CutPrefix(s, "free_kb=")
	if !ok {
		return 0, fmt.Errorf("want free_kb=N, got %q", s)
	}
	return strconv.ParseInt(n, 10, 64)
}
