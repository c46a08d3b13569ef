// Package slots makes a release live on a host without a moment of
// downtime, when services.slots is set: the release starts in the idle
// slot (blue or green, each on its own port) beside the live one, gets no
// traffic until that slot passes its own health checks, then the router
// and current switch to it in one round trip, the public checks run, and
// the old slot drains and stops. Each change is recorded in the host's
// <root>/.stagecoach/router first (server.RouterState), so a deploy
// killed anywhere leaves the router on a slot that runs, and the next
// deploy, rollback or check knows which.
//
// Swap activates through it, rollback goes back through it (at once when
// the slot it goes back to still runs), and check reads its state.
package slots

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/stagecoach/stagecoach/stages/config"
	"github.com/stagecoach/stagecoach/stages/fleet"
	"github.com/stagecoach/stagecoach/stages/probe"
	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/server"
)

// Enabled reports whether rc's services run in slots.
func Enabled(rc *run.Context) bool { return rc.Env.Services.Slots != nil }

// SlotChecks are the health checks of the slot on port itself, {port}
// filled in.
func SlotChecks(checks []config.HealthCheck, port int) []config.HealthCheck {
	var out []config.HealthCheck
	for _, c := range checks {
		if c.SlotCheck() {
			c.HTTP = server.WithPort(c.HTTP, port)
			c.Command = server.WithPort(c.Command, port)
			out = append(out, c)
		}
	}
	return out
}

// PublicChecks are the checks of the app through its public address.
func PublicChecks(checks []config.HealthCheck) []config.HealthCheck {
	var out []config.HealthCheck
	for _, c := range checks {
		if !c.SlotCheck() {
			out = append(out, c)
		}
	}
	return out
}

// activation is one release going live on one host.
type activation struct {
	rc  *run.Context
	h   *fleet.Host
	svc config.Services
	id  string

	st   server.RouterState // as recorded before this activation changes it
	next server.Slot        // the idle slot, which id goes into
}

// Activate makes release id live on h through the idle slot. It returns
// with the old slot stopped, or, when it could not be, still recorded as
// running so the next deploy stops it first. Before the switch, a failure
// stops the new slot and leaves the live one serving, untouched; a public
// check failing after the switch puts the router and current back on the
// old slot, which still runs.
func Activate(ctx context.Context, rc *run.Context, h *fleet.Host, id string) error {
	a := &activation{rc: rc, h: h, svc: rc.Env.Services, id: id}
	start := time.Now()
	routed, err := server.Run(ctx, h, server.ReadRouter(h.Layout, a.svc.Router))
	if err != nil {
		return fmt.Errorf("read the slots' state: %w", err)
	}
	a.st = routed.Resolve()
	h.Maintenance = a.st.Maintenance != nil
	name, port := server.IdleSlot(a.svc, a.st)
	a.next = server.Slot{Name: name, Port: port, Release: id}

	if !a.reusable() || a.gate(ctx, true) != nil {
		if err := a.start(ctx); err != nil {
			return err
		}
		if err := a.gate(ctx, false); err != nil {
			a.abandon(ctx)
			return fmt.Errorf("release %s never became healthy in %s; it got no traffic and was stopped, and the live slot serves on: %w", id, a.next, err)
		}
	}
	if err := a.switchTo(ctx, a.next, a.st.Live, a.svc.Router); err != nil {
		a.abandon(ctx)
		return err
	}
	h.Switched = true
	h.Log.Infof("current -> releases/%s; router -> %s, live %s after the activation began", id, a.next, time.Since(start).Round(time.Millisecond))
	a.keepMaintenance(ctx)

	if err := a.public(ctx); err != nil {
		return a.switchBack(ctx, err, time.Now())
	}
	a.drain(ctx)
	return nil
}

// reusable reports whether the idle slot still runs the release going
// live, as after a switch whose old slot has not stopped yet: a rollback
// then only switches back.
func (a *activation) reusable() bool {
	idle := a.st.Idle
	return idle != nil && idle.Name == a.next.Name && idle.Release == a.id
}

