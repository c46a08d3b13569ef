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

// Exit codes of the swap scripts.
const (
	ExitTreeMismatch  = 80 // StageRelease, VerifyRelease: stdout lists the differences (ParseTreeReport)
	ExitUnsafeArchive = 81 // StageRelease: an archive entry is absolute, has "..", escapes by symlink or is not a file, dir or symlink
	ExitSwitchFailed  = 82 // Switch: current does not point where it should after the rename
)

// fill replaces {{name}} placeholders in a script template. Values are
// inserted as they are: quote them first.
func fill(tmpl string, kv ...string) string {
	return strings.NewReplacer(func() []string {
		pairs := make([]string, 0, len(kv))
		for i := 0; i+1 < len(kv); i += 2 {
			pairs = append(pairs, "{{"+kv[i]+"}}", kv[i+1])
		}
		return pairs
	}()...).Replace(tmpl)
}

var q = remote.Quote

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

// checkArchiveAWK reads `tar -tzv --numeric-owner --quoting-style=escape`
// and prints one line per entry that is not a plain file, directory or
// symlink, has an absolute name or a ".." component, or is a symlink whose
// target leaves the release. GNU tar refuses most of these by itself; this
// is a second fence, the archive's SHA-256 being the real guarantee.
const checkArchiveAWK = `
function bad(why, name) { print "unsafe archive entry " name ": " why; n++ }
{
  t = substr($0, 1, 1); rest = $0
  sub(/^[^ ]+ +[^ ]+ +[^ ]+ +[^ ]+ +[^ ]+ /, "", rest)
  name = rest; target = ""
  if (t == "l") { i = index(rest, " -> "); name = substr(rest, 1, i - 1); target = substr(rest, i + 4) }
  if (t != "-" && t != "d" && t != "l") { bad("type " t " is not a file, directory or symlink", name); next }
  if (substr(name, 1, 1) == "/") { bad("absolute name", name); next }
  k = split(name, c, "/"); depth = 0
  for (j = 1; j <= k; j++) {
    if (c[j] == "..") { bad("\"..\" in name", name); next }
    if (c[j] != "" && c[j] != ".") depth++
  }
  if (t != "l") next
  if (substr(target, 1, 1) == "/") { bad("symlink to absolute path " target, name); next }
  depth--
  k = split(target, c, "/")
  for (j = 1; j <= k; j++) {
    if (c[j] == "..") depth--; else if (c[j] != "" && c[j] != ".") depth++
    if (depth < 0) { bad("symlink " target " leaves the release", name); next }
  }
}
END { exit n > 0 }
`

// filterAWK drops lines naming a path listed in $SC_SKIP (newline
// separated) or below it. kind says where the path is in a line: "sums"
// (sha256sum list), "links" (before " -> ") or "plain".
const filterAWK = `
BEGIN { ns = split(ENVIRON["SC_SKIP"], skip, "\n") }
{
  p = $0
  if (kind == "sums") p = substr($0, 67)
  else if (kind == "links") { i = index($0, " -> "); if (i) p = substr($0, 1, i - 1) }
  for (j = 1; j <= ns; j++) if (skip[j] != "" && (p == skip[j] || index(p, skip[j] "/") == 1)) next
  print
}
`

// hashCheckSh defines hash_check: `sha256sum -c` of $tmp/sums into
// $tmp/check (failures only, sorted), in $jobs processes (default: the
// server's CPU count). The list is dealt round-robin into four parts per
// process so that a few large files do not leave one process hashing alone.
// Exits non-zero when any file failed or could not be read.
const hashCheckSh = `hash_check() {
  n=${jobs:-}; [ -n "$n" ] || n=$(nproc 2>/dev/null || echo 1)
  [ "$(wc -l < "$tmp/sums")" -ge 64 ] || n=1
  if [ "$n" -le 1 ]; then sha256sum -c --quiet --strict "$tmp/sums" > "$tmp/check" 2>/dev/null; return; fi
  split -n r/$((n * 4)) "$tmp/sums" "$tmp/part."
  hrc=0
  for p in "$tmp"/part.*; do [ -s "$p" ] && printf '%s\n' "$p"; done |
    xargs -r -d '\n' -P "$n" -n 1 sh -c 'sha256sum -c --quiet --strict "$1" > "$1.out" 2>/dev/null' sh || hrc=$?
  cat "$tmp"/part.*.out 2>/dev/null | LC_ALL=C sort > "$tmp/check"
  rm -f "$tmp"/part.*
  return "$hrc"
}
`

