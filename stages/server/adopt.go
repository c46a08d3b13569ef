package server

import (
	"bufio"
	"bytes"
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/stagecoach/stagecoach/stages/remote"
)

// ExitAdoptRefused is TakeOver's exit code for a root it will not take
// over; stderr says why.
const ExitAdoptRefused = 82

// ResultAdopt is the deploy history's entry of an adoption: a live tree
// taken over as a release, which becomes live with no revision, so the
// next deploy is a full one.
const ResultAdopt = "adopt"

// AdoptRevision is the commit part of an adopted release's id: the tree
// was built by no commit Stagecoach knows.
const AdoptRevision = "0000000"

var adoptScript = load("adopt.sh")

// AdoptPath is one path of a live tree: where it goes (a release path, or
// a shared path) and where it lies now (relative to the root, or absolute).
type AdoptPath struct {
	Path string
	Live string
}

// LiveFile is one entry of a tree TakeOver staged, as the server found it.
type LiveFile struct {
	Path   string
	Mode   uint32 // permission bits
	Size   int64
	SHA256 string // regular files
	Link   string // symlinks
}

// AdoptRefusedError is a root TakeOver would not take over: one a deploy
// already uses, a live path that is missing, a shared path in the way.
type AdoptRefusedError struct {
	Root   string
	Reason string
}

func (e *AdoptRefusedError) Error() string { return "adopt " + e.Root + ": " + e.Reason }

// TakeOver stages the live app directories as release id
// (releases/.staging-<id>) and, for each data path, backs it up to
// BackupDir(id) and makes shared/<path> a symlink to where it lies, so
// the running app keeps its files and every release shares them; then it
// lists the staged tree, hashed on the server. It changes nothing on a
// root a deploy already uses, or when a live path is missing or a shared
// path is in the way: that is an *AdoptRefusedError.
func TakeOver(l Layout, id string, app, data []AdoptPath) (Op[[]LiveFile], error) {
	if err := ValidID(id); err != nil {
		return Op[[]LiveFile]{}, err
	}
	args := []string{"take", l.Root, id, strconv.Itoa(ExitAdoptRefused), strconv.Itoa(len(app))}
	for _, a := range app {
		if err := validAdoptPath(a); err != nil {
			return Op[[]LiveFile]{}, err
		}
		args = append(args, a.Path, a.Live)
	}
	for _, d := range data {
		if err := validAdoptPath(d); err != nil {
			return Op[[]LiveFile]{}, err
		}
		args = append(args, d.Path, d.Live, dataTarget(d))
	}
	o := op(adoptScript.cmd("take the live tree over as "+id, args...), ParseLiveTree)
	o.failed = func(res remote.Result, code int, err error) error {
		if code != ExitAdoptRefused {
			return nil
		}
		return &AdoptRefusedError{Root: l.Root, Reason: strings.TrimSpace(string(res.Stderr))}
	}
	return o, nil
}

func validAdoptPath(a AdoptPath) error {
	if err := ValidRelPath(a.Path); err != nil {
		return fmt.Errorf("adopt: %w", err)
	}
	live := strings.TrimPrefix(a.Live, "/")
	if err := ValidRelPath(live); err != nil {
		return fmt.Errorf("adopt %s: live path: %w", a.Path, err)
	}
	return nil
}

// dataTarget is the symlink target from shared/<d.Path> to d.Live:
// relative for a live path under the root, so the root can move.
func dataTarget(d AdoptPath) string {
	if path.IsAbs(d.Live) {
		return d.Live
	}
	return strings.Repeat("../", strings.Count(d.Path, "/")+1) + d.Live
}

// FinishAdopt gives the staged release its name, releases/<id>.
func FinishAdopt(l Layout, id string) (remote.Command, error) {
	if err := ValidID(id); err != nil {
		return remote.Command{}, err
	}
	return adoptScript.cmd("name release "+id, "finish", l.Root, id), nil
}

// WriteReleaseMeta writes release id's manifest and lists (see
// TreeLists), each through a rename.
func WriteReleaseMeta(l Layout, id string, manifest, sums, links []byte) []remote.Command {
	return []remote.Command{
		writeRemoteFile("write the manifest of "+id, l.ManifestPath(id), "644", manifest),
		writeRemoteFile("write the file list of "+id, l.SumsPath(id), "644", sums),
		writeRemoteFile("write the link list of "+id, l.LinksPath(id), "644", links),
	}
}

// ParseLiveTree reads what TakeOver printed: a sha256sum list, "MODE SIZE
// PATH" lines and "PATH -> TARGET" lines, separated by NUL bytes.
func ParseLiveTree(stdout []byte) ([]LiveFile, error) {
	parts := bytes.Split(stdout, []byte{0})
	if len(parts) != 3 {
		return nil, fmt.Errorf("listing the adopted tree: unexpected output %q", remote.Tail(string(stdout), 3))
	}
	sums := map[string]string{}
	var files []LiveFile
	err := lines(parts[0], func(line string) error {
		sum, p, ok := strings.Cut(line, "  ")
		if !ok || !hexSHA.MatchString(sum) {
			return fmt.Errorf("unexpected sha256sum line %q (a file name with a backslash or newline?)", line)
		}
		sums[p] = sum
		return nil
	})
	if err == nil {
		err = lines(parts[1], func(line string) error {
			f := strings.SplitN(line, " ", 3)
			if len(f) != 3 {
				return fmt.Errorf("unexpected file line %q", line)
			}
			mode, err1 := strconv.ParseUint(f[0], 8, 32)
			size, err2 := strconv.ParseInt(f[1], 10, 64)
			sum, ok := sums[f[2]]
			if err1 != nil || err2 != nil || !ok {
				return fmt.Errorf("unexpected file line %q", line)
			}
			files = append(files, LiveFile{Path: f[2], Mode: uint32(mode), Size: size, SHA256: sum})
			return nil
		})
	}
	if err == nil {
		err = lines(parts[2], func(line string) error {
			p, target, ok := strings.Cut(line, " -> ")
			if !ok {
				return fmt.Errorf("unexpected link line %q", line)
			}
			files = append(files, LiveFile{Path: p, Link: target, Mode: 0o777})
			return nil
		})
	}
	if err != nil {
		return nil, fmt.Errorf("listing the adopted tree: %w", err)
	}
	for _, f := range files {
		if err := ValidRelPath(f.Path); err != nil {
			return nil, fmt.Errorf("the adopted tree holds a name stagecoach cannot record: %w; rename it", err)
		}
	}
	if len(sums) != len(files)-countLinks(files) {
		return nil, fmt.Errorf("listing the adopted tree: %d files hashed but %d listed", len(sums), len(files)-countLinks(files))
	}
	return files, nil
}

func countLinks(files []LiveFile) int {
	n := 0
	for _, f := range files {
		if f.Link != "" {
			n++
		}
	}
	return n
}

// lines calls fn with each non-empty line of b.
func lines(b []byte, fn func(string) error) error {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		if sc.Text() == "" {
			continue
		}
		if err := fn(sc.Text()); err != nil {
			return err
		}
	}
	return sc.Err()
}
