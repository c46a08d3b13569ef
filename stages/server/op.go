package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/stagecoach/stagecoach/stages/remote"
)

// Op is one remote operation as data: the command to run and the decoder
// of its outcome, built together by one function. The decoder turns what
// the command printed into T, and a failure the script reports by its
// exit code into a typed error, so no caller parses output or compares
// exit codes.
type Op[T any] struct {
	Cmd    remote.Command
	decode func(res remote.Result) (T, error)
	// failed maps a script's own exit codes to typed errors.
	failed func(res remote.Result, code int, err error) error
}

// Runner runs commands: a remote.Runner, or a fleet host that logs them.
type Runner interface {
	Run(ctx context.Context, cmd remote.Command) (remote.Result, error)
}

// Run executes op on r and decodes its outcome.
func Run[T any](ctx context.Context, r Runner, op Op[T]) (T, error) {
	res, err := r.Run(ctx, op.Cmd)
	return op.Decode(res, err)
}

// Decode turns the result of running op.Cmd into op's value or typed
// error. Errors the decoder does not know (the transport's, a plain
// failure) are returned as they are.
func (op Op[T]) Decode(res remote.Result, err error) (T, error) {
	var zero T
	if err != nil {
		var ee *remote.ExitError
		if op.failed != nil && errors.As(err, &ee) {
			if typed := op.failed(res, ee.Code, err); typed != nil {
				return zero, typed
			}
		}
		return zero, err
	}
	if op.decode == nil {
		return zero, nil
	}
	return op.decode(res)
}

// op builds an Op whose value is decoded from stdout by parse.
func op[T any](cmd remote.Command, parse func(stdout []byte) (T, error)) Op[T] {
	return Op[T]{Cmd: cmd, decode: func(res remote.Result) (T, error) { return parse(res.Stdout) }}
}

// action builds an Op with no value.
func action(cmd remote.Command) Op[struct{}] { return Op[struct{}]{Cmd: cmd} }

// TreeMismatchError is a release tree that differs from its manifest.
type TreeMismatchError struct {
	Release string
	Report  TreeReport
}

func (e *TreeMismatchError) Error() string {
	return fmt.Sprintf("release %s does not match its manifest: %s", e.Release, e.Report)
}

// TreeUncheckedError is a release tree that could not be compared with its
// manifest: the release directory or its manifest lists are gone.
type TreeUncheckedError struct {
	Release string
	Err     error // the script's failure, whose stderr says what is missing
}

func (e *TreeUncheckedError) Error() string {
	return fmt.Sprintf("cannot verify releases/%s: %v", e.Release, e.Err)
}

func (e *TreeUncheckedError) Unwrap() error { return e.Err }

// UnsafeArchiveError is an archive refused before anything of it was
// used: an entry is absolute, has "..", escapes by symlink or is not a
// file, directory or symlink.
type UnsafeArchiveError struct {
	Release string
	Err     error // the script's failure, whose stderr names the entries
}

func (e *UnsafeArchiveError) Error() string {
	return fmt.Sprintf("archive of %s refused: %v", e.Release, e.Err)
}

func (e *UnsafeArchiveError) Unwrap() error { return e.Err }

// NotUnpackedError is a release whose archive, fed to UnpackStream as it
// was sent, did not unpack whole, and was not uploaded as a file either:
// uploaded, its SHA-256 check and the staging from it say why.
type NotUnpackedError struct {
	Release string
	Err     error // the script's failure, whose stderr has the unpacking's messages
}

func (e *NotUnpackedError) Error() string {
	return fmt.Sprintf("archive of %s: %v", e.Release, e.Err)
}

func (e *NotUnpackedError) Unwrap() error { return e.Err }

// ArchiveMismatchError is an upload whose SHA-256 is not the archive's.
type ArchiveMismatchError struct {
	Path             string
	Expected, Actual string
}

func (e *ArchiveMismatchError) Error() string {
	return fmt.Sprintf("archive %s is corrupt or was tampered with in transit: sha256 %s, expected %s", e.Path, e.Actual, e.Expected)
}

// LockHeldError is a deploy lock someone else holds.
type LockHeldError struct {
	Held *LockHeld
}

func (e *LockHeldError) Error() string { return e.Held.Describe(0) }

// LockBreakRefusedError is a break of the deploy lock that found it changed
// since it was read: released, fresh again, or taken by another deploy.
type LockBreakRefusedError struct {
	Held *LockHeld // the lock as the break found it
}

func (e *LockBreakRefusedError) Error() string {
	return "the deploy lock changed before it could be broken: " + e.Held.Describe(0)
}
