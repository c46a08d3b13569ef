package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/stagecoach/stagecoach/stages/config"
	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/fleet"
	"github.com/stagecoach/stagecoach/stages/health"
	"github.com/stagecoach/stagecoach/stages/rollback"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/swap"
)

// waves splits hosts, in config order, into the waves a rollout activates
// one after another: the first canary hosts, then batches of batch hosts.
func waves(hosts []*fleet.Host, canary, batch int) [][]*fleet.Host {
	canary = min(max(canary, 0), len(hosts))
	batch = max(batch, 1)
	var out [][]*fleet.Host
	if canary > 0 {
		out = append(out, hosts[:canary])
	}
	for rest := hosts[canary:]; len(rest) > 0; {
		n := min(batch, len(rest))
		out = append(out, rest[:n])
		rest = rest[n:]
	}
	return out
}

// rollout is the activation phase of a deploy under the environment's
// strategy: every host has staged the release; the waves (see waves) are
// activated one after another, each health-gated before the next, and a
// failure is handled as strategy.on_failure says.
type rollout struct {
	r        *Run
	strategy config.Strategy
	waves    [][]*fleet.Host
	canary   bool // waves[0] is the canary
	// migrateOnce: the first host of the first wave migrates the database
	// the hosts share before any host activates; migrateEach: each host
	// migrates its own as it activates. At most one is set.
	migrateOnce, migrateEach bool

	// gaveUp are the hosts that failed and went back to their release
	// under stop or continue, causes why, stage where the first failed.
	gaveUp []*fleet.Host
	causes []error
	stage  string
	// at is the stage of the failure at hand: a wave's health gate fails
	// the health stage though the swap stage runs it.
	at string
	// wentBack counts the hosts put back so far, so that a rollout that
	// ends with no host on the new release says it rolled back.
	wentBack int

	// concludes: the activation's round trip concludes the deploy too
	// (see concludesInSwap); concluded once it did, cleanupErr the
	// failure of its cleanup.
	concludes, concluded bool
	cleanupErr           error
}

// stopped is the end of a rollout that switches no more hosts but keeps
// the ones that passed their health check on the new release: a failure
// under on_failure stop, a failing canary or an interrupt under stop or
// continue.
type stopped struct{ cause error }

func (s *stopped) Error() string { return s.cause.Error() }
func (s *stopped) Unwrap() error { return s.cause }

func (r *Run) newRollout() *rollout {
	s := r.Env.Strategy
	if s.OnFailure == "" {
		s.OnFailure = config.Revert
	}
	ro := &rollout{r: r, strategy: s, waves: waves(r.Hosts, s.Canary, s.BatchSize(len(r.Hosts))), canary: s.Canary > 0,
		migrateOnce: swap.MigrateOnceFirst(r.Context), migrateEach: swap.MigrateEach(r.Context)}
	return ro
}

// name is how the log calls wave i.
func (ro *rollout) name(i int) string {
	if ro.canary && i == 0 {
		return "canary"
	}
	if len(ro.waves) == 1 {
		return "all hosts"
	}
	n, of := i+1, len(ro.waves)
	if ro.canary {
		n, of = i, of-1
	}
	return fmt.Sprintf("batch %d of %d", n, of)
}

// swap is the deploy's swap stage: it stages the release on every host,
// migrates once when the config says so, then activates the waves, each
// but the last gated on health here; the health stage gates the last.
func (ro *rollout) swap(ctx context.Context) error {
	rc := ro.r.Context
	if err := swap.StageAll(ctx, rc); err != nil {
		return err
	}
	if ro.migrateOnce && len(ro.waves) > 0 {
		h := ro.waves[0][0]
		h.Log.Infof("migrating once, here, for every host")
		if err := swap.MigrateOnce(ctx, rc, h); err != nil {
			return fmt.Errorf("migrate on %s: %w", h.Name, err)
		}
	}
	if len(ro.waves) > 1 {
		ro.r.Log.Infof("rolling %s out in %d waves: %s", rc.Plan.Release, len(ro.waves), ro.strategy)
	}
	for i := range ro.waves {
		errs := ro.activate(ctx, i)
		last, stage := i == len(ro.waves)-1, "swap"
		if !last && ro.gate(ctx, i, errs) {
			stage = "health"
		}
		if err := ro.settle(ctx, stage, i, errs); err != nil {
			return err
		}
		if last {
			break
		}
		if ro.canary && i == 0 && ro.strategy.Pause > 0 {
			ro.r.Log.Infof("canary healthy; pausing %s before the other hosts", ro.strategy.Pause)
			if err := pause(ctx, ro.strategy.Pause); err != nil {
				return ro.interrupted(fmt.Errorf("pause after the canary: %w", err))
			}
		}
	}
	return nil
}

