package server

import (
	"bytes"
	"fmt"
	"sort"
	"strings"

	"github.com/stagecoach/stagecoach/stages/remote"
)

// Foreign is what a first deploy found on a root it has never used: the
// top-level entries Stagecoach does not create there (it creates
// releases/, current, shared/ and .stagecoach/) and the database files
// outside shared/. Both are empty on a root a deploy or an adoption used.
type Foreign struct {
	Entries   []string // top-level names, sorted
	Databases []string // paths relative to the root, sorted
}

var readForeignScript = load("read_foreign.sh")

// ReadForeign looks for a live tree Stagecoach did not create on a root no
// deploy has used yet: databases are the paths, relative to the root,
// where the app's database files would be had it run from plain
// directories (see OutsideShared). Run it in the round trip that takes
// the deploy lock; Foreign.Refusal decides.
func ReadForeign(l Layout, databases []string) Op[Foreign] {
	return op(readForeignScript.public("look for files not made by stagecoach", append([]string{l.Root}, databases...)...), ParseForeign)
}

// ParseForeign reads ReadForeign's output.
func ParseForeign(stdout []byte) (Foreign, error) {
	var f Foreign
	for _, item := range bytes.Split(stdout, []byte{0}) {
		if len(item) == 0 {
			continue
		}
		kind, name, ok := strings.Cut(string(item), " ")
		switch {
		case ok && kind == "entry":
			f.Entries = append(f.Entries, name)
		case ok && kind == "database":
			f.Databases = append(f.Databases, name)
		default:
			return Foreign{}, fmt.Errorf("looking for files not made by stagecoach: unexpected output %q", remote.Tail(string(stdout), 3))
		}
	}
	sort.Strings(f.Entries)
	sort.Strings(f.Databases)
	return f, nil
}

// OutsideShared maps the database paths of the config (migrations.backup,
// relative to the root, e.g. shared/data/app.sqlite3) to where those
// files lie in a tree served from plain directories: the same path
// without shared/ (data/app.sqlite3). Paths not under shared/ are left
// out: there a first deploy finds them as top-level entries anyway.
func OutsideShared(backup []string) []string {
	var out []string
	for _, p := range backup {
		if rest, ok := strings.CutPrefix(p, "shared/"); ok && rest != "" {
			out = append(out, rest)
		}
	}
	return out
}

// Refusal is the error of a first deploy onto a root holding f: nil when
// f is empty.
func (f Foreign) Refusal(root string) error {
	if len(f.Entries) == 0 && len(f.Databases) == 0 {
		return nil
	}
	return &ForeignTreeError{Root: root, Entries: f.Entries, Databases: f.Databases}
}

// ForeignTreeError refuses a first deploy onto a root that already holds
// files Stagecoach did not create, such as an app served from plain
// directories, or a database outside shared/: deploying beside them would
// start the app on a new, empty database while the old tree goes on
// existing unseen and is no rollback target. mage adopt takes such a tree
// over instead.
type ForeignTreeError struct {
	Root      string
	Entries   []string // top-level entries Stagecoach did not create
	Databases []string // database files outside shared/, relative to Root
}

func (e *ForeignTreeError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s holds files stagecoach did not create", e.Root)
	if len(e.Entries) > 0 {
		fmt.Fprintf(&b, " (%s)", list(e.Entries, 8))
	}
	if len(e.Databases) > 0 {
		fmt.Fprintf(&b, " and a database outside shared/ (%s)", list(e.Databases, 8))
	}
	b.WriteString(": a first deploy would run beside them, on an empty database in shared/; " +
		"take the live tree over with `mage adopt` (describe it under the environment's adopt: block), " +
		"or move those files out of the root")
	return b.String()
}

// list joins names, at most max of them, saying how many more there are.
func list(names []string, max int) string {
	if len(names) <= max {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:max], ", "), len(names)-max)
}