// start stops what an earlier deploy may have left in the idle slot,
// makes sure no other process holds its port, records the slot and starts
// the release in it, in one round trip.
func (a *activation) start(ctx context.Context) error {
	h, l := a.h, a.h.Layout
	var cmds []remote.Command
	if idle := a.st.Idle; idle != nil && idle.Name == a.next.Name {
		stops, err := server.SlotStop(a.svc, l, a.rc.Cfg.App, *idle)
		if err != nil {
			return err
		}
		cmds = append(cmds, stops...)
	}
	free := server.PortFree(a.next.Port)
	freeAt := len(cmds)
	cmds = append(cmds, free.Cmd)
	started := a.st
	started.Idle = &a.next
	cmds = append(cmds, server.WriteRouterState(l, started))
	recordAt := len(cmds)
	starts, err := server.SlotStart(a.svc, l, a.rc.Cfg.App, a.next)
	if err != nil {
		return err
	}
	cmds = append(cmds, starts...)
	results, errs := h.RunBatch(ctx, cmds...)
	for i, err := range errs {
		if !errors.Is(err, remote.ErrSkipped) {
			h.ShowOutput(cmds[i].Desc, results[i])
		}
		if err == nil || errors.Is(err, remote.ErrSkipped) {
			continue
		}
		switch {
		case i < freeAt:
			return fmt.Errorf("stop what an earlier deploy left in slot %s: %w", a.next.Name, fleet.WithOutput(err, results[i]))
		case i == freeAt:
			_, err = free.Decode(results[i], err)
			return err
		case i == recordAt:
			return fmt.Errorf("record the slots: %w", h.DiskFullOr(err))
		}
		a.abandon(ctx)
		return fmt.Errorf("start %s in %s: %w", a.id, a.next, fleet.WithOutput(err, results[i]))
	}
	h.Log.Infof("started %s", a.next)
	return nil
}

// gate runs the slot's own checks against the idle slot until they pass
// or the deadline; quick is one attempt only (is a slot still running?).
func (a *activation) gate(ctx context.Context, quick bool) error {
	wait := a.rc.Env.HealthWait
	if quick {
		wait.Deadline = 0
	}
	checks := SlotChecks(a.rc.Env.Health, a.next.Port)
	target := a.target(a.id)
	target.Port = a.next.Port
	results, err := probe.Run(ctx, checks, wait, target)
	if !quick {
		a.rc.Report.AddHealth(results)
	}
	for _, res := range results {
		a.h.Log.Debugf("%s: %s after %d attempts (%s)", res.Check, res.Detail, res.Attempts, res.Duration.Round(time.Millisecond))
	}
	if err == nil {
		a.h.Log.Infof("%s is healthy", a.next)
	}
	return err
}

func (a *activation) target(id string) probe.Target {
	return probe.Target{Host: a.h.Name, Runner: a.h.Runner, Layout: a.h.Layout, Release: id, Values: a.rc.HostValues(a.h), Vars: a.h.Vars, Reconnect: a.rc.Fleet.Reconnector(a.h)}
}

// abandon stops the new slot, which took no traffic, and records the
// slots as they were; with a context of its own, as it runs after a
// failure, maybe an interrupt.
func (a *activation) abandon(ctx context.Context) {
	ctx = context.WithoutCancel(ctx)
	stops, err := server.SlotStop(a.svc, a.h.Layout, a.rc.Cfg.App, a.next)
	if err != nil {
		a.h.Log.Warnf("stop %s: %v", a.next, err)
		return
	}
	before := a.st
	before.Idle, before.Switching = nil, false
	cmds := append(stops, server.WriteRouterState(a.h.Layout, before))
	if err := remote.FirstError(a.runAll(ctx, cmds)); err != nil {
		a.h.Log.Warnf("stop %s: %v; the next deploy stops it first", a.next, err)
		return
	}
	a.h.Log.Infof("stopped %s", a.next)
}

