// Package remote runs operations on a deploy target. Operations are values
// (Command) built by pure functions elsewhere; a Runner executes them, over
// SSH or on this machine, so the same value can be unit-tested without a
// server and run against either transport.
package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Runner executes operations on one target. Implementations must be safe for
// concurrent use: health checks, lock heartbeats and parallel checks share
// one runner, and its connection.
type Runner interface {
	// Target names the host for logs and errors, e.g. "deploy@web1:22" or "local".
	Target() string
	// Run executes cmd with /bin/sh on the target and waits for it. A non-zero
	// exit status is returned as *ExitError carrying the code and stderr.
	Run(ctx context.Context, cmd Command) (Result, error)
	// Upload streams r into path on the target. The data is written to a
	// temporary name beside path and renamed only when complete, so an
	// interrupted upload never leaves a file where a finished one would be.
	// progress, when non-nil, is called with the number of bytes just sent.
	Upload(ctx context.Context, r io.Reader, path string, progress func(n int)) error
	// ReadFile returns the content of a file on the target.
	ReadFile(ctx context.Context, path string) ([]byte, error)
	// Stats reports how many connections and sessions this runner has
	// opened and how many round trips it made.
	Stats() Stats
	// Close releases the connection.
	Close() error
}

// Feeder is a Runner that can feed data, as it is read, to a script on
// the target, which keeps only what it makes of it (SSH.Feed). It may
// return before the script ended, with wait waiting on the target for
// that end, for the caller to run first in the batch of what follows
// (RunBatch), so that the feed's answer costs no round trip of its own:
// fed then tells how the script went. The caller runs wait and then calls
// fed, whose error, when wait failed too, is the one to report.
type Feeder interface {
	Feed(ctx context.Context, cmd Command, r io.Reader, progress func(n int)) (wait Command, fed func() error, err error)
}

// PatientRunner is a Runner that can hold a command back a little rather
// than open a session for it while its persistent shells are busy
// (SSH.RunPatient).
type PatientRunner interface {
	RunPatient(ctx context.Context, cmd Command, patience time.Duration) (Result, error)
}

// Warmer is a Runner that can start a second persistent shell ahead of
// need (SSH.Warm): before an upload, which takes the idle shell over, so
// that the commands after it find one ready.
type Warmer interface {
	Warm()
}

// Stats counts transport usage so tests and reports can show it.
type Stats struct {
	// Connections counts SSH connections opened: the host's, and each
	// bastion's that this runner opened (a bastion shared by the hosts of
	// a deploy counts once, in the runner that opened it). 0 for the local
	// transport.
	Connections int64
	// Sessions counts SSH sessions opened: one per persistent shell, upload,
	// and command run outside a shell. The local transport counts its
	// operations.
	Sessions int64
	// RoundTrips counts the requests that waited for the server: each
	// session opened and each command sent to a persistent shell. The
	// local transport counts its operations.
	RoundTrips int64
}

// Command is one remote operation as data: a POSIX shell script plus its
// standard streams. Build it with Cmd (argv, quoted) or Script (source).
type Command struct {
	// Desc says what the command does, for logs and error messages.
	Desc string
	// Script is the shell source run by `/bin/sh -c` on the target.
	Script string
	// Inline, when set, is Script for a /bin/sh that is the command's
	// alone already (a persistent shell's child, a batch's subshell): it
	// runs there as it is, where Script would exec one more /bin/sh. A
	// command whose Script is `exec /bin/sh -c SOURCE NAME ARG...` has
	// `set -- ARG...` then SOURCE: each process costs a millisecond or
	// more on a busy host, and a deploy's batches run a dozen scripts.
	Inline string
	// Stdin feeds the command; nil means empty input.
	Stdin io.Reader
	// Stdout and Stderr, when set, receive output as it arrives in addition
	// to the captured copy in Result. Over SSH such a command takes an
	// idle persistent shell over, or runs on a session of its own, as a
	// persistent shell answering requests returns output only at the end.
	Stdout, Stderr io.Writer
	// Public says Script holds nothing secret, so it may travel where the
	// server's other users can read it: on the command line that starts a
	// persistent shell (a process's arguments), sparing the request a
	// round trip of its own. Scripts are otherwise sent on the session.
	Public bool
}

// inline is what runs cmd in a /bin/sh of its own (see Command.Inline).
func (c Command) inline() string {
	if c.Inline != "" {
		return c.Inline
	}
	return c.Script
}

// Cmd builds a Command running argv with every argument shell-quoted.
func Cmd(desc string, argv ...string) Command {
	return Command{Desc: desc, Script: Join(argv...)}
}

// Script builds a Command from shell source.
func Script(desc, source string) Command {
	return Command{Desc: desc, Script: source}
}

// Chain joins commands into one that runs them in one round trip: each
// script in a subshell of its own, in order, stopping at the first that
// fails, whose exit status the chain exits with. At most one of them may
// read stdin; the others read nothing.
func Chain(desc string, cmds ...Command) (Command, error) {
	chain := Command{Desc: desc}
	var b strings.Builder
	for _, c := range cmds {
		input := " </dev/null"
		if c.Stdin != nil {
			if chain.Stdin != nil {
				return Command{}, fmt.Errorf("%s: more than one command reads stdin (%s)", desc, c.Desc)
			}
			chain.Stdin, input = c.Stdin, ""
		}
		fmt.Fprintf(&b, "(\n%s\n)%s || exit $?\n", c.Script, input)
	}
	chain.Script = b.String()
	return chain, nil
}

// Result is what a finished command produced.
type Result struct {
	Stdout   []byte
	Stderr   []byte
	ExitCode int
	Duration time.Duration
}

// ExitError is a command that ran and exited non-zero.
type ExitError struct {
	Target string
	Desc   string
	Code   int
	Stderr string
}

func (e *ExitError) Error() string {
	msg := fmt.Sprintf("%s on %s: exit status %d", e.Desc, e.Target, e.Code)
	if tail := Tail(e.Stderr, 10); tail != "" {
		msg += ": " + tail
	}
	return msg
}

// ErrConnectionLost is wrapped by every error of an operation that failed
// because the connection to the host broke under it: the session could not
// be opened, it ended without an exit status, the channel failed, or the
// keepalive went unanswered. Whether the command ran is then unknown.
var ErrConnectionLost = errors.New("connection lost")

// IsConnectionLost reports whether err means the transport to the host
// broke, so a new connection may succeed where this one failed. A command
// that ran and exited non-zero (*ExitError) is not a lost connection, and
// neither is cancellation: an error that also wraps a context error is
// reported as not lost, because reconnecting would defeat the cancel.
func IsConnectionLost(err error) bool {
	return errors.Is(err, ErrConnectionLost) &&
		!errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// Quote returns s quoted for POSIX sh so that it is passed as one word.
func Quote(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=@%+,", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Join quotes every argument and joins them into one shell command line.
func Join(argv ...string) string {
	quoted := make([]string, len(argv))
	for i, a := range argv {
		quoted[i] = Quote(a)
	}
	return strings.Join(quoted, " ")
}

// Tail returns the last n non-empty lines of s, joined by newlines.
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}