// health is the deploy's health stage: the gate of the last wave.
func (ro *rollout) health(ctx context.Context) error {
	rc := ro.r.Context
	if len(health.Checks(rc)) == 0 {
		return health.Step{}.Run(ctx, rc) // says so when it matters
	}
	i := len(ro.waves) - 1
	errs := make([]error, len(ro.waves[i]))
	ro.gate(ctx, i, errs)
	return ro.settle(ctx, "health", i, errs)
}

// activate activates the release on the hosts of wave i, at most
// strategy.parallel at once; errs has each host's failure, nil for a host
// that switched.
func (ro *rollout) activate(ctx context.Context, i int) []error {
	rc, hosts := ro.r.Context, ro.waves[i]
	errs := make([]error, len(hosts))
	if len(ro.waves) > 1 {
		rc.Log.Infof("%s: activating %s on %s", ro.name(i), rc.Plan.Release, names(hosts))
	}
	ro.each(ctx, hosts, errs, func(ctx context.Context, h *fleet.Host) error {
		activate := func() error { return swap.Activate(ctx, rc, h, ro.migrateEach) }
		if ro.concludes {
			activate = func() error { return ro.activateAndConclude(ctx, h) }
		}
		if err := activate(); err != nil {
			return fmt.Errorf("activate %s on %s: %w", rc.Plan.Release, h.Name, err)
		}
		return nil
	})
	return errs
}

// gate checks the health of the hosts of wave i that switched and have
// no failure in errs yet, adds theirs, and reports whether any failed.
func (ro *rollout) gate(ctx context.Context, i int, errs []error) (failed bool) {
	rc, hosts := ro.r.Context, ro.waves[i]
	if len(health.Checks(rc)) == 0 {
		return false
	}
	var mu sync.Mutex
	ro.each(ctx, hosts, errs, func(ctx context.Context, h *fleet.Host) error {
		if !h.Switched {
			return nil
		}
		if err := health.Check(ctx, rc, h); err != nil {
			mu.Lock()
			failed = true
			mu.Unlock()
			return fmt.Errorf("health of %s: %w", h.Name, err)
		}
		return nil
	})
	return failed
}

// each runs fn on the hosts whose errs entry is nil, as Fleet.Each does,
// and keeps each host's error in its entry.
func (ro *rollout) each(ctx context.Context, hosts []*fleet.Host, errs []error, fn func(context.Context, *fleet.Host) error) {
	index := make(map[*fleet.Host]int, len(hosts))
	var todo []*fleet.Host
	for j, h := range hosts {
		if errs[j] == nil {
			index[h] = j
			todo = append(todo, h)
		}
	}
	var mu sync.Mutex
	_ = ro.r.Fleet.Each(ctx, todo, "", func(ctx context.Context, h *fleet.Host) error {
		err := fn(ctx, h)
		mu.Lock()
		errs[index[h]] = err
		mu.Unlock()
		return err // noted as the host's own outcome
	})
}

// settle applies strategy.on_failure to the failures of wave i (stage
// says which stage saw them). It returns nil when the rollout goes on.
// Under revert it returns the failures, and the deploy rolls every host
// back. Under stop and continue the hosts that failed go back to their
// release, the others stay; stop then ends the rollout, and so does a
// failing canary or an interrupt under continue, since no wave after it
// may switch. When no host would stay on the new release, stop and
// continue end as revert does.
func (ro *rollout) settle(ctx context.Context, stage string, i int, errs []error) error {
	ro.at = stage
	var failed []*fleet.Host
	for j, err := range errs {
		if err != nil {
			failed = append(failed, ro.waves[i][j])
		}
	}
	if len(failed) == 0 {
		if ctx.Err() != nil {
			return ro.interrupted(ctx.Err())
		}
		return nil
	}
	cause := fleet.JoinCoded(errs)
	if ro.strategy.OnFailure == config.Revert || !ro.othersStay(failed) {
		return cause
	}
	if ro.stage == "" {
		ro.stage = stage
	}
	if err := ro.putBack(ctx, failed); err != nil {
		return &putBackFailed{cause: cause, err: err}
	}
	ro.gaveUp = append(ro.gaveUp, failed...)
	ro.causes = append(ro.causes, cause)
	if ro.strategy.OnFailure == config.Stop || (ro.canary && i == 0) || ctx.Err() != nil {
		return &stopped{cause: cause}
	}
	ro.r.Log.Warnf("%s: %s back on the old release; on_failure continue: going on with the other hosts", ro.name(i), names(failed))
	return nil
}

