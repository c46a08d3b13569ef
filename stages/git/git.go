// Package git asks the git command line about a work tree: which commit a
// revision names, whether the tree is dirty, which files changed between
// two commits. It runs git rather than reading the repository itself, so
// it sees exactly what the developer's git sees (config, worktrees,
// shallow clones).
package git

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// Repo is a directory inside a git work tree.
type Repo struct {
	Dir string
}

// Error is a git command that failed, with what git printed.
type Error struct {
	Args   []string
	Code   int
	Stderr string
	Err    error
}

func (e *Error) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	if msg == "" {
		msg = e.Err.Error()
	}
	return fmt.Sprintf("git %s: %s", strings.Join(e.Args, " "), msg)
}

func (e *Error) Unwrap() error { return e.Err }

// Run runs git with args in the repo's directory and returns its stdout.
func (r Repo) Run(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = r.Dir
	// Never prompt, never page, and keep messages parseable. Take no
	// optional lock (git status refreshing the index): a deploy only
	// reads, and must not make the user's own git commands fail, or leave
	// a stale index.lock when it is stopped.
	cmd.Env = append(cmd.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_PAGER=cat", "LC_ALL=C", "GIT_OPTIONAL_LOCKS=0")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("git %s: %w", strings.Join(args, " "), ctx.Err())
		}
		code := -1
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		return nil, &Error{Args: args, Code: code, Stderr: stderr.String(), Err: err}
	}
	return stdout.Bytes(), nil
}

// ResolveCommit returns the full SHA of the commit rev names.
func (r Repo) ResolveCommit(ctx context.Context, rev string) (string, error) {
	out, err := r.Run(ctx, "rev-parse", "--verify", "--quiet", "--end-of-options", rev+"^{commit}")
	if err != nil {
		var ge *Error
		if errors.As(err, &ge) && ge.Code == 1 {
			return "", fmt.Errorf("%q is not a commit in this repository", rev)
		}
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

// HasCommit reports whether rev names a commit the repository has; false
// after a force-push dropped it or in a shallow clone that lacks it.
func (r Repo) HasCommit(ctx context.Context, rev string) (bool, error) {
	_, err := r.Run(ctx, "cat-file", "-e", "--end-of-options", rev+"^{commit}")
	if err == nil {
		return true, nil
	}
	var ge *Error
	if errors.As(err, &ge) && ge.Code > 0 {
		return false, nil
	}
	return false, err
}

// Prefix is the directory's path relative to the top of the work tree,
// with a trailing slash, or "" at the top.
func (r Repo) Prefix(ctx context.Context) (string, error) {
	out, err := r.Run(ctx, "rev-parse", "--show-prefix")
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

// Change is one path `git status` reports: a tracked file modified,
// added, deleted, renamed or copied (in the index or the work tree), or an
// untracked file.
type Change struct {
	// Path is relative to the top of the work tree; for a rename or copy
	// it is the new path, and From the old one.
	Path string
	From string
	// Index and WorkTree are the X and Y letters of `git status
	// --porcelain`: ' ' unchanged, 'M', 'T', 'A', 'D', 'R', 'C', 'U'
	// (unmerged), and "??" for an untracked file.
	Index, WorkTree byte
}

// Untracked reports whether the path is a file git does not track.
func (c Change) Untracked() bool { return c.Index == '?' }

// Dirty lists the paths under the directory with uncommitted changes,
// untracked files included and ignored files excluded, relative to the top
// of the work tree.
func (r Repo) Dirty(ctx context.Context) ([]Change, error) {
	out, err := r.Run(ctx, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--", ".")
	if err != nil {
		return nil, err
	}
	return parseStatus(out)
}

// parseStatus reads `git status --porcelain=v1 -z`: each entry is "XY
// PATH", NUL-terminated and never quoted; a rename or copy, in the index
// (X) or in the work tree (Y, for a file added with --intent-to-add), is
// followed by its source path as an entry of its own.
func parseStatus(out []byte) ([]Change, error) {
	var changes []Change
	entries := splitZ(out)
	for i := 0; i < len(entries); i++ {
		e := entries[i]
		if len(e) < 4 || e[2] != ' ' {
			return nil, fmt.Errorf("git status: unexpected entry %q", e)
		}
		c := Change{Path: e[3:], Index: e[0], WorkTree: e[1]}
		if isRenameOrCopy(c.Index) || isRenameOrCopy(c.WorkTree) {
			i++
			if i == len(entries) {
				return nil, fmt.Errorf("git status: rename of %q without its source path", c.Path)
			}
			c.From = entries[i]
		}
		changes = append(changes, c)
	}
	return changes, nil
}

func isRenameOrCopy(b byte) bool { return b == 'R' || b == 'C' }

// ChangedFiles lists every file that differs between from and to, relative
// to the top of the work tree. Renames count as a deletion and an
// addition, so both the old and the new path are listed.
func (r Repo) ChangedFiles(ctx context.Context, from, to string) ([]string, error) {
	out, err := r.Run(ctx, "diff", "--name-only", "-z", "--no-renames", "--no-ext-diff", "--end-of-options", from, to, "--")
	if err != nil {
		return nil, err
	}
	return splitZ(out), nil
}

func splitZ(b []byte) []string {
	s := strings.TrimSuffix(string(b), "\x00")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\x00")
}

// Short is a commit's abbreviation for people: its first seven digits.
func Short(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}
