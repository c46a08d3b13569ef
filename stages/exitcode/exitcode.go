// Package exitcode gives errors the process exit codes that cron and CI act
// on. Mage exits with the code of any returned error that has an
// ExitStatus() int method, so wrapping an error here is all a target needs.
package exitcode

import (
	"errors"
	"fmt"
)

// Exit codes. They are stable: scripts depend on them.
const (
	OK             = 0
	Failed         = 1 // a stage failed; nothing was changed on the servers
	BadConfig      = 2 // the configuration or the command line is wrong
	Unhealthy      = 3 // checks ran and something is unhealthy
	Unreachable    = 4 // could not check or deploy: host unreachable, auth refused
	RolledBack     = 5 // the deploy failed after the swap and was rolled back
	Locked         = 6 // another deploy holds the lock
	RollbackFailed = 7 // the deploy failed and so did the automatic rollback
	// Partial: a failure under strategy.on_failure stop or continue left
	// some hosts on the new release and the others on the old one.
	Partial = 8
)

// Error is an error with an exit code.
type Error struct {
	Code int
	Err  error
}

func (e *Error) Error() string   { return e.Err.Error() }
func (e *Error) Unwrap() error   { return e.Err }
func (e *Error) ExitStatus() int { return e.Code }

// With wraps err with code; a nil err stays nil.
func With(code int, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Code: code, Err: err}
}

// Errorf formats an error carrying code.
func Errorf(code int, format string, args ...any) error {
	return &Error{Code: code, Err: fmt.Errorf(format, args...)}
}

// Of returns the exit code err carries: 0 for nil, 1 when none is set.
func Of(err error) int {
	if err == nil {
		return OK
	}
	var coded interface{ ExitStatus() int }
	if errors.As(err, &coded) {
		return coded.ExitStatus()
	}
	return Failed
}