// interrupted ends the rollout at an interrupt between waves: under
// revert every switched host goes back, under stop and continue the
// hosts that passed their health check stay.
func (ro *rollout) interrupted(cause error) error {
	// The hosts of the waves not begun were stopped by the interrupt, not
	// by another host's failure: their own outcome says so.
	for _, h := range ro.r.Hosts {
		if !h.Switched && !h.SwitchedBack && h.Err() == nil {
			h.Fail(cause)
		}
	}
	if ro.strategy.OnFailure == config.Revert || !ro.othersStay(nil) {
		return cause
	}
	if ro.stage == "" {
		ro.stage = "swap"
	}
	return &stopped{cause: cause}
}

// othersStay reports whether a host other than failed runs the new
// release.
func (ro *rollout) othersStay(failed []*fleet.Host) bool {
	for _, h := range ro.r.Hosts {
		if h.Switched && !contains(failed, h) {
			return true
		}
	}
	return false
}

// putBack returns the failed hosts that switched or migrated to their
// release, with a context of its own (the deploy's may be cancelled).
// Hosts that migrated alone get their backup back; a database migrated
// once for every host stays migrated while other hosts run the new
// release.
func (ro *rollout) putBack(ctx context.Context, failed []*fleet.Host) error {
	rc := ro.r.Context
	once := rc.Cfg.Migrations != nil && rc.Cfg.Migrations.Once
	var touched []*fleet.Host
	for _, h := range failed {
		if h.Switched || h.Migrated && !once {
			touched = append(touched, h)
		}
	}
	start := time.Now()
	err := rc.Fleet.Each(context.WithoutCancel(ctx), touched, "put back", func(ctx context.Context, h *fleet.Host) error {
		err := rollback.Host(ctx, rc, h, h.Migrated && !once)
		h.RollbackErr = err
		return err
	})
	ro.wentBack += len(touched)
	if len(touched) > 0 {
		rc.Report.Stage("rollback", time.Since(start), err)
	}
	return err
}

// putBackFailed is a failure (cause) of hosts that could not be put back
// on their release either (err).
type putBackFailed struct{ cause, err error }

func (p *putBackFailed) Error() string {
	return p.cause.Error() + "; putting them back failed too: " + p.err.Error()
}
func (p *putBackFailed) Unwrap() []error { return []error{p.cause, p.err} }

// fail ends a deploy whose rollout failed at stage with err, as
// on_failure says (see settle).
func (ro *rollout) fail(ctx context.Context, stage string, err error) error {
	r := ro.r
	if ro.at != "" {
		stage = ro.at
	}
	var pb *putBackFailed
	if errors.As(err, &pb) {
		err = exitcode.Errorf(exitcode.RollbackFailed, "%s failed: %v", stage, err)
		r.record(ctx, server.ResultRollbackFailed, stage, err)
		return r.finish(err, server.ResultRollbackFailed)
	}
	var st *stopped
	if errors.As(err, &st) {
		return ro.partial(ctx, server.ResultStopped, st.cause)
	}
	if !r.anySwitchedOrMigrated() && ro.wentBack > 0 {
		// Every host that switched is back already.
		err = exitcode.Errorf(exitcode.RolledBack, "%s failed and no host stays on the new release: %v", stage, err)
		r.record(ctx, server.ResultRolledBack, stage, err)
		return r.finish(err, server.ResultRolledBack)
	}
	return r.failAfterSwap(ctx, stage, err)
}

// partial ends a deploy that left some hosts on the new release and put
// the others back (result stopped or partial), with exit code Partial.
func (ro *rollout) partial(ctx context.Context, result string, cause error) error {
	r := ro.r
	var on, off []*fleet.Host
	for _, h := range r.Hosts {
		if h.Switched {
			on = append(on, h)
		} else {
			off = append(off, h)
		}
	}
	what := "went on with the other hosts"
	if result == server.ResultStopped {
		what = "stopped"
	}
	err := exitcode.Errorf(exitcode.Partial, "on_failure %s: the rollout %s: %s run %s; %s stay on the release they ran: %v",
		ro.strategy.OnFailure, what, names(on), r.Plan.Release, names(off), cause)
	r.Log.Errorf("%v", err)
	r.record(ctx, result, ro.stage, err)
	return r.finish(err, result)
}

// pause waits d, or until ctx ends.
func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func names(hosts []*fleet.Host) string {
	s := make([]string, len(hosts))
	for i, h := range hosts {
		s[i] = h.Name
	}
	return strings.Join(s, ", ")
}

func contains(hosts []*fleet.Host, h *fleet.Host) bool {
	for _, x := range hosts {
		if x == h {
			return true
		}
	}
	return false
}
