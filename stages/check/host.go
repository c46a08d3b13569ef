package check

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stagecoach/stagecoach/stages/config"
	"github.com/stagecoach/stagecoach/stages/fleet"
	"github.com/stagecoach/stagecoach/stages/git"
	"github.com/stagecoach/stagecoach/stages/probe"
	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/slots"
	"github.com/stagecoach/stagecoach/stages/ui"
)

// checkHost runs every check of a connected host, concurrently as sessions
// on its one connection.
func (r checker) checkHost(ctx context.Context, h *fleet.Host, minFree DiskThreshold) []Result {
	hc := &hostChecks{}
	var wg sync.WaitGroup
	wg.Go(func() { hc.add(r.checkHealth(ctx, h)...) })
	wg.Go(func() { hc.add(r.checkDisk(ctx, h, minFree)) })
	wg.Go(func() { hc.add(r.checkLock(ctx, h)) })
	hc.add(r.checkState(ctx, h))
	if h.Live != "" {
		wg.Go(func() { hc.add(r.checkIntegrity(ctx, h)) })
		wg.Go(func() { hc.add(r.checkServices(ctx, h)...) })
		if slots.Enabled(r.Context) {
			wg.Go(func() { hc.add(r.checkSlots(ctx, h)...) })
		}
	}
	wg.Wait()
	return hc.results
}

// connectAction is what to do about a host the check could not connect
// to, by why: a host key that changed or is unknown needs a person to
// verify it before known_hosts is touched, refused keys need the host's
// authorized_keys or the identities setting, no answer needs the host up.
func connectAction(err error) string {
	var (
		changed *remote.HostKeyChangedError
		unknown *remote.UnknownHostKeyError
		auth    *remote.AuthError
		netErr  *net.OpError
	)
	switch {
	case errors.As(err, &changed):
		host, port := hostPort(changed.Host)
		return fmt.Sprintf("the host's SSH key is not the one recorded: do not deploy to it until you know why. "+
			"Ask its administrator whether it was reinstalled or its host keys regenerated, and have them read its fingerprint on the host "+
			"(ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub): only if it is %s, replace line %d of %s: "+
			"ssh-keygen -R '%s' -f %s, then ssh-keyscan -p %s %s >> %s",
			changed.Fingerprint, changed.Line, changed.KnownHostsFile,
			knownHostsName(host, port), changed.KnownHostsFile, port, host, changed.KnownHostsFile)
	case errors.As(err, &unknown):
		host, port := hostPort(unknown.Host)
		return fmt.Sprintf("%s has no key for the host: have its administrator confirm its fingerprint %s "+
			"(on the host: ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub), then add it: ssh-keyscan -p %s %s >> %s",
			unknown.KnownHostsFile, unknown.Fingerprint, port, host, unknown.KnownHostsFile)
	case errors.As(err, &auth):
		return fmt.Sprintf("%s accepts none of the keys offered: add the deploy key's public half to that user's ~/.ssh/authorized_keys there, "+
			"or name the right key file in the environment's ssh identities", auth.Target)
	case errors.As(err, &netErr), errors.Is(err, context.DeadlineExceeded):
		return "the host did not answer: see that it is up, that sshd listens on the configured port, " +
			"and that no firewall between here and there drops the connection"
	}
	return "the host could not be checked: see that it is up and that ssh to it works with the environment's ssh settings (known_hosts, identities)"
}

// hostPort splits host:port as dialled; a bare host is on port 22.
func hostPort(hostport string) (host, port string) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return hostport, strconv.Itoa(remote.DefaultSSHPort)
	}
	return host, port
}

// knownHostsName is how known_hosts names host on port.
func knownHostsName(host, port string) string {
	if port == strconv.Itoa(remote.DefaultSSHPort) {
		return host
	}
	return "[" + host + "]:" + port
}

// timedCheck starts a result and returns a function that stamps its
// duration.
func timedCheck(h *fleet.Host, kind, check string) (*Result, func() Result) {
	res := &Result{Host: h.Name, Kind: kind, Check: check, Status: StatusOK}
	start := time.Now()
	return res, func() Result {
		res.Duration = time.Since(start)
		return *res
	}
}

