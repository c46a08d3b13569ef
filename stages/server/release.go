package server

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/stagecoach/stagecoach/stages/remote"
)

// Exit codes of the release scripts.
const (
	ExitTreeMismatch  = 80 // StageRelease, VerifyRelease: stdout lists the differences (ParseTreeReport)
	ExitUnsafeArchive = 81 // StageRelease: an archive entry is absolute, has "..", escapes by symlink or is not a file, dir or symlink
	ExitNotUnpacked   = 86 // StageRelease: the archive fed to UnpackStream did not unpack whole, and is not on the host
	// exitTreeUnchecked is verify_tree.sh's: the tree could not be compared.
	exitTreeUnchecked = 2
)

var (
	stageReleaseScript  = load("stage_release.sh")
	verifyReleaseScript = load("verify_release.sh")
	verifyTreeScript    = load("verify_tree.sh")
	reuseLinkScript     = load("reuse_link.sh")
	unpackStreamScript  = load("unpack_stream.sh")
	filterAWK           = load("filter.awk")
	checkArchiveAWK     = load("check_archive.awk")
)

// TreeEntry is one file of a release, as the manifest lists it.
type TreeEntry struct {
	Path   string // release-relative, slash-separated
	SHA256 string // regular files
	Link   string // symlink target; set for symlinks only
}

var hexSHA = regexp.MustCompile(`^[0-9a-f]{64}$`)

// TreeLists renders a release's entries as the two files the server checks
// a release tree against, uploaded to SumsPath and LinksPath before
// StageRelease: a `sha256sum -c` list of the regular files and a list of
// "path -> target" lines for the symlinks, both sorted by path.
func TreeLists(entries []TreeEntry) (sums, links []byte, err error) {
	sorted := append([]TreeEntry(nil), entries...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })
	var s, l bytes.Buffer
	for _, e := range sorted {
		if err := ValidRelPath(e.Path); err != nil {
			return nil, nil, fmt.Errorf("manifest entry: %w", err)
		}
		if strings.Contains(e.Path, " -> ") || strings.Contains(e.Link, "\n") {
			return nil, nil, fmt.Errorf("manifest entry %q: unsupported name", e.Path)
		}
		if e.Link != "" {
			fmt.Fprintf(&l, "%s -> %s\n", e.Path, e.Link)
			continue
		}
		if !hexSHA.MatchString(e.SHA256) {
			return nil, nil, fmt.Errorf("manifest entry %q: sha256 %q is not 64 lowercase hex digits", e.Path, e.SHA256)
		}
		fmt.Fprintf(&s, "%s  %s\n", e.SHA256, e.Path)
	}
	return s.Bytes(), l.Bytes(), nil
}

// LinkPair is a file the new release takes, hard-linked, from the previous
// one because its content is unchanged.
type LinkPair struct {
	From string // path in the previous release
	To   string // path in the new release
}

// StageSpec says how to assemble a release.
type StageSpec struct {
	ID      string
	PrevID  string     // release the Reuse files come from; "" on a first deploy
	Archive string     // server path of the verified archive, removed once staged; default IncomingPath(ID)
	Reuse   []LinkPair // regular files only
	// ArchiveSHA256, when VerifyArchive marked the archive as having it
	// (Layout.VerifiedMark), lets staging take the files it extracted as
	// matching their manifest entries without hashing them again.
	ArchiveSHA256 string
	// Compression is the archive's: "gzip" (also when empty) or "zstd".
	Compression string
}

// compressionArg is a compression as the scripts take it.
func compressionArg(c string) (string, error) {
	switch c {
	case "", "gzip":
		return "gzip", nil
	case "zstd":
		return c, nil
	}
	return "", fmt.Errorf("unknown archive compression %q (gzip or zstd)", c)
}

