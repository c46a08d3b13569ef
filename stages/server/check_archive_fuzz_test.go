package server

import (
	"bytes"
	"errors"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// listingFields is what check_archive.awk strips from a listing line
// before the name: the mode, owner/group, size, date and time columns.
var listingFields = regexp.MustCompile(`^[^ ]+ +[^ ]+ +[^ ]+ +[^ ]+ +[^ ]+ `)

// checkListing is check_archive.awk in Go, written from its rules rather
// than from its code: it returns what the awk prints (one line per unsafe
// entry) and whether it would exit 1. An entry is unsafe when its type is
// not -, d or l; its name is absolute or has a ".." component; it is a
// symlink whose line cannot be split unambiguously into name and target
// (no " -> ", or more than one); or a symlink whose target is absolute or
// climbs above the release root from the link's directory at any point.
func checkListing(listing []byte) (string, bool) {
	var out strings.Builder
	bad := func(why, name string) { out.WriteString("unsafe archive entry " + name + ": " + why + "\n") }
	lines := strings.Split(string(listing), "\n")
	if lines[len(lines)-1] == "" { // awk has no record after a final newline
		lines = lines[:len(lines)-1]
	}
	for _, line := range lines {
		typ := ""
		if line != "" {
			typ = line[:1]
		}
		rest := line
		if loc := listingFields.FindStringIndex(line); loc != nil {
			rest = line[loc[1]:]
		}
		name, target, arrows := rest, "", 0
		if typ == "l" {
			arrows = strings.Count(rest, " -> ")
			if n, t, ok := strings.Cut(rest, " -> "); ok {
				name, target = n, t
			} else {
				name = ""
			}
		}
		switch {
		case typ != "-" && typ != "d" && typ != "l":
			bad("type "+typ+" is not a file, directory or symlink", name)
			continue
		case typ == "l" && arrows != 1:
			bad(`symlink line has no single " -> " between name and target`, rest)
			continue
		case strings.HasPrefix(name, "/"):
			bad("absolute name", name)
			continue
		}
		depth, climbs := 0, false
		for _, c := range strings.Split(name, "/") {
			switch c {
			case "..":
				climbs = true
			case "", ".":
			default:
				depth++
			}
		}
		if climbs {
			bad(`".." in name`, name)
			continue
		}
		if typ != "l" {
			continue
		}
		if strings.HasPrefix(target, "/") {
			bad("symlink to absolute path "+target, name)
			continue
		}
		depth-- // the link's own directory
		if target == "" {
			continue // awk's split of "" has no elements to check
		}
		for _, c := range strings.Split(target, "/") {
			switch c {
			case "..":
				depth--
			case "", ".":
			default:
				depth++
			}
			if depth < 0 {
				bad("symlink "+target+" leaves the release", name)
				break
			}
		}
	}
	return out.String(), out.Len() > 0
}

// runCheckArchive runs the real check_archive.awk on listing, as
// stage_release.sh does, and returns what it printed and whether it
// exited 1.
func runCheckArchive(t *testing.T, listing []byte) (string, bool) {
	t.Helper()
	cmd := exec.Command("awk", checkArchiveAWK.src)
	cmd.Env = []string{"LC_ALL=C", "PATH=/usr/bin:/bin"}
	cmd.Stdin = bytes.NewReader(listing)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return stdout.String(), false
	case errors.As(err, &ee) && ee.ExitCode() == 1 && stderr.Len() == 0:
		return stdout.String(), true
	}
	t.Fatalf("awk: %v\nstderr: %s", err, stderr.Bytes())
	return "", false
}

// FuzzCheckArchive drives check_archive.awk through awk with listing lines
// and checks that it agrees with checkListing on every input: the same
// entries refused for the same reasons, the same exit status. The seeds
// are GNU tar's -tzv and -xvv listings of real release archives and of a
// hostile one (escaping names and links, devices, a fifo, a hard link).
func FuzzCheckArchive(f *testing.F) {
	f.Add([]byte("-rw-r--r-- 0/0               5 2000-01-01 00:00 frontend/index.html\n"))
	f.Add([]byte("lrwxrwxrwx 0/0               0 2000-01-01 00:00 web/up -> ../..\n"))
	f.Fuzz(func(t *testing.T, listing []byte) {
		if len(listing) > 4096 {
			return // long listings only slow the awk runs down
		}
		gotOut, gotBad := runCheckArchive(t, listing)
		wantOut, wantBad := checkListing(listing)
		if gotOut != wantOut || gotBad != wantBad {
			t.Fatalf("check_archive.awk and the Go checker disagree on\n%q\nawk (exit 1: %v):\n%s\nGo (exit 1: %v):\n%s",
				listing, gotBad, gotOut, wantBad, wantOut)
		}
	})
}

// TestCheckArchiveRefusesAmbiguousSymlinks: tar does not escape " -> " in
// a listing, so "a -> b -> ../../x" was read as the link a to
// "b -> ../../x", which stays inside, while the archive could hold the
// link "a -> b" to ../../x, which does not. Such lines, and a symlink line
// with no arrow, are refused.
func TestCheckArchiveRefusesAmbiguousSymlinks(t *testing.T) {
	for _, line := range []string{
		"lrwxrwxrwx 0/0               0 2026-12-01 00:00 web/a -> b -> ../../x\n",
		"lrwxrwxrwx 0/0               0 2026-12-01 00:00 web/l13 -> c -> ../../x\n",
		"lrwxrwxrwx 0/0               0 2026-12-01 00:00 web/l\n",
	} {
		out, bad := runCheckArchive(t, []byte(line))
		if !bad || !strings.Contains(out, `no single " -> "`) {
			t.Errorf("%q: exit 1 %v, %q", line, bad, out)
		}
	}
	if out, bad := runCheckArchive(t, []byte("lrwxrwxrwx 0/0               0 2026-12-01 00:00 web/app.js -> assets/app-11aa.js\n")); bad {
		t.Errorf("a plain symlink refused: %s", out)
	}
}
