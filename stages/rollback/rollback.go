// Package rollback puts a previous release back: after a failed deploy on
// every host it touched, and on request (mage rollback) to the previous or
// a named release.
package rollback

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/fleet"
	"github.com/stagecoach/stagecoach/stages/probe"
	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/slots"
)

// AfterFailure undoes what this deploy did on every host that migrated or
// switched: current goes back to the release that was live, the database
// backup is restored when migrations ran, services restart and health is
// checked again. It runs with a context of its own, since the deploy's may
// already be cancelled (Ctrl-C).
func AfterFailure(ctx context.Context, rc *run.Context) error {
	var touched []*fleet.Host
	for _, h := range rc.Hosts {
		if h.Switched || h.Migrated {
			touched = append(touched, h)
		}
	}
	if len(touched) == 0 {
		return nil
	}
	return rc.Fleet.Each(context.WithoutCancel(ctx), touched, "roll back", func(ctx context.Context, h *fleet.Host) error {
		err := Host(ctx, rc, h, h.Migrated)
		h.RollbackErr = err // the host's own outcome: others may roll back fine
		return err
	})
}

// Host puts h back on the release that was live before this deploy, as
// AfterFailure does for each host, restoring the database backup only
// when restoreDB is set: a rollout that keeps other hosts on the new
// release keeps a database they share as migrated.
func Host(ctx context.Context, rc *run.Context, h *fleet.Host, restoreDB bool) error {
	if h.Live == "" {
		if restoreDB {
			if err := h.RestoreDatabase(ctx, rc.Cfg.Migrations, rc.Plan.Release); err != nil {
				return err
			}
		}
		return errors.New("first deploy: there is no earlier release to go back to; current stays on the new release")
	}
	err := To(ctx, rc, h, h.Live, restoreDB)
	if err != nil && remote.IsConnectionLost(err) && ctx.Err() == nil {
		// The connection is gone, often what failed the deploy; the
		// host is not. Every step of To may be repeated.
		if rerr := rc.Fleet.Reconnect(ctx, h); rerr != nil {
			return fmt.Errorf("%w; %w", err, rerr)
		}
		err = To(ctx, rc, h, h.Live, restoreDB)
	}
	return err
}

// To switches h back to release id, restores the database backup taken
// before this run's migrations when restoreDB is set, restarts the
// services of id and checks health again.
func To(ctx context.Context, rc *run.Context, h *fleet.Host, id string, restoreDB bool) error {
	if restoreDB {
		if err := h.RestoreDatabase(ctx, rc.Cfg.Migrations, rc.Plan.Release); err != nil {
			return fmt.Errorf("restore database: %w", err)
		}
	}
	return to(ctx, rc, h, id, nil)
}

// NotHealthyError is the failure of the health checks of the release a
// host was switched (back) to: the switch did happen.
type NotHealthyError struct {
	Release string
	Err     error
}

func (e *NotHealthyError) Error() string {
	return fmt.Sprintf("release %s is not healthy after the rollback either: %v", e.Release, e.Err)
}

func (e *NotHealthyError) Unwrap() error { return e.Err }

// restoreError is the failure of the restore run before the switch,
// which did not happen.
type restoreError struct{ err error }

func (e restoreError) Error() string { return e.err.Error() }
func (e restoreError) Unwrap() error { return e.err }

// exitRestoreFailed is the exit code of a restore run with the switch
// that failed, the switch not run.
const exitRestoreFailed = 90