// StageRelease assembles release ID in releases/.staging-<id> (removing a
// leftover first): it hard-links the reused files from the previous
// release (the list is fed on stdin, NUL-separated, and linked in a few
// processes), extracts the archive with GNU tar while listing it, checks
// the listing for unsafe entries (and, when tar fails, lists the archive
// again: GNU tar skips a member with ".." without listing it), and verifies
// the whole tree against SumsPath and LinksPath (uploaded before) — every
// file's SHA-256, no file missing, no file extra; a file hard-linked from
// the previous release that was not written since that release was
// verified (its mtime is not newer than the previous SumsPath, which
// staging touches once a release is verified) is checked for being there
// but not hashed again, and so is a file extracted from an archive that
// VerifyArchive marked as having s.ArchiveSHA256. Only then is the
// directory renamed to releases/<id> and the archive, of no more use,
// removed. When UnpackStream unpacked the archive as it arrived, its
// listing is checked first, before the reused files are linked in, and
// the archive is not extracted again; every file it extracted is hashed,
// as no archive on the host vouches for them. Any failure removes the
// staging directory and keeps the archive (Discard removes it); current
// is never touched. Extracted files get the time of extraction as mtime,
// so web servers see changed files as new. Exit codes ExitUnsafeArchive,
// ExitTreeMismatch and ExitNotUnpacked decode into an
// *UnsafeArchiveError, a *TreeMismatchError and a *NotUnpackedError;
// other failures are returned as they are (IsDiskFull tells a full disk).
func StageRelease(l Layout, s StageSpec) (Op[struct{}], error) {
	if err := ValidID(s.ID); err != nil {
		return Op[struct{}]{}, err
	}
	if s.PrevID != "" {
		if err := ValidID(s.PrevID); err != nil {
			return Op[struct{}]{}, err
		}
	}
	if len(s.Reuse) > 0 && s.PrevID == "" {
		return Op[struct{}]{}, errors.New("stage release: files to reuse but no previous release")
	}
	compression, err := compressionArg(s.Compression)
	if err != nil {
		return Op[struct{}]{}, fmt.Errorf("stage release %s: %w", s.ID, err)
	}
	archive := s.Archive
	if archive == "" {
		archive = l.IncomingPath(s.ID)
	}
	// One NUL-terminated argument per file for reuse_link.sh: the path, or
	// "from<newline>to" for a moved file (paths have no newline).
	var stdin bytes.Buffer
	for _, p := range s.Reuse {
		for _, x := range []string{p.From, p.To} {
			if err := ValidRelPath(x); err != nil {
				return Op[struct{}]{}, fmt.Errorf("stage release %s: reuse: %w", s.ID, err)
			}
		}
		if p.From == p.To {
			stdin.WriteString(p.To)
		} else {
			stdin.WriteString(p.From + "\n" + p.To)
		}
		stdin.WriteByte(0)
	}
	prev, prevSums := "", "" // nothing to link
	if len(s.Reuse) > 0 {
		prev, prevSums = l.ReleaseDir(s.PrevID), l.SumsPath(s.PrevID)
	}
	cmd := stageReleaseScript.cmd("stage release "+s.ID,
		l.StagingDir(s.ID), l.ReleaseDir(s.ID), archive, l.SumsPath(s.ID), l.LinksPath(s.ID), l.MetaDir(), s.ID, prev,
		strconv.Itoa(ExitUnsafeArchive), strconv.Itoa(ExitTreeMismatch),
		verifyTreeScript.src, filterAWK.src, checkArchiveAWK.src, reuseLinkScript.src, l.UnpackedDir(s.ID), prevSums,
		strings.ToLower(s.ArchiveSHA256), compression, strconv.Itoa(ExitNotUnpacked))
	cmd.Stdin = &stdin
	o := action(cmd)
	o.failed = func(res remote.Result, code int, err error) error {
		switch code {
		case ExitTreeMismatch:
			return &TreeMismatchError{Release: s.ID, Report: ParseTreeReport(res.Stdout)}
		case ExitUnsafeArchive:
			return &UnsafeArchiveError{Release: s.ID, Err: err}
		case ExitNotUnpacked:
			return &NotUnpackedError{Release: s.ID, Err: err}
		}
		return nil
	}
	return o, nil
}

// UnpackStream is the script to feed release id's archive, compressed
// with gzip or zstd, as it is sent (remote.Feeder): it unpacks it into
// releases/.staging-<id> as it arrives, with the listing StageRelease
// checks, and keeps no copy of the archive. Nothing is linked to or
// switched to the staging directory before StageRelease has checked the
// listing and hashed every file; should the unpacking fail, StageRelease
// fails with a *NotUnpackedError, for the archive to be uploaded instead.
func UnpackStream(l Layout, id, compression string) (remote.Command, error) {
	if err := ValidID(id); err != nil {
		return remote.Command{}, err
	}
	c, err := compressionArg(compression)
	if err != nil {
		return remote.Command{}, err
	}
	return unpackStreamScript.cmd("unpack release "+id+" as it arrives", l.StagingDir(id), l.UnpackedDir(id), c), nil
}

