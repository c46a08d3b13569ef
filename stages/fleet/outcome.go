package fleet

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/stagecoach/stagecoach/stages/server"
)

// Phases a host goes through in a deploy, in order; Host.Phase is the last
// one it reached.
const (
	PhaseNone     = ""         // not even connected
	PhaseConnect  = "connect"  // connected
	PhaseLock     = "lock"     // locked, state read
	PhaseShip     = "ship"     // the archive is on the host, verified
	PhaseStage    = "stage"    // the release is staged and verified
	PhaseMigrate  = "migrate"  // migrations ran (or may have)
	PhaseActivate = "activate" // current pointed at the new release
)

var phases = []string{PhaseNone, PhaseConnect, PhaseLock, PhaseShip, PhaseStage, PhaseMigrate, PhaseActivate}

// outcome is what a run's work on a host came to, kept as the work goes
// (Fleet.Each notes it around every call), since the flags it is read
// from are reset by a discard or a rollback.
type outcome struct {
	mu      sync.Mutex
	reached int       // index in phases
	err     error     // the first failure of work on the host
	last    time.Time // when the last work on it ended
}

// current is the phase h's flags show now.
func (h *Host) current() int {
	switch {
	case h.Switched || h.SwitchedBack:
		return 6
	case h.Migrated || h.restored:
		return 5
	case h.Staged:
		return 4
	case h.Shipped:
		return 3
	case h.State != nil:
		return 2
	case h.Runner != nil:
		return 1
	}
	return 0
}

// note takes in h's phase now and, after work on it ended, that work's
// error and end.
func (h *Host) note(done bool, err error) {
	h.out.mu.Lock()
	defer h.out.mu.Unlock()
	h.out.reached = max(h.out.reached, h.current())
	if err != nil && h.out.err == nil {
		h.out.err = err
	}
	if done {
		h.out.last = time.Now()
	}
}

// Phase is the furthest phase h reached in this run.
func (h *Host) Phase() string {
	h.note(false, nil)
	h.out.mu.Lock()
	defer h.out.mu.Unlock()
	return phases[h.out.reached]
}

// Err is the first failure of this run's work on h, nil when none failed.
func (h *Host) Err() error {
	h.out.mu.Lock()
	defer h.out.mu.Unlock()
	return h.out.err
}

// Fail records err as a failure on h, as Fleet.Each does for its calls.
func (h *Host) Fail(err error) { h.note(true, err) }

// Elapsed is how long after start the last work on h ended; 0 when none did.
func (h *Host) Elapsed(start time.Time) time.Duration {
	h.out.mu.Lock()
	defer h.out.mu.Unlock()
	if h.out.last.IsZero() {
		return 0
	}
	return h.out.last.Sub(start)
}

// Results are the hosts' own outcomes of a deploy whose fleet outcome is
// fleet, as their states record them: a host that runs the new release
// succeeded and a host switched back fine rolled back, whatever the
// others did; a host whose own work failed failed (or was interrupted); a
// host that did nothing wrong but did not go live because another host
// failed was aborted. When no host failed (the build did, say), a host
// not switched has the fleet's outcome.
func Results(hosts []*Host, fleet string) []string {
	others := false
	for _, h := range hosts {
		others = others || h.Err() != nil
	}
	out := make([]string, len(hosts))
	for i, h := range hosts {
		out[i] = h.result(fleet, others)
	}
	return out
}

func (h *Host) result(fleet string, othersFailed bool) string {
	err := h.Err()
	switch {
	case fleet == server.ResultNoChange:
		return server.ResultNoChange
	case h.RollbackErr != nil:
		return server.ResultRollbackFailed
	case h.Switched:
		return server.ResultSuccess
	case h.SwitchedBack:
		return server.ResultRolledBack
	case err != nil && errors.Is(err, context.Canceled):
		return server.ResultInterrupted
	case err != nil:
		return server.ResultFailed
	case h.restored:
		return server.ResultRolledBack
	case othersFailed && fleet != server.ResultSuccess && fleet != server.ResultInterrupted:
		return server.ResultAborted
	}
	return fleet
}