// runAll runs cmds in one round trip and shows their output; the errors
// carry it.
func (a *activation) runAll(ctx context.Context, cmds []remote.Command) []error {
	_, errs := a.run(ctx, cmds)
	return errs
}

// run is runAll with the results.
func (a *activation) run(ctx context.Context, cmds []remote.Command) ([]remote.Result, []error) {
	results, errs := a.h.RunBatch(ctx, cmds...)
	for i := range cmds {
		if !errors.Is(errs[i], remote.ErrSkipped) {
			a.h.ShowOutput(cmds[i].Desc, results[i])
		}
		if errs[i] != nil && !errors.Is(errs[i], remote.ErrSkipped) {
			errs[i] = fleet.WithOutput(errs[i], results[i])
		}
	}
	return results, errs
}

// switchTo points the router and current at slot to, leaving from (nil
// when no slot was live), in one round trip: the state records the switch
// as under way, the router switches, then current, then the state records
// to as live and from as draining. When the router fails nothing has
// switched; when current fails the router is put back.
func (a *activation) switchTo(ctx context.Context, to server.Slot, from *server.Slot, r *config.Router) error {
	h, l := a.h, a.h.Layout
	under := server.RouterState{Live: from, Idle: &to, Switching: true, Maintenance: a.st.Maintenance, Router: a.st.Router}
	route, content, err := a.route(to)
	if err != nil {
		return err
	}
	sw, err := server.Switch(l, to.Release)
	if err != nil {
		return err
	}
	done := server.RouterState{Live: &to, Idle: from, Maintenance: a.st.Maintenance, Router: content}
	cmds := []remote.Command{server.WriteRouterState(l, under), route.Cmd, sw, server.WriteRouterState(l, done)}
	results, errs := a.run(ctx, cmds)
	switch {
	case errs[0] != nil:
		return fmt.Errorf("record the slots: %w", h.DiskFullOr(errs[0]))
	case errs[1] != nil:
		_, err := route.Decode(results[1], errs[1])
		return fmt.Errorf("switch the router to %s: %w", to, err)
	case errs[2] != nil:
		if from != nil {
			if back, _, rerr := a.route(*from); rerr == nil {
				if _, rerr := server.Run(context.WithoutCancel(ctx), h, back); rerr != nil {
					return fmt.Errorf("switch current to %s: %w; switching the router back to %s failed too: %v", to.Release, errs[2], from, rerr)
				}
			}
		}
		return fmt.Errorf("switch current to %s (the router is back on the old slot): %w", to.Release, errs[2])
	case errs[3] != nil:
		// Both switched: the record says "under way", which the next
		// reader resolves by where current points.
		h.Log.Warnf("record the slots after the switch: %v", errs[3])
	}
	a.st = done
	return nil
}

// route is the router's switch to slot s, and the router file it writes
// ("" for a command router).
func (a *activation) route(s server.Slot) (server.Op[struct{}], string, error) {
	r := a.svc.Router
	if r.Nginx != nil {
		// In maintenance the file switches to s and goes on answering
		// with the maintenance page.
		content, err := server.NginxFile(*r, a.h.Layout, s.Name, s.Port, a.st.Maintenance != nil)
		if err != nil {
			return server.Op[struct{}]{}, "", err
		}
		return server.NginxSwitch(*r.Nginx, fmt.Sprintf("switch nginx to %s", s), content), content, nil
	}
	cmd, err := server.RouterCommand(*r, a.h.Layout, s.Release, s.Port)
	return server.Op[struct{}]{Cmd: cmd}, "", err
}

// keepMaintenance runs a command router's maintenance command again after
// its switch, so that its maintenance page stays on (an nginx router's
// file already says so).
func (a *activation) keepMaintenance(ctx context.Context) {
	r := a.svc.Router
	if a.st.Maintenance == nil || r.Nginx != nil {
		return
	}
	cmd, err := server.RouterMaintenanceCommand(*r, a.h.Layout, a.st.Live.Release, a.st.Live.Port, true)
	if err == nil {
		err = remote.FirstError(a.runAll(context.WithoutCancel(ctx), []remote.Command{cmd}))
	}
	if err != nil {
		a.h.Log.Warnf("maintenance is on, and running the router's maintenance command again after the switch failed: %v; run mage maintenance off, then on", err)
	}
}