// VerifySpec says which differences a live release may have from its
// manifest.
type VerifySpec struct {
	// Shared paths are links into shared/ (LinkShared); their manifest
	// entries are skipped and the links themselves checked.
	Shared []string
	// AssetsDir may hold extra regular files: assets carried from earlier
	// releases (CarryAssets), which were verified when those were staged.
	AssetsDir string
	// Jobs is how many sha256sum processes hash the files; 0 means one
	// per CPU of the server.
	Jobs int
}

// VerifyRelease checks releases/<id> against its manifest lists as
// StageRelease did, allowing what LinkShared and CarryAssets changed. A
// tree that differs fails with a *TreeMismatchError. Checking current:
// read it with ReadCurrent first.
func VerifyRelease(l Layout, id string, v VerifySpec) (Op[struct{}], error) {
	if err := ValidID(id); err != nil {
		return Op[struct{}]{}, err
	}
	for _, p := range append(append([]string(nil), v.Shared...), nonEmpty(v.AssetsDir)...) {
		if err := ValidRelPath(p); err != nil {
			return Op[struct{}]{}, fmt.Errorf("verify release %s: %w", id, err)
		}
	}
	args := []string{l.ReleaseDir(id), l.SumsPath(id), l.LinksPath(id),
		strings.Join(v.Shared, "\n"), v.AssetsDir, jobsArg(v.Jobs), strconv.Itoa(ExitTreeMismatch),
		verifyTreeScript.src, filterAWK.src}
	for _, p := range v.Shared {
		args = append(args, p, sharedTarget(p))
	}
	o := action(verifyReleaseScript.cmd("verify release "+id, args...))
	o.failed = func(res remote.Result, code int, err error) error {
		switch code {
		case ExitTreeMismatch:
			return &TreeMismatchError{Release: id, Report: ParseTreeReport(res.Stdout)}
		case exitTreeUnchecked:
			return &TreeUncheckedError{Release: id, Err: err}
		}
		return nil
	}
	return o, nil
}

// jobsArg is a process count as verify_tree.sh takes it: empty for "one
// per CPU".
func jobsArg(n int) string {
	if n <= 0 {
		return ""
	}
	return strconv.Itoa(n)
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

// TreeReport lists how a release tree differs from its manifest.
type TreeReport struct {
	Modified, Missing, Extra, BadLinks []string
}

// ParseTreeReport reads the lines StageRelease and VerifyRelease print.
func ParseTreeReport(stdout []byte) TreeReport {
	var r TreeReport
	for _, line := range strings.Split(string(stdout), "\n") {
		kind, p, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		switch kind {
		case "modified":
			r.Modified = append(r.Modified, p)
		case "missing":
			r.Missing = append(r.Missing, p)
		case "extra":
			r.Extra = append(r.Extra, p)
		case "badlink":
			r.BadLinks = append(r.BadLinks, p)
		}
	}
	return r
}

// Empty reports whether no difference was found.
func (r TreeReport) Empty() bool {
	return len(r.Modified)+len(r.Missing)+len(r.Extra)+len(r.BadLinks) == 0
}

// String summarises the differences, naming the first few files of each kind.
func (r TreeReport) String() string {
	var parts []string
	for _, k := range []struct {
		name  string
		paths []string
	}{{"modified", r.Modified}, {"missing", r.Missing}, {"extra", r.Extra}, {"wrong link", r.BadLinks}} {
		if len(k.paths) == 0 {
			continue
		}
		shown := k.paths
		more := ""
		if len(shown) > 3 {
			shown, more = shown[:3], fmt.Sprintf(", and %d more", len(k.paths)-3)
		}
		parts = append(parts, fmt.Sprintf("%d %s (%s%s)", len(k.paths), k.name, strings.Join(shown, ", "), more))
	}
	return strings.Join(parts, "; ")
}
