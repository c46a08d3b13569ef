package check

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/stagecoach/stagecoach/stages/config"
	"github.com/stagecoach/stagecoach/stages/fleet"
	"github.com/stagecoach/stagecoach/stages/probe"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/slots"
)

// KindRouter is the check of the slots and the router (services.slots).
const KindRouter = "router"

// checkSlots reports which slot is live, whether it answers its own
// checks, a slot left running by a deploy that did not finish, and a
// router that points elsewhere than the state says (a router file
// edited by hand), and maintenance mode.
func (r checker) checkSlots(ctx context.Context, h *fleet.Host) []Result {
	res, done := timedCheck(h, KindRouter, KindRouter)
	svc := r.Env.Services
	routed, err := server.Run(ctx, h, server.ReadRouter(h.Layout, svc.Router))
	if err != nil {
		res.couldNotRun(err)
		return []Result{done()}
	}
	st := routed.Resolve()
	if st.Live == nil {
		res.fail(StatusWarn, "no slot is live yet", "deploy: the first deploy with slots starts the app in slot blue")
		return []Result{done()}
	}
	live := *st.Live
	var problems, notes []string
	action := ""
	if routed.State.Switching {
		notes = append(notes, "a deploy was stopped while it switched the router; current and the router say which slot is live")
	}
	if routed.Current != live.Release {
		problems = append(problems, fmt.Sprintf("current points at %s, not at the live slot's release", orNone(routed.Current)))
		action = "deploy again, or mage rollback: either puts current and the router on one slot"
	}
	if n := svc.Router.Nginx; n != nil {
		port, ok := routed.FilePort()
		switch {
		case routed.File == "":
			problems = append(problems, fmt.Sprintf("the router file %s is missing", n.File()))
			action = "deploy again: it writes the router file for the live slot"
		case routed.File != st.Router:
			what := "names no single port"
			if ok {
				what = fmt.Sprintf("sends traffic to port %d", port)
			}
			problems = append(problems, fmt.Sprintf("the router file %s is not the one Stagecoach wrote (edited by hand?): it %s", n.File(), what))
			action = fmt.Sprintf("put the file back or deploy again: Stagecoach owns %s and rewrites it at each switch; change nginx's own config instead", n.File())
		}
	}
	if m := st.Maintenance; m != nil {
		// Deliberate, so no failure, but a warning at every run: a
		// maintenance forgotten on would keep the site down unnoticed.
		notes = append(notes, fmt.Sprintf("maintenance is on since %s (by %s): the router answers every request with 503; mage maintenance off ends it", m.Since.Format(time.RFC3339), m.By))
	}
	if idle := st.Idle; idle != nil {
		notes = append(notes, fmt.Sprintf("%s may still run, left by a deploy that did not finish its drain; the next deploy stops it first", idle))
	}

	checks := slots.SlotChecks(r.Env.Health, live.Port)
	interval := r.Env.HealthWait.Interval
	target := probe.Target{Host: h.Name, Runner: h.Runner, Layout: h.Layout, Release: live.Release, Values: r.HostValues(h), Vars: h.Vars, Port: live.Port}
	results, err := probe.Run(ctx, checks, config.Wait{Deadline: 2 * interval, Interval: interval}, target)
	answers := "answers"
	if err != nil {
		answers = "does not answer"
		var failed []string
		for _, pr := range results {
			if !pr.OK {
				failed = append(failed, pr.Check+": "+pr.Detail)
			}
		}
		problems = append(problems, "the live slot does not answer its checks ("+strings.Join(failed, "; ")+")")
		if action == "" {
			action = fmt.Sprintf("read the app's logs on %s; mage rollback starts the previous release in the other slot and switches to it", h.Name)
		}
	}
	res.Message = fmt.Sprintf("live: %s, %s", live, answers)
	if len(notes) > 0 {
		res.Message += "; " + strings.Join(notes, "; ")
		res.Status = StatusWarn
	}
	if len(problems) > 0 {
		res.fail(StatusFailed, res.Message+"; "+strings.Join(problems, "; "), action)
	}
	return []Result{done()}
}

func orNone(s string) string {
	if s == "" {
		return "nothing"
	}
	return s
}