func (res *Result) fail(status, msg, action string) {
	res.Status, res.Message, res.Action = status, msg, action
}

// couldNotRun marks a check whose command did not run to completion.
func (res *Result) couldNotRun(err error) {
	res.fail(StatusError, err.Error(), "the check could not run on the host: see that the host is healthy and reachable, and run the check again")
}

// checkState reads the deploy state and the live release into h, saying
// clearly what is missing or unreadable.
func (r checker) checkState(ctx context.Context, h *fleet.Host) Result {
	res, done := timedCheck(h, KindState, KindState)
	path := h.Layout.StatePath()
	data, err := h.ReadOptional(ctx, path)
	if err != nil {
		res.couldNotRun(fmt.Errorf("read state file %s: %w", path, err))
		return done()
	}
	// Running and decoding apart: a command that did not run is not a
	// current that is wrong.
	readCurrent := server.ReadCurrent(h.Layout)
	out, err := h.Run(ctx, readCurrent.Cmd)
	if err != nil {
		res.couldNotRun(err)
		return done()
	}
	live, err := readCurrent.Decode(out, nil)
	if err != nil {
		res.fail(StatusFailed, fmt.Sprintf("%s: %v", h.Layout.CurrentLink(), err),
			"point current back at a release: mage rollback with STAGECOACH_RELEASE=<id>, or deploy")
		return done()
	}
	h.Live = live
	var state *server.State
	var parseErr error
	if data != nil {
		state, parseErr = server.ParseState(path, data)
	}
	switch {
	case live == "" && data == nil:
		res.fail(StatusFailed, fmt.Sprintf("nothing deployed: no current release and no state under %s", h.Layout.Root), "deploy first: mage deploy")
	case live == "":
		res.fail(StatusFailed, fmt.Sprintf("no current release under %s although a state file exists", h.Layout.Root),
			"deploy, or point current at a release with mage rollback (STAGECOACH_RELEASE=<id>)")
	case parseErr != nil:
		res.fail(StatusFailed, parseErr.Error(),
			fmt.Sprintf("move it aside (mv %s %s.bad); releases/%s stays live and the next deploy writes a new state, shipping every file", path, path, live))
	case data == nil:
		res.fail(StatusWarn, fmt.Sprintf("state file %s is missing; current points at releases/%s", path, live),
			"the deploy history and the deployed revision are lost: the next deploy ships every file and writes a new state")
	case state.Current != "" && state.Current != live:
		h.State = state
		res.fail(StatusWarn, fmt.Sprintf("state says releases/%s is live but current points at releases/%s (changed by hand?)", state.Current, live),
			"roll back or deploy with Stagecoach so the state matches the server again")
	default:
		h.State = state
		res.Message = "releases/" + live + " is live"
		if rel, ok := state.Release(live); ok && rel.Revision != "" {
			res.Message += " (revision " + git.Short(rel.Revision) + ")"
		}
	}
	return done()
}

// checkIntegrity hashes every file of the live release against its
// manifest, naming the files that differ.
func (r checker) checkIntegrity(ctx context.Context, h *fleet.Host) Result {
	res, done := timedCheck(h, KindIntegrity, KindIntegrity)
	verify, err := server.VerifyRelease(h.Layout, h.Live, server.VerifySpec{Shared: r.Env.Shared, AssetsDir: r.Env.Assets.Dir})
	if err != nil {
		res.couldNotRun(err)
		return done()
	}
	_, err = server.Run(ctx, h, verify)
	var mismatch *server.TreeMismatchError
	var unchecked *server.TreeUncheckedError
	switch {
	case err == nil:
		res.Message = "every file of releases/" + h.Live + " matches its manifest"
	case errors.As(err, &mismatch):
		tr := mismatch.Report
		res.Files = &FileDiffs{Modified: tr.Modified, Missing: tr.Missing, Extra: tr.Extra, BadLinks: tr.BadLinks}
		res.fail(StatusFailed, fmt.Sprintf("releases/%s differs from its manifest: %s", h.Live, tr),
			"files of the live release changed on the server after the deploy (a hand edit, tampering or disk corruption): find out which and why; mage rollback, or a deploy of a new commit, puts a verified tree live again")
	case errors.As(err, &unchecked):
		res.fail(StatusFailed, fmt.Sprintf("cannot verify releases/%s: %s", h.Live, exitStderr(err)),
			"the live release or its manifest lists (.stagecoach/manifests) are missing: deploy, or roll back to a complete release")
	default:
		res.couldNotRun(err)
	}
	return done()
}