// public runs the public checks once the router points at the new slot.
// In maintenance the router answers them with 503: they cannot pass, so
// they do not run and cannot switch back a release its own slot's checks
// passed.
func (a *activation) public(ctx context.Context) error {
	checks := PublicChecks(a.rc.Env.Health)
	if len(checks) == 0 {
		return nil
	}
	if m := a.st.Maintenance; m != nil {
		a.h.Log.Infof("maintenance is on (since %s, by %s): the public checks through the router cannot pass and are skipped; %s passed its own checks directly, and the router stays in maintenance (mage maintenance off ends it)", m.Since.Format(time.RFC3339), m.By, a.next)
		return nil
	}
	results, err := probe.Run(ctx, checks, a.rc.Env.HealthWait, a.target(a.id))
	for _, res := range results {
		a.h.Log.Debugf("%s: %s after %d attempts (%s)", res.Check, res.Detail, res.Attempts, res.Duration.Round(time.Millisecond))
	}
	if err != nil {
		a.rc.Report.AddHealth(results)
	}
	return err
}

// switchBack puts the router and current back on the old slot, which
// still runs, after the public checks failed at failed, then stops the
// new one. How long the switch back took goes to the log and the report.
func (a *activation) switchBack(ctx context.Context, cause error, failed time.Time) error {
	ctx = context.WithoutCancel(ctx)
	old := a.st.Idle
	if old == nil {
		return fmt.Errorf("release %s failed its public health checks in %s, and no slot ran before it to switch back to: %w", a.id, a.next, cause)
	}
	if err := a.switchTo(ctx, *old, &a.next, a.svc.Router); err != nil {
		return fmt.Errorf("release %s failed its public health checks (%v), and switching back to %s failed: %w", a.id, cause, old, err)
	}
	took := time.Since(failed)
	a.rc.Report.Host(a.h).SwitchBack = took
	a.h.Switched, a.h.SwitchedBack = false, true
	a.h.Log.Infof("switched back: current -> releases/%s; router -> %s, %s after the public checks failed", old.Release, old, took.Round(time.Millisecond))
	// The router may still hand the new slot a request or two.
	a.drain(ctx)
	return fmt.Errorf("release %s failed its public health checks after the switch; the router and current are back on %s: %w", a.id, old, cause)
}

// drain lets the old slot finish its requests, for services.drain at
// most, then stops it and records it stopped. A failure only warns: the
// new release is live, and the old slot, still recorded, is stopped by
// the next deploy first.
func (a *activation) drain(ctx context.Context) {
	old := a.st.Idle
	if old == nil {
		return
	}
	cmds := []remote.Command{server.Drain(old.Port, a.svc.Drain, server.DrainQuiet)}
	results, errs := a.h.RunBatch(ctx, cmds...)
	if errs[0] != nil {
		a.h.Log.Warnf("drain %s: %v; the next deploy stops it first", old, errs[0])
		return
	}
	a.h.Log.Infof("%s", strings.TrimSpace(string(results[0].Stdout)))
	a.stopIdle(ctx)
}

// stopIdle stops the slot recorded as idle and records it stopped.
func (a *activation) stopIdle(ctx context.Context) {
	idle := a.st.Idle
	stops, err := server.SlotStop(a.svc, a.h.Layout, a.rc.Cfg.App, *idle)
	if err != nil {
		a.h.Log.Warnf("stop %s: %v", idle, err)
		return
	}
	stopped := a.st
	stopped.Idle = nil
	if err := remote.FirstError(a.runAll(ctx, append(stops, server.WriteRouterState(a.h.Layout, stopped)))); err != nil {
		a.h.Log.Warnf("stop %s: %v; the next deploy stops it first", idle, err)
		return
	}
	a.st = stopped
	a.h.Log.Infof("stopped %s", idle)
}