// to is To, with restore, when given, run with the switch, in one command
// that a client dying part-way (a hangup, a termination) does not stop:
// a database restored for id without the switch to id would leave the
// live release on an older database, which the next deploy, seeing no
// migration pending, would keep.
func to(ctx context.Context, rc *run.Context, h *fleet.Host, id string, restore *remote.Command) error {
	if restore != nil && slots.Enabled(rc) {
		if _, err := h.Run(ctx, *restore); err != nil {
			return restoreError{err}
		}
		restore = nil
	}
	if slots.Enabled(rc) {
		// Back to the old slot at once while it still runs (drains),
		// else id starts in the idle slot first: it is health-gated
		// there, then the router and current switch together.
		if err := slots.Activate(ctx, rc, h, id); err != nil {
			return err
		}
		h.Switched, h.SwitchedBack = false, true
		h.Log.Infof("rolled back: current -> releases/%s", id)
	} else {
		sw, err := server.Switch(h.Layout, id)
		if err != nil {
			return err
		}
		if restore != nil {
			sw = remote.Command{Desc: restore.Desc + ", " + sw.Desc,
				Script: "trap '' HUP INT TERM\n(" + restore.Script + "\n) || exit " + strconv.Itoa(exitRestoreFailed) + "\n" + sw.Script}
		}
		if _, err := h.Run(ctx, sw); err != nil {
			if restore != nil && server.ExitCode(err) == exitRestoreFailed {
				return restoreError{err}
			}
			return err
		}
		h.Switched, h.SwitchedBack = false, true
		h.Log.Infof("rolled back: current -> releases/%s", id)
		if err := h.Restart(ctx, rc.Env.Services, rc.Cfg.App, id); err != nil {
			return err
		}
	}
	checks := rc.Env.Health
	if slots.Enabled(rc) {
		checks = slots.PublicChecks(checks) // the slot's own passed before the switch
		if h.Maintenance {
			// The router answers 503 (slots.Activate said so): checks
			// through it cannot pass.
			checks = nil
		}
	}
	if len(checks) > 0 {
		target := probe.Target{Host: h.Name, Runner: h.Runner, Layout: h.Layout, Release: id, Values: rc.HostValues(h), Vars: h.Vars, Reconnect: rc.Fleet.Reconnector(h)}
		results, err := probe.Run(ctx, checks, rc.Env.HealthWait, target)
		rc.Report.AddHealth(results)
		if err != nil {
			return &NotHealthyError{Release: id, Err: err}
		}
	}
	return nil
}

// Step is the rollback target: every host goes back to its previous good
// release, or to the release named by Options.Release, restoring the
// database backup of the release being left only when Options.RestoreDB
// is set.
//
// Over a fleet it is all or nothing, like a deploy: every host must be
// able to go (the same release, there on each) before any moves, and
// when one fails the others are put back on the release they ran, their
// database and state as they were, so the hosts never end on different
// releases unless putting them back failed too, which the error says.
type Step struct{}

func (Step) String() string { return "rollback" }

// move is one host's part of a rollback.
type move struct {
	from, to  string
	restoreDB bool
	state     []byte // the host's state before, put back by undo
	started   bool   // apply began: undo has something to put back
	saved     bool   // the database as it was is saved for undo
	switching bool   // the switch may have happened
	recorded  bool   // the state may say m.to is live
}

// Run rolls every host back and records it in the host's state.
func (Step) Run(ctx context.Context, rc *run.Context) error {
	moves, err := plan(ctx, rc)
	if err != nil {
		return err
	}
	var hosts []*fleet.Host
	for _, h := range rc.Hosts {
		if moves[h] != nil {
			hosts = append(hosts, h)
		}
	}
	err = rc.Fleet.Each(ctx, hosts, "roll back", func(ctx context.Context, h *fleet.Host) error {
		return apply(ctx, rc, h, moves[h])
	})
	if err == nil {
		return nil
	}
	// Put back even when interrupted: stopping here would leave the
	// fleet split.
	var mu sync.Mutex
	placed := true // every host is back on its release, healthy or not
	undoErr := rc.Fleet.Each(context.WithoutCancel(ctx), hosts, "put back", func(ctx context.Context, h *fleet.Host) error {
		err := undo(ctx, rc, h, moves[h])
		var unhealthy *NotHealthyError
		if err != nil && !errors.As(err, &unhealthy) {
			mu.Lock()
			placed = false
			mu.Unlock()
		}
		return err
	})
	if undoErr != nil && placed {
		return exitcode.With(exitcode.Unhealthy, fmt.Errorf("%w; every host was put back on the release it ran, but %w", err, undoErr))
	}
	if undoErr != nil {
		var where []string
		for _, h := range hosts {
			where = append(where, h.Name+": "+h.Live)
		}
		return exitcode.With(exitcode.Partial, fmt.Errorf("%w; putting the hosts back failed too, so they may run different releases (%s): %w",
			err, strings.Join(where, ", "), undoErr))
	}
	return exitcode.With(exitcode.Failed, fmt.Errorf("%w; every host was put back on the release it ran", err))
}