func exitStderr(err error) string {
	var ee *remote.ExitError
	if errors.As(err, &ee) && strings.TrimSpace(ee.Stderr) != "" {
		return remote.Tail(ee.Stderr, 3)
	}
	return err.Error()
}

// checkDisk compares the free space of the root's filesystem with the
// threshold.
func (r checker) checkDisk(ctx context.Context, h *fleet.Host, min DiskThreshold) Result {
	res, done := timedCheck(h, KindDisk, KindDisk)
	du, err := server.Run(ctx, h, server.DiskFree(h.Layout))
	if err != nil {
		res.couldNotRun(err)
		return done()
	}
	free, total := du.AvailKB*1024, du.TotalKB*1024
	res.Disk = &DiskSpace{Mount: du.Mount, FreeBytes: free, TotalBytes: total}
	res.Message = fmt.Sprintf("%s free of %s (%s) on %s", ui.Bytes(free), ui.Bytes(total), percent(free, total), du.Mount)
	if min.Below(free, total) {
		res.fail(StatusFailed, fmt.Sprintf("only %s, below the minimum %s", res.Message, min),
			fmt.Sprintf("free space on %s: mage cleanup removes old releases, backups and uploads (lower keep_releases to keep fewer); logs and docker images are the other usual suspects", du.Mount))
	}
	return done()
}

func percent(part, whole int64) string {
	if whole <= 0 {
		return "?%"
	}
	return strconv.FormatFloat(float64(part)*100/float64(whole), 'f', 1, 64) + "%"
}

// checkLock reports a deploy lock held longer than check.lock_max_age, by
// the server's clock.
func (r checker) checkLock(ctx context.Context, h *fleet.Host) Result {
	res, done := timedCheck(h, KindLock, KindLock)
	readLock := server.ReadLock(h.Layout)
	out, err := h.Run(ctx, readLock.Cmd)
	if err != nil {
		res.couldNotRun(err)
		return done()
	}
	st, err := readLock.Decode(out, nil)
	if err != nil {
		res.fail(StatusFailed, fmt.Sprintf("deploy lock %s is unreadable: %v", h.Layout.LockDir(), err),
			"if no deploy is running, remove the lock directory by hand")
		return done()
	}
	maxAge := r.Env.Check.LockMaxAge
	res.held = st.Held
	switch {
	case !st.Held:
		res.Message = "no deploy running"
	case st.HeldFor <= maxAge:
		res.Message = fmt.Sprintf("deploy running for %s: %s", st.HeldFor, st.Holder.Describe(r.Fleet.Lease.TTL))
	default:
		action := fmt.Sprintf("its holder is alive (heartbeat %s ago): see what %s, pid %d, is doing and stop it if it hangs",
			st.Holder.Age.Round(time.Second), ui.Or(st.Holder.Info.Holder, "an unknown holder"), st.Holder.Info.PID)
		if st.Holder.Stale(r.Fleet.Lease.TTL) {
			action = "its holder stopped its heartbeat, so that deploy is dead: the next deploy breaks the lock when run with STAGECOACH_BREAK_LOCK=1"
		}
		res.fail(StatusFailed, fmt.Sprintf("deploy lock stuck: held for %s, longer than check.lock_max_age %s; %s", st.HeldFor, maxAge, st.Holder.Describe(r.Fleet.Lease.TTL)), action)
	}
	return done()
}