// verifyTreeSh defines verify_tree DIR: compare DIR with $sums and $links,
// using scratch directory $tmp, and print one line per difference:
// "modified P", "missing P", "extra P" or "badlink P". Paths in $SC_SKIP
// (shared links) are left out; extra regular files are allowed below
// $SC_EXTRA_OK (carried assets). Returns 1 when something differs, 2 when
// the check could not run. Hashing runs in parallel (hashCheckSh).
const verifyTreeSh = hashCheckSh + `verify_tree() (
  cd "$1" || exit 2
  [ -f "$sums" ] || { echo "manifest list $sums is missing" >&2; exit 2; }
  awk -v kind=sums "$filter_awk" "$sums" > "$tmp/sums"
  if [ -f "$links" ]; then awk -v kind=links "$filter_awk" "$links"; fi | LC_ALL=C sort > "$tmp/links"
  rc=0; : > "$tmp/check"
  if [ -s "$tmp/sums" ]; then hash_check || rc=$?; fi
  awk '/: FAILED open or read$/ { sub(/: FAILED open or read$/, ""); print "missing " $0; next }
       /: FAILED$/ { sub(/: FAILED$/, ""); print "modified " $0 }' "$tmp/check" > "$tmp/report"
  if [ "$rc" -ne 0 ] && [ ! -s "$tmp/report" ]; then echo "sha256sum could not check the list $sums" >&2; exit 2; fi
  find . -mindepth 1 \( -type f -o -type l \) -printf '%P\n' | awk -v kind=plain "$filter_awk" | LC_ALL=C sort > "$tmp/have"
  { cut -c67- "$tmp/sums"; sed 's/ -> .*//' "$tmp/links"; } | LC_ALL=C sort > "$tmp/want"
  LC_ALL=C comm -23 "$tmp/have" "$tmp/want" | awk -v ok="$SC_EXTRA_OK" 'ok == "" || index($0, ok "/") != 1 { print "extra " $0 }' >> "$tmp/report"
  find . -mindepth 1 ! -type f ! -type l ! -type d -printf 'extra %P\n' >> "$tmp/report"
  find . -mindepth 1 -type l -printf '%P -> %l\n' | awk -v kind=links "$filter_awk" | LC_ALL=C sort > "$tmp/havelinks"
  LC_ALL=C comm -13 "$tmp/havelinks" "$tmp/links" | sed 's/ -> .*//; s/^/badlink /' >> "$tmp/report"
  cat "$tmp/report"
  [ ! -s "$tmp/report" ]
)
`

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
	Archive string     // server path of the verified archive; default IncomingPath(ID)
	Reuse   []LinkPair // regular files only
}

// reuseLinkSh runs once per xargs batch in the previous release: plain
// arguments are linked to the same path with one cp -l --parents for the
// whole batch; "from<newline>to" arguments (moved files, rare) one by one,
// after which the plain ones are collected (a quadratic loop in sh, so it
// is skipped when the batch has no moved file).
const reuseLinkSh = `d=$1; shift
case "$*" in *"
"*) ;; *) exec cp -l --parents -t "$d" -- "$@";; esac
n=$#
for a do
  case $a in
  *"
"*) f=${a%%"
"*}; t=${a#*"
"}
    case $t in */*) mkdir -p -- "$d/${t%/*}";; esac
    ln -- "$f" "$d/$t";;
  *) set -- "$@" "$a";;
  esac
done
shift $n
[ $# -eq 0 ] || exec cp -l --parents -t "$d" -- "$@"
`