// plan decides every host's move, changing nothing: the release each goes
// to, the same on all, and that it is there. A host already on a release
// named by Options.Release stays (finishing a rollback that stopped
// part-way); a host with nothing to do has no move.
func plan(ctx context.Context, rc *run.Context) (map[*fleet.Host]*move, error) {
	moves := make(map[*fleet.Host]*move, len(rc.Hosts))
	target := rc.Opts.Release
	if target == "" {
		var each []string
		var none []error
		for _, h := range rc.Hosts {
			prev, ok := h.State.Previous()
			if !ok {
				none = append(none, fmt.Errorf("roll back %s: no previous release to roll back to", h.Name))
				continue
			}
			each = append(each, fmt.Sprintf("%s: %s -> %s", h.Name, h.Live, prev.ID))
			if target != "" && prev.ID != target {
				target = "\x00"
			} else if target == "" {
				target = prev.ID
			}
		}
		if len(none) > 0 {
			return nil, errors.Join(none...)
		}
		if target == "\x00" {
			return nil, exitcode.Errorf(exitcode.BadConfig, "roll back: the hosts would go to different releases (%s): name the release to roll back to, STAGECOACH_RELEASE=<id>",
				strings.Join(each, ", "))
		}
	}
	if err := server.ValidID(target); err != nil {
		return nil, err
	}
	var mu sync.Mutex
	err := rc.Each(ctx, "roll back", func(ctx context.Context, h *fleet.Host) error {
		if target == h.Live {
			return nil
		}
		m := &move{from: h.Live, to: target}
		if mig := rc.Cfg.Migrations; rc.Opts.RestoreDB && mig != nil && len(mig.Backup) > 0 {
			// The backup taken before the release being left is the
			// database of a release older than it: going forward (back
			// from a rollback) with it would drop what the releases in
			// between migrated. Release ids sort by the time they were
			// made.
			if target > h.Live {
				return fmt.Errorf("release %s is newer than the live %s: the database backup taken before %s predates it; roll back without restoring the database", target, h.Live, h.Live)
			}
			m.restoreDB = true
		}
		cmds := []remote.Command{remote.Cmd("look for release "+target, "test", "-d", h.Layout.ReleaseDir(target))}
		var has server.Op[struct{}]
		if m.restoreDB {
			// Before any host moves: a restore failing on every host
			// would leave each to be put back.
			var err error
			if has, err = server.HasBackup(h.Layout, h.Live, rc.Cfg.Migrations.Backup); err != nil {
				return err
			}
			cmds = append(cmds, has.Cmd)
		}
		results, errs := h.RunBatch(ctx, cmds...)
		if err := errs[0]; err != nil {
			if server.ExitCode(err) == 1 {
				return fmt.Errorf("release %s does not exist on the server", target)
			}
			return err
		}
		if m.restoreDB {
			if _, err := has.Decode(results[1], errs[1]); err != nil {
				var none *server.NoBackupError
				if errors.As(err, &none) {
					return fmt.Errorf("%w: roll back without restoring the database", err)
				}
				return err
			}
		}
		state, err := h.State.Marshal()
		if err != nil {
			return err
		}
		m.state = state
		mu.Lock()
		moves[h] = m
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(moves) == 0 {
		return nil, fmt.Errorf("release %s is already live", target)
	}
	return moves, nil
}

// apply moves h to m.to: the database backup restored when asked (the
// database as it is saved first, for undo), the switch, the services,
// health, the state recorded. A step that loses the connection is tried
// once more over a new one: every step may be repeated.
func apply(ctx context.Context, rc *run.Context, h *fleet.Host, m *move) error {
	m.started = true
	err := applyOnce(ctx, rc, h, m)
	if err != nil && remote.IsConnectionLost(err) && ctx.Err() == nil {
		if rerr := rc.Fleet.Reconnect(ctx, h); rerr != nil {
			return fmt.Errorf("%w; %w", err, rerr)
		}
		err = applyOnce(ctx, rc, h, m)
	}
	return err
}

func applyOnce(ctx context.Context, rc *run.Context, h *fleet.Host, m *move) error {
	var restore *remote.Command
	if m.restoreDB {
		files := rc.Cfg.Migrations.Backup
		if !m.saved {
			if err := h.Exec(ctx)(server.BackupBeforeRollback(h.Layout, m.from, files)); err != nil {
				return fmt.Errorf("save the database before restoring the backup: %w", err)
			}
			m.saved = true
		}
		// With the switch (see to): restored without it, the live
		// release would be left on the database of an older one.
		cmd, err := server.RestoreFiles(h.Layout, m.from, files)
		if err != nil {
			return err
		}
		restore = &cmd
	}
	m.switching = true
	if err := to(ctx, rc, h, m.to, restore); err != nil {
		var re restoreError
		if errors.As(err, &re) {
			return fmt.Errorf("restore the database backup taken before %s: %w", m.from, re.err)
		}
		return err
	}
	if _, ok := h.State.Release(m.to); !ok {
		h.State.AddRelease(server.Release{ID: m.to})
	}
	rel, _ := h.State.Release(m.to)
	if err := h.State.RecordDeploy(server.Deploy{ID: m.to, Revision: rel.Revision, User: fleet.WhoAmI(), Host: fleet.MachineName(),
		Started: rc.Started, Duration: time.Since(rc.Started), Result: server.ResultRollback}); err != nil {
		return err
	}
	m.recorded = true
	if err := h.SaveState(ctx); err != nil {
		// A write that ran and failed changed nothing (it is a rename);
		// one unanswered may have happened.
		var exit *remote.ExitError
		m.recorded = !errors.As(err, &exit)
		return err
	}
	h.Live = m.to
	return nil
}

// undo puts h back as it was before apply: the database as it was, the
// release it ran, its state.
func undo(ctx context.Context, rc *run.Context, h *fleet.Host, m *move) error {
	if !m.started {
		return nil
	}
	err := undoOnce(ctx, rc, h, m)
	if err != nil && remote.IsConnectionLost(err) {
		if rerr := rc.Fleet.Reconnect(ctx, h); rerr != nil {
			return fmt.Errorf("%w; %w", err, rerr)
		}
		err = undoOnce(ctx, rc, h, m)
	}
	return err
}

func undoOnce(ctx context.Context, rc *run.Context, h *fleet.Host, m *move) error {
	if m.saved {
		if err := h.Exec(ctx)(server.RestoreBeforeRollback(h.Layout, m.from, rc.Cfg.Migrations.Backup)); err != nil {
			return fmt.Errorf("put the database back: %w", err)
		}
	}
	if !m.switching {
		return nil
	}
	// Back on m.from, healthy or not, the host's state must say so.
	err := To(ctx, rc, h, m.from, false)
	var unhealthy *NotHealthyError
	if err != nil && !errors.As(err, &unhealthy) {
		return err
	}
	state, perr := server.ParseState(h.Layout.StatePath(), m.state)
	if perr != nil {
		return perr
	}
	h.State = state
	if m.recorded {
		if serr := h.SaveState(ctx); serr != nil {
			return errors.Join(err, serr)
		}
	}
	h.Live = m.from
	return err
}