// checkServices asks the service manager about the live release's
// services. Managers without a status (command, none) are skipped: the
// health checks stand for them.
func (r checker) checkServices(ctx context.Context, h *fleet.Host) []Result {
	res, done := timedCheck(h, KindService, KindService)
	m := r.Env.Services
	status, ok, err := server.Status(m, h.Layout, h.Live, r.Cfg.App)
	if err != nil {
		res.couldNotRun(err)
		return []Result{done()}
	}
	if !ok {
		res.Status = StatusSkipped
		res.Message = fmt.Sprintf("the %s service manager reports no status; the health checks stand for the services", ui.Or(m.Manager, server.ManagerNone))
		return []Result{done()}
	}
	statuses, err := server.Run(ctx, h, status)
	if err != nil {
		res.couldNotRun(err)
		return []Result{done()}
	}
	if len(statuses) == 0 {
		res.fail(StatusFailed, fmt.Sprintf("no %s services of releases/%s are running", m.Manager, h.Live),
			"start them: mage rollback to the same release restarts them, or start them by hand and read their logs")
		return []Result{done()}
	}
	base := done()
	var out2 []Result
	for _, s := range statuses {
		c := base
		c.Check = "service " + s.Name
		c.Message = s.State
		if s.Health != "" {
			c.Message += " (" + s.Health + ")"
		}
		switch {
		case s.State == "running" && s.Health == "starting":
			// Just restarted (a deploy a moment ago): its first
			// healthcheck has not run yet. The health checks judge it.
			c.Status = StatusWarn
			c.Message = s.Name + " is running; its healthcheck has not passed yet (starting)"
		case !s.Healthy():
			c.fail(StatusFailed, fmt.Sprintf("%s is %s", s.Name, c.Message),
				fmt.Sprintf("read its logs on %s and restart it through %s", h.Name, m.Manager))
		}
		out2 = append(out2, c)
	}
	return out2
}

// checkHealth runs the configured health checks once, retrying a quick
// failure within a short window so a blip is not reported.
func (r checker) checkHealth(ctx context.Context, h *fleet.Host) []Result {
	checks := r.Env.Health
	if slots.Enabled(r.Context) {
		// The slot's own checks run against the live slot (checkSlots).
		checks = slots.PublicChecks(checks)
	}
	if len(checks) == 0 {
		return []Result{{Host: h.Name, Kind: KindHealth, Check: KindHealth, Status: StatusSkipped, Message: "no health checks configured"}}
	}
	if slots.Enabled(r.Context) {
		// In maintenance the router answers the public checks with 503:
		// failing them would page for a deliberate outage, and self-heal
		// would roll back a healthy release. checkSlots reports it.
		if routed, err := server.Run(ctx, h, server.ReadRouter(h.Layout, r.Env.Services.Router)); err == nil && routed.Resolve().Maintenance != nil {
			return []Result{{Host: h.Name, Kind: KindHealth, Check: KindHealth, Status: StatusSkipped, Message: "maintenance is on: the public checks through the router are not run; the live slot is checked directly (router)"}}
		}
	}
	interval := r.Env.HealthWait.Interval
	target := probe.Target{Host: h.Name, Runner: h.Runner, Layout: h.Layout, Release: r.currentRelease(ctx, h), Values: r.HostValues(h), Vars: h.Vars}
	results, _ := probe.Run(ctx, checks, config.Wait{Deadline: 2 * interval, Interval: interval}, target)
	out := make([]Result, 0, len(results))
	for _, hr := range results {
		c := Result{Host: h.Name, Kind: KindHealth, Check: hr.Check, Status: StatusOK, Duration: hr.Duration, Message: hr.Detail}
		if !hr.OK {
			c.fail(StatusFailed, fmt.Sprintf("%s (%s)", hr.Detail, plural(hr.Attempts, "attempt")),
				fmt.Sprintf("the app on %s does not answer as it should: read its logs; mage rollback goes back to the previous release (check.self_heal does that by itself)", h.Name))
		}
		out = append(out, c)
	}
	return out
}

// currentRelease is current's target on h, "" when it cannot be read
// (checkState reports why): command checks then run in the login
// directory. checkState sets h.Live concurrently, so this reads current
// itself.
func (r checker) currentRelease(ctx context.Context, h *fleet.Host) string {
	commands := false
	for _, c := range r.Env.Health {
		commands = commands || c.Command != ""
	}
	if !commands {
		return ""
	}
	readCurrent := server.ReadCurrent(h.Layout)
	out, err := h.Runner.Run(ctx, readCurrent.Cmd)
	if err != nil {
		return ""
	}
	live, err := readCurrent.Decode(out, nil)
	if err != nil {
		return ""
	}
	return live
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}