// StageRelease assembles release ID in releases/.staging-<id> (removing a
// leftover first): it hard-links the reused files from the previous
// release (the list is fed on stdin, NUL-separated, and linked in a few
// processes), extracts the archive with GNU tar while listing it, checks
// the listing for unsafe entries, and verifies the whole tree against SumsPath and LinksPath (uploaded before)
// — every file's SHA-256, no file missing, no file extra. Only then is the
// directory renamed to releases/<id>. Any failure removes the staging
// directory; current is never touched. Extracted files get the time of
// extraction as mtime, so web servers see changed files as new. Exit
// codes: ExitUnsafeArchive, ExitTreeMismatch (stdout as ParseTreeReport
// reads it), 1 otherwise (IsDiskFull tells a full disk).
func StageRelease(l Layout, s StageSpec) (remote.Command, error) {
	if err := ValidID(s.ID); err != nil {
		return remote.Command{}, err
	}
	if s.PrevID != "" {
		if err := ValidID(s.PrevID); err != nil {
			return remote.Command{}, err
		}
	}
	if len(s.Reuse) > 0 && s.PrevID == "" {
		return remote.Command{}, errors.New("stage release: files to reuse but no previous release")
	}
	archive := s.Archive
	if archive == "" {
		archive = l.IncomingPath(s.ID)
	}
	var stdin bytes.Buffer
	for _, p := range s.Reuse {
		for _, x := range []string{p.From, p.To} {
			if err := ValidRelPath(x); err != nil {
				return remote.Command{}, fmt.Errorf("stage release %s: reuse: %w", s.ID, err)
			}
		}
		if p.From == p.To {
			stdin.WriteString(p.To)
		} else {
			stdin.WriteString(p.From + "\n" + p.To)
		}
		stdin.WriteByte(0)
	}
	reuse := ": no files to reuse\n"
	if len(s.Reuse) > 0 {
		reuse = "(cd " + q(l.ReleaseDir(s.PrevID)) + " && xargs -0 -r sh -c " + q(reuseLinkSh) + " sh \"$st\")\n"
	}
	script := fill(`set -eu
umask 022
st={{st}}; final={{final}}; archive={{archive}}
sums={{sums}}; links={{links}}
filter_awk={{filter}}
SC_SKIP=; SC_EXTRA_OK=; export SC_SKIP
if [ -e "$final" ]; then echo "release {{id}} already exists on the server" >&2; exit 1; fi
rm -rf "$st"
mkdir -p {{meta}}
tmp=$(mktemp -d {{meta}}/stage.XXXXXX)
trap 'rc=$?; rm -rf "$tmp"; [ "$rc" -eq 0 ] || rm -rf "$st"; exit "$rc"' EXIT
trap 'exit 130' INT TERM HUP
`+verifyTreeSh+`
mkdir -p "$st"
{{reuse}}# One pass: -vv lists every entry as it is extracted, in the format of
# tar -tv, and the listing is checked before the tree is verified and
# renamed into place. GNU tar itself never writes through a symlink it has
# just extracted, so an escaping entry cannot reach outside the staging
# directory meanwhile. --touch: the archive's fixed mtimes would give a
# changed file of the same size the same ETag (nginx derives it from mtime
# and size) and a stale 304; hard-linked reused files keep their mtime, as
# their content is unchanged.
trc=0
tar -xzvv --numeric-owner --quoting-style=escape -f "$archive" -C "$st" \
  --no-same-owner --same-permissions --delay-directory-restore --touch > "$tmp/listing" || trc=$?
awk {{checkawk}} "$tmp/listing" >&2 || exit {{unsafe}}
[ "$trc" -eq 0 ] || exit "$trc"
verify_tree "$st" && vrc=0 || vrc=$?
if [ "$vrc" -eq 1 ]; then exit {{mismatch}}; elif [ "$vrc" -ne 0 ]; then exit 1; fi
mv -T "$st" "$final"
`,
		"st", q(l.StagingDir(s.ID)), "final", q(l.ReleaseDir(s.ID)), "archive", q(archive),
		"sums", q(l.SumsPath(s.ID)), "links", q(l.LinksPath(s.ID)), "filter", q(filterAWK),
		"id", s.ID, "meta", q(l.MetaDir()), "checkawk", q(checkArchiveAWK),
		"unsafe", strconv.Itoa(ExitUnsafeArchive), "reuse", reuse, "mismatch", strconv.Itoa(ExitTreeMismatch))
	return remote.Command{Desc: "stage release " + s.ID, Script: script, Stdin: &stdin}, nil
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
// StageRelease did, allowing what LinkShared and CarryAssets changed. It
// exits ExitTreeMismatch with ParseTreeReport's input on stdout when the
// tree differs. Checking current: read it with ReadCurrent first.
func VerifyRelease(l Layout, id string, v VerifySpec) (remote.Command, error) {
	if err := ValidID(id); err != nil {
		return remote.Command{}, err
	}
	for _, p := range append(append([]string(nil), v.Shared...), nonEmpty(v.AssetsDir)...) {
		if err := ValidRelPath(p); err != nil {
			return remote.Command{}, fmt.Errorf("verify release %s: %w", id, err)
		}
	}
	var sharedChecks strings.Builder
	for _, p := range v.Shared {
		fmt.Fprintf(&sharedChecks, "[ \"$(readlink %s)\" = %s ] || echo %s >> \"$tmp/shared\"\n",
			q(l.ReleaseDir(id)+"/"+p), q(sharedTarget(p)), q("badlink "+p))
	}
	script := fill(`set -u
sums={{sums}}; links={{links}}
filter_awk={{filter}}
SC_SKIP={{skip}}; SC_EXTRA_OK={{extra}}; export SC_SKIP
jobs={{jobs}}
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
`+verifyTreeSh+`: > "$tmp/shared"
{{shared}}verify_tree {{dir}}; rc=$?
cat "$tmp/shared"
[ "$rc" -le 1 ] || exit "$rc"
if [ "$rc" -eq 1 ] || [ -s "$tmp/shared" ]; then exit {{mismatch}}; fi
`, "sums", q(l.SumsPath(id)), "links", q(l.LinksPath(id)), "filter", q(filterAWK),
		"skip", q(strings.Join(v.Shared, "\n")), "extra", q(v.AssetsDir), "shared", sharedChecks.String(),
		"dir", q(l.ReleaseDir(id)), "mismatch", strconv.Itoa(ExitTreeMismatch), "jobs", jobsArg(v.Jobs))
	return remote.Command{Desc: "verify release " + id, Script: script}, nil
}

// jobsArg is the shell value of a process count: empty for "one per CPU".
func jobsArg(n int) string {
	if n <= 0 {
		return "''"
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
	var b strings.Builder
	b.WriteString("set -e\n")
	for _, p := range paths {
		if err := ValidRelPath(p); err != nil {
			return remote.Command{}, fmt.Errorf("link shared paths of %s: %w", id, err)
		}
		r, s := l.ReleaseDir(id)+"/"+p, l.SharedDir()+"/"+p
		b.WriteString(fill(`r={{r}}; s={{s}}
if [ ! -e "$s" ] && [ ! -L "$s" ]; then
  mkdir -p {{sdir}}
  if [ -e "$r" ] || [ -L "$r" ]; then mv -T "$r" "$s"; else mkdir -p "$s"; fi
fi
rm -rf "$r"
mkdir -p {{rdir}}
ln -s {{target}} "$r"
`, "r", q(r), "s", q(s), "sdir", q(parent(s)), "rdir", q(parent(r)), "target", q(sharedTarget(p))))
	}
	return remote.Script("link shared paths into "+id, b.String()), nil
}

func parent(p string) string {
	if i := strings.LastIndex(p, "/"); i > 0 {
		return p[:i]
	}
	return "/"
}

// carrySh links the listed files (release-relative, one per argument) that
// still exist into the release $1 without replacing any there. The existence
// test is a shell builtin, so a batch costs one cp. coreutils 9.2 and later
// want --update=none where older ones only know -n.
const carrySh = `d=$1; shift; n=$#
for f do [ -f "$f" ] && set -- "$@" "$f"; done
shift $n
[ $# -eq 0 ] && exit 0
cp -l --parents --update=none -t "$d" -- "$@" 2>/dev/null || cp -l --parents -n -t "$d" -- "$@"
`

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
	var b strings.Builder
	b.WriteString("set -e\n")
	for _, prev := range prevIDs {
		if err := ValidID(prev); err != nil {
			return remote.Command{}, fmt.Errorf("carry assets: %w", err)
		}
		b.WriteString(fill(`if [ -d {{prev}} ] && [ -f {{sums}} ]; then
  cd {{prev}}
  awk -v d={{dir}} 'index(substr($0, 67), d "/") == 1 { print substr($0, 67) }' {{sums}} | xargs -r -d '\n' sh -c {{carry}} sh {{new}}
fi
`, "prev", q(l.ReleaseDir(prev)), "sums", q(l.SumsPath(prev)), "dir", q(dir), "carry", q(carrySh), "new", q(l.ReleaseDir(id))))
	}
	return remote.Script("carry assets into "+id, b.String()), nil
}

// BackupFiles copies files (root-relative, e.g. shared/data/app.sqlite3)
// into .stagecoach/backups/<id>/ before migrations. A SQLite database is
// copied with the sqlite3 CLI's online .backup when the server has it (a
// consistent copy even while the app writes); otherwise the file and its
// -wal and -shm siblings are copied. A file that does not exist is recorded
// as absent, so RestoreFiles can put that state back too.
func BackupFiles(l Layout, id string, files []string) (remote.Command, error) {
	if err := ValidID(id); err != nil {
		return remote.Command{}, err
	}
	var b strings.Builder
	b.WriteString("set -e\numask 077\n")
	for i, f := range files {
		if err := ValidRelPath(f); err != nil {
			return remote.Command{}, fmt.Errorf("back up files for %s: %w", id, err)
		}
		dst := l.BackupDir(id) + "/" + f
		tmpName := ".stagecoach-backup-" + strconv.Itoa(i) + ".tmp"
		b.WriteString(fill(`src={{src}}; dst={{dst}}
mkdir -p {{dir}}
rm -f "$dst" "$dst.absent" "$dst-wal" "$dst-shm"
if [ ! -e "$src" ]; then
  : > "$dst.absent"
elif command -v sqlite3 >/dev/null 2>&1 && [ "$(head -c 15 "$src")" = "SQLite format 3" ]; then
  (cd {{dir}} && rm -f {{tmp}} && sqlite3 "$src" ".backup {{tmp}}")
  mv -f {{dir}}/{{tmp}} "$dst"
else
  cp -p "$src" "$dst"
  for x in -wal -shm; do
    if [ -e "$src$x" ]; then cp -p "$src$x" "$dst$x"; fi
  done
fi
`, "src", q(l.Root+"/"+f), "dst", q(dst), "dir", q(parent(dst)), "tmp", tmpName))
	}
	return remote.Script("back up files before migrating "+id, b.String()), nil
}

// RestoreFiles puts back what BackupFiles saved for release id: each file
// replaced by rename, stale -wal/-shm siblings removed (they would corrupt
// the restored database). A file recorded as absent is moved aside to
// <file>.before-rollback. Stop or restart the services using the files
// around it.
func RestoreFiles(l Layout, id string, files []string) (remote.Command, error) {
	if err := ValidID(id); err != nil {
		return remote.Command{}, err
	}
	var b strings.Builder
	b.WriteString("set -e\n")
	for _, f := range files {
		if err := ValidRelPath(f); err != nil {
			return remote.Command{}, fmt.Errorf("restore files of %s: %w", id, err)
		}
		b.WriteString(fill(`src={{src}}; dst={{dst}}
if [ -e "$dst" ]; then
  mkdir -p {{dir}}
  cp -p "$dst" "$src.stagecoach-restore"
  for x in -wal -shm; do
    rm -f "$src$x"
    if [ -e "$dst$x" ]; then cp -p "$dst$x" "$src$x"; fi
  done
  mv -f "$src.stagecoach-restore" "$src"
elif [ -e "$dst.absent" ]; then
  for x in "" -wal -shm; do
    if [ -e "$src$x" ]; then mv -f "$src$x" "$src$x.before-rollback"; fi
  done
else
  echo "no backup of {{name}} for release {{id}}" >&2
  exit 1
fi
`, "src", q(l.Root+"/"+f), "dst", q(l.BackupDir(id)+"/"+f), "dir", q(parent(l.Root+"/"+f)),
			"name", q(f), "id", id))
	}
	return remote.Script("restore files backed up before "+id, b.String()), nil
}

// RunIn runs shellCmd in release id's directory with shared/.env exported
// (when present) and STAGECOACH_RELEASE and STAGECOACH_ROOT set: used for
// migrations and the "command" service manager.
func RunIn(l Layout, id, desc, shellCmd string) (remote.Command, error) {
	if err := ValidID(id); err != nil {
		return remote.Command{}, err
	}
	return remote.Script(desc, fill(`cd {{dir}} || exit 1
if [ -f {{env}} ]; then set -a; . {{env}}; set +a; fi
STAGECOACH_RELEASE={{id}}; STAGECOACH_ROOT={{root}}; export STAGECOACH_RELEASE STAGECOACH_ROOT
`, "dir", q(l.ReleaseDir(id)), "env", q(l.EnvPath()), "id", id, "root", q(l.Root))+shellCmd+"\n"), nil
}

// Switch points current at release id with one rename(2): a temporary
// symlink is created beside current and moved over it (GNU mv -T), so
// current always resolves, to the old release or the new one. It refuses a
// release that does not exist and exits ExitSwitchFailed when current does
// not read back as releases/<id>. It prints the new target.
func Switch(l Layout, id string) (remote.Command, error) {
	if err := ValidID(id); err != nil {
		return remote.Command{}, err
	}
	return remote.Script("switch current to "+id, fill(`set -e
cd {{root}}
if [ ! -d releases/{{id}} ]; then echo "release {{id}} does not exist on the server" >&2; exit 1; fi
ln -sfn releases/{{id}} .current-{{id}}.tmp
mv -Tf .current-{{id}}.tmp current
t=$(readlink current)
if [ "$t" != releases/{{id}} ]; then echo "current points at $t after the switch, not releases/{{id}}" >&2; exit {{code}}; fi
echo "$t"
`, "root", q(l.Root), "id", id, "code", strconv.Itoa(ExitSwitchFailed))), nil
}

// ReadCurrent prints current's target, or nothing when there is no
// current yet. Parse with ParseCurrent.
func ReadCurrent(l Layout) remote.Command {
	return remote.Script("read current release", "readlink "+q(l.CurrentLink())+" || true\n")
}

// ParseCurrent returns the release id current points at, "" when none.
func ParseCurrent(stdout []byte) (string, error) {
	t := strings.TrimSpace(string(stdout))
	if t == "" {
		return "", nil
	}
	id, ok := strings.CutPrefix(t, "releases/")
	if !ok || ValidID(id) != nil {
		return "", fmt.Errorf("current points at %q, not at a release", t)
	}
	return id, nil
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// FormatEnv renders variables as shared/.env: sorted KEY='value' lines that
// sh can source (RunIn does). WriteEnv puts it on the server.
func FormatEnv(vars map[string]string) ([]byte, error) {
	keys := make([]string, 0, len(vars))
	for k := range vars {
		if !envName.MatchString(k) {
			return nil, fmt.Errorf("environment variable name %q is not a valid shell name", k)
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s\n", k, q(vars[k]))
	}
	return b.Bytes(), nil
}

// WriteEnv replaces shared/.env with content (FormatEnv's), in one round
// trip: the content comes on stdin into a file created owner-only (umask
// 077, so the secrets are never readable by others, not even for a moment)
// and renamed over the old one.
func WriteEnv(l Layout, content []byte) remote.Command {
	return remote.Command{Desc: "write shared/.env", Stdin: bytes.NewReader(content), Script: fill(`set -e
umask 077
mkdir -p {{shared}}
tmp={{env}}.tmp.$$
trap 'rm -f "$tmp"' EXIT
cat > "$tmp"
chmod 600 "$tmp"
mv -f "$tmp" {{env}}
`, "shared", q(l.SharedDir()), "env", q(l.EnvPath()))}
}
