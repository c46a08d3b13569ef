package stages

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stagecoach/stagecoach/stages/config"
	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/ui"
)

// Kinds of check, in the order they are reported.
const (
	KindConnect   = "connect"
	KindState     = "state"
	KindLock      = "lock"
	KindDisk      = "disk"
	KindIntegrity = "integrity"
	KindService   = "service"
	KindHealth    = "health"
)

var kindOrder = map[string]int{KindConnect: 0, KindState: 1, KindLock: 2, KindDisk: 3, KindIntegrity: 4, KindService: 5, KindHealth: 6}

// Outcomes of a check.
const (
	CheckOK      = "ok"
	CheckWarn    = "warn"    // worth a look, but the release is healthy
	CheckFailed  = "failed"  // unhealthy
	CheckError   = "error"   // could not be checked (host unreachable, a command failed to run)
	CheckSkipped = "skipped" // does not apply here
)

// DefaultMinFreeDisk is the free-disk threshold when check.min_free_disk
// is not set.
const DefaultMinFreeDisk = "5%"

// CheckResult is one check on one host.
type CheckResult struct {
	Host     string        `json:"host"`
	Kind     string        `json:"kind"`
	Check    string        `json:"check"` // unique per host, e.g. "integrity", "health GET http://web1/healthz"
	Status   string        `json:"status"`
	Duration time.Duration `json:"duration_ns"`
	Message  string        `json:"message"`          // what was seen, or what is wrong
	Action   string        `json:"action,omitempty"` // what to do about a failure
	Files    *FileDiffs    `json:"files,omitempty"`  // integrity: the files that differ
	Disk     *DiskSpace    `json:"disk,omitempty"`   // disk: the filesystem holding the root
}

// FileDiffs lists how the live release differs from its manifest.
type FileDiffs struct {
	Modified []string `json:"modified,omitempty"`
	Missing  []string `json:"missing,omitempty"`
	Extra    []string `json:"extra,omitempty"`
	BadLinks []string `json:"bad_links,omitempty"`
}

// DiskSpace is the free space of the filesystem holding the deploy root.
type DiskSpace struct {
	Mount      string `json:"mount"`
	FreeBytes  int64  `json:"free_bytes"`
	TotalBytes int64  `json:"total_bytes"`
}

// HealAction is what self-heal did on one host.
type HealAction struct {
	Host     string        `json:"host"`
	From     string        `json:"from"` // the release that failed its health checks
	To       string        `json:"to,omitempty"`
	Cause    string        `json:"cause"`
	OK       bool          `json:"ok"`
	Error    string        `json:"error,omitempty"`
	Duration time.Duration `json:"duration_ns"`
}

// CheckReport is the outcome of Run.Check, for people and machines.
type CheckReport struct {
	App         string        `json:"app"`
	Environment string        `json:"environment"`
	Started     time.Time     `json:"started"`
	Duration    time.Duration `json:"duration_ns"`
	Result      string        `json:"result"` // ok | unhealthy | unreachable | healed
	ExitCode    int           `json:"exit_code"`
	Checks      []CheckResult `json:"checks"`
	SelfHeal    []HealAction  `json:"self_heal,omitempty"`
}

// Failed returns the checks that failed or could not run.
func (rep *CheckReport) Failed() []CheckResult {
	var out []CheckResult
	for _, c := range rep.Checks {
		if c.Status == CheckFailed || c.Status == CheckError {
			out = append(out, c)
		}
	}
	return out
}

// JSON encodes the report, indented, with a trailing newline.
func (rep *CheckReport) JSON() ([]byte, error) {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// hostChecks collects the results of one host's concurrent checks.
type hostChecks struct {
	mu      sync.Mutex
	results []CheckResult
}

func (hc *hostChecks) add(rs ...CheckResult) {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	hc.results = append(hc.results, rs...)
}

// Check is the cron job: per host, over one connection and without the
// deploy lock, it checks the deploy state, the lock (stuck when held longer
// than check.lock_max_age), free disk against check.min_free_disk, every
// file of the live release against its manifest's SHA-256, the services
// and the health checks. It prints nothing when every check passes; each
// failure is logged with what to do, and with -v every check is listed with
// its duration. With check.self_heal, a host whose health fails is rolled
// back to its previous release under the deploy lock. The Prometheus
// textfile is written when check.prometheus is set. The error carries the
// exit code: Unhealthy, Unreachable, RolledBack (healed) or BadConfig.
func (r *Run) Check(ctx context.Context) (*CheckReport, error) {
	minFree, err := ParseDiskThreshold(r.Env.Check.MinFreeDisk)
	if err != nil {
		return nil, exitcode.Errorf(exitcode.BadConfig, "%s: environments.%s.check.min_free_disk: %v", r.Cfg.File, r.Env.Name, err)
	}
	rep := &CheckReport{App: r.Cfg.App, Environment: r.Env.Name, Started: time.Now()}
	hosts := make([]*Host, len(r.Env.Hosts))
	for i, name := range r.Env.Hosts {
		hosts[i] = &Host{Name: name, Layout: server.Layout{Root: hostRoot(r.Env.Root, name)}, Log: r.Log.With(name)}
	}
	defer closeHosts(hosts)
	results := make(map[*Host]*hostChecks, len(hosts))
	for _, h := range hosts {
		results[h] = &hostChecks{}
	}
	r.eachHost(ctx, hosts, "check", func(ctx context.Context, h *Host) error {
		start := time.Now()
		runner, err := r.dial(ctx, h.Name)
		res := CheckResult{Host: h.Name, Kind: KindConnect, Check: KindConnect, Status: CheckOK, Duration: time.Since(start), Message: "connected"}
		if err != nil {
			res.Status, res.Message = CheckError, err.Error()
			res.Action = "the host could not be checked: see that it is up and that ssh to it works with the environment's ssh settings (known_hosts, identities)"
			results[h].add(res)
			return nil
		}
		h.Runner = runner
		results[h].add(res)
		results[h].add(r.checkHost(ctx, h, minFree)...)
		return nil
	})

	if r.Env.Check.SelfHeal {
		var sick []*Host
		causes := map[*Host]string{}
		for _, h := range hosts {
			if cause := healthFailure(results[h].results); cause != "" && h.Runner != nil {
				sick = append(sick, h)
				causes[h] = cause
			}
		}
		if len(sick) > 0 {
			rep.SelfHeal = r.selfHeal(ctx, sick, causes, results, minFree)
		}
	}

	for _, h := range hosts {
		rs := results[h].results
		sort.SliceStable(rs, func(i, j int) bool {
			if kindOrder[rs[i].Kind] != kindOrder[rs[j].Kind] {
				return kindOrder[rs[i].Kind] < kindOrder[rs[j].Kind]
			}
			return rs[i].Check < rs[j].Check
		})
		for i := range rs {
			rs[i].Message, rs[i].Action = r.Log.Redact(rs[i].Message), r.Log.Redact(rs[i].Action)
		}
		rep.Checks = append(rep.Checks, rs...)
	}
	rep.Duration = time.Since(rep.Started)
	err = rep.conclude()
	r.printCheck(rep)
	if path := r.Env.Check.Prometheus; path != "" {
		if !filepath.IsAbs(path) {
			path = filepath.Join(r.Cfg.Dir, path)
		}
		if werr := WritePrometheus(path, rep, time.Now()); werr != nil {
			r.Log.Errorf("write prometheus textfile: %v", werr)
			if err == nil {
				err = exitcode.With(exitcode.Failed, fmt.Errorf("write prometheus textfile: %w", werr))
			}
		}
	}
	return rep, err
}

// conclude sets the report's result and exit code from its checks: a
// failed check makes it unhealthy; otherwise a host that could not be
// checked makes it unreachable; otherwise a successful self-heal is
// reported as a rollback.
func (rep *CheckReport) conclude() error {
	var failed, errored []string
	for _, c := range rep.Checks {
		switch c.Status {
		case CheckFailed:
			failed = append(failed, c.Check+" on "+c.Host)
		case CheckError:
			errored = append(errored, c.Check+" on "+c.Host)
		}
	}
	var healed []string
	for _, a := range rep.SelfHeal {
		if a.OK {
			healed = append(healed, fmt.Sprintf("%s rolled back from %s to %s", a.Host, a.From, a.To))
		}
	}
	var err error
	switch {
	case len(failed) > 0:
		rep.Result = "unhealthy"
		err = exitcode.Errorf(exitcode.Unhealthy, "check %s: unhealthy: %s failed", rep.Environment, listAnd(failed))
	case len(errored) > 0:
		rep.Result = "unreachable"
		err = exitcode.Errorf(exitcode.Unreachable, "check %s: could not check: %s", rep.Environment, listAnd(errored))
	case len(healed) > 0:
		rep.Result = "healed"
		err = exitcode.Errorf(exitcode.RolledBack, "check %s: health failed and self-heal rolled back: %s; the old release is healthy", rep.Environment, strings.Join(healed, "; "))
	default:
		rep.Result = "ok"
	}
	rep.ExitCode = exitcode.Of(err)
	return err
}

func listAnd(items []string) string {
	if len(items) > 4 {
		return strings.Join(items[:4], ", ") + fmt.Sprintf(" and %d more", len(items)-4)
	}
	return strings.Join(items, ", ")
}

// printCheck logs every failure and warning with what to do; in verbose
// mode it also lists every check with its duration. All passing and not
// verbose, it prints nothing: cron mails only output.
func (r *Run) printCheck(rep *CheckReport) {
	for _, c := range rep.Checks {
		switch c.Status {
		case CheckFailed, CheckError:
			r.Log.Errorf("%s: %s: %s", c.Host, c.Check, c.Message)
		case CheckWarn:
			r.Log.Warnf("%s: %s: %s", c.Host, c.Check, c.Message)
		default:
			continue
		}
		if c.Action != "" {
			r.Log.Infof("  what to do: %s", c.Action)
		}
	}
	if !r.Log.Verbose() {
		return
	}
	rows := make([][]string, 0, len(rep.Checks))
	for _, c := range rep.Checks {
		msg := c.Message
		if len(msg) > 120 {
			msg = msg[:117] + "..."
		}
		rows = append(rows, []string{c.Host, c.Check, c.Status, ui.Round(c.Duration).String(), msg})
	}
	var table strings.Builder
	ui.Table(&table, []string{"HOST", "CHECK", "STATUS", "DURATION", "DETAIL"}, rows)
	fmt.Fprintf(&table, "\ncheck %s: %s in %s", rep.Environment, rep.Result, ui.Round(rep.Duration))
	r.Log.Infof("%s", table.String())
}

// checkHost runs every check of a connected host, concurrently as sessions
// on its one connection.
func (r *Run) checkHost(ctx context.Context, h *Host, minFree DiskThreshold) []CheckResult {
	hc := &hostChecks{}
	var wg sync.WaitGroup
	wg.Go(func() { hc.add(r.checkHealth(ctx, h)...) })
	wg.Go(func() { hc.add(r.checkDisk(ctx, h, minFree)) })
	wg.Go(func() { hc.add(r.checkLock(ctx, h)) })
	hc.add(r.checkState(ctx, h))
	if h.Live != "" {
		wg.Go(func() { hc.add(r.checkIntegrity(ctx, h)) })
		wg.Go(func() { hc.add(r.checkServices(ctx, h)...) })
	}
	wg.Wait()
	return hc.results
}

// timedCheck starts a result and returns a function that stamps its
// duration.
func timedCheck(h *Host, kind, check string) (*CheckResult, func() CheckResult) {
	res := &CheckResult{Host: h.Name, Kind: kind, Check: check, Status: CheckOK}
	start := time.Now()
	return res, func() CheckResult {
		res.Duration = time.Since(start)
		return *res
	}
}

func (res *CheckResult) fail(status, msg, action string) {
	res.Status, res.Message, res.Action = status, msg, action
}

// couldNotRun marks a check whose command did not run to completion.
func (res *CheckResult) couldNotRun(err error) {
	res.fail(CheckError, err.Error(), "the check could not run on the host: see that the host is healthy and reachable, and run the check again")
}

// checkState reads the deploy state and the live release into h, saying
// clearly what is missing or unreadable.
func (r *Run) checkState(ctx context.Context, h *Host) CheckResult {
	res, done := timedCheck(h, KindState, KindState)
	path := h.Layout.StatePath()
	data, err := h.readOptional(ctx, path)
	if err != nil {
		res.couldNotRun(fmt.Errorf("read state file %s: %w", path, err))
		return done()
	}
	out, err := h.run(ctx, server.ReadCurrent(h.Layout))
	if err != nil {
		res.couldNotRun(err)
		return done()
	}
	live, err := server.ParseCurrent(out.Stdout)
	if err != nil {
		res.fail(CheckFailed, fmt.Sprintf("%s: %v", h.Layout.CurrentLink(), err),
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
		res.fail(CheckFailed, fmt.Sprintf("nothing deployed: no current release and no state under %s", h.Layout.Root), "deploy first: mage deploy")
	case live == "":
		res.fail(CheckFailed, fmt.Sprintf("no current release under %s although a state file exists", h.Layout.Root),
			"deploy, or point current at a release with mage rollback (STAGECOACH_RELEASE=<id>)")
	case parseErr != nil:
		res.fail(CheckFailed, parseErr.Error(),
			fmt.Sprintf("move it aside (mv %s %s.bad); releases/%s stays live and the next deploy writes a new state, shipping every file", path, path, live))
	case data == nil:
		res.fail(CheckWarn, fmt.Sprintf("state file %s is missing; current points at releases/%s", path, live),
			"the deploy history and the deployed revision are lost: the next deploy ships every file and writes a new state")
	case state.Current != "" && state.Current != live:
		h.State = state
		res.fail(CheckWarn, fmt.Sprintf("state says releases/%s is live but current points at releases/%s (changed by hand?)", state.Current, live),
			"roll back or deploy with Stagecoach so the state matches the server again")
	default:
		h.State = state
		res.Message = "releases/" + live + " is live"
		if rel, ok := state.Release(live); ok && rel.Revision != "" {
			res.Message += " (revision " + short(rel.Revision) + ")"
		}
	}
	return done()
}

// checkIntegrity hashes every file of the live release against its
// manifest, naming the files that differ.
func (r *Run) checkIntegrity(ctx context.Context, h *Host) CheckResult {
	res, done := timedCheck(h, KindIntegrity, KindIntegrity)
	cmd, err := server.VerifyRelease(h.Layout, h.Live, server.VerifySpec{Shared: r.Env.Shared, AssetsDir: r.Env.Assets.Dir})
	if err != nil {
		res.couldNotRun(err)
		return done()
	}
	out, err := h.run(ctx, cmd)
	switch code := server.ExitCode(err); {
	case err == nil:
		res.Message = "every file of releases/" + h.Live + " matches its manifest"
	case code == server.ExitTreeMismatch:
		tr := server.ParseTreeReport(out.Stdout)
		res.Files = &FileDiffs{Modified: tr.Modified, Missing: tr.Missing, Extra: tr.Extra, BadLinks: tr.BadLinks}
		res.fail(CheckFailed, fmt.Sprintf("releases/%s differs from its manifest: %s", h.Live, tr),
			"files of the live release changed on the server after the deploy (a hand edit, tampering or disk corruption): find out which and why; mage rollback, or a deploy of a new commit, puts a verified tree live again")
	case code == 2:
		// verify_tree could not compare: the manifest lists or the
		// release directory are gone.
		res.fail(CheckFailed, fmt.Sprintf("cannot verify releases/%s: %s", h.Live, exitStderr(err)),
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
func (r *Run) checkDisk(ctx context.Context, h *Host, min DiskThreshold) CheckResult {
	res, done := timedCheck(h, KindDisk, KindDisk)
	out, err := h.run(ctx, server.DiskFree(h.Layout))
	if err != nil {
		res.couldNotRun(err)
		return done()
	}
	du, err := server.ParseDiskFree(out.Stdout)
	if err != nil {
		res.couldNotRun(err)
		return done()
	}
	free, total := du.AvailKB*1024, du.TotalKB*1024
	res.Disk = &DiskSpace{Mount: du.Mount, FreeBytes: free, TotalBytes: total}
	res.Message = fmt.Sprintf("%s free of %s (%s) on %s", ui.Bytes(free), ui.Bytes(total), percent(free, total), du.Mount)
	if min.Below(free, total) {
		res.fail(CheckFailed, fmt.Sprintf("only %s, below the minimum %s", res.Message, min),
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
func (r *Run) checkLock(ctx context.Context, h *Host) CheckResult {
	res, done := timedCheck(h, KindLock, KindLock)
	out, err := h.run(ctx, server.ReadLock(h.Layout))
	if err != nil {
		res.couldNotRun(err)
		return done()
	}
	st, err := server.ParseLock(out.Stdout)
	if err != nil {
		res.fail(CheckFailed, fmt.Sprintf("deploy lock %s is unreadable: %v", h.Layout.LockDir(), err),
			"if no deploy is running, remove the lock directory by hand")
		return done()
	}
	maxAge := r.Env.Check.LockMaxAge
	if maxAge <= 0 {
		maxAge = config.DefaultLockMaxAge
	}
	switch {
	case !st.Held:
		res.Message = "no deploy running"
	case st.HeldFor <= maxAge:
		res.Message = fmt.Sprintf("deploy running for %s: %s", st.HeldFor, st.Holder.Describe(leaseTTL))
	default:
		action := fmt.Sprintf("its holder is alive (heartbeat %s ago): see what %s, pid %d, is doing and stop it if it hangs",
			st.Holder.Age.Round(time.Second), orUnknown(st.Holder.Info.Holder), st.Holder.Info.PID)
		if st.Holder.Stale(leaseTTL) {
			action = "its holder stopped its heartbeat, so that deploy is dead: the next deploy breaks the lock when run with STAGECOACH_BREAK_LOCK=1"
		}
		res.fail(CheckFailed, fmt.Sprintf("deploy lock stuck: held for %s, longer than check.lock_max_age %s; %s", st.HeldFor, maxAge, st.Holder.Describe(leaseTTL)), action)
	}
	return done()
}

func orUnknown(s string) string {
	if s == "" {
		return "an unknown holder"
	}
	return s
}

// checkServices asks the service manager about the live release's
// services. Managers without a status (command, none) are skipped: the
// health checks stand for them.
func (r *Run) checkServices(ctx context.Context, h *Host) []CheckResult {
	res, done := timedCheck(h, KindService, KindService)
	m := r.Env.Services
	cmd, ok, err := server.Status(m, h.Layout, h.Live, r.Cfg.App)
	if err != nil {
		res.couldNotRun(err)
		return []CheckResult{done()}
	}
	if !ok {
		res.Status = CheckSkipped
		res.Message = fmt.Sprintf("the %s service manager reports no status; the health checks stand for the services", orDefault(m.Manager, server.ManagerNone))
		return []CheckResult{done()}
	}
	out, err := h.run(ctx, cmd)
	if err != nil {
		res.couldNotRun(err)
		return []CheckResult{done()}
	}
	statuses, err := server.ParseStatus(m.Manager, out.Stdout)
	if err != nil {
		res.couldNotRun(err)
		return []CheckResult{done()}
	}
	if len(statuses) == 0 {
		res.fail(CheckFailed, fmt.Sprintf("no %s services of releases/%s are running", m.Manager, h.Live),
			"start them: mage rollback to the same release restarts them, or start them by hand and read their logs")
		return []CheckResult{done()}
	}
	base := done()
	var out2 []CheckResult
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
			c.Status = CheckWarn
			c.Message = s.Name + " is running; its healthcheck has not passed yet (starting)"
		case !s.Healthy():
			c.fail(CheckFailed, fmt.Sprintf("%s is %s", s.Name, c.Message),
				fmt.Sprintf("read its logs on %s and restart it through %s", h.Name, m.Manager))
		}
		out2 = append(out2, c)
	}
	return out2
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// checkHealth runs the configured health checks once, retrying a quick
// failure within a short window so a blip is not reported.
func (r *Run) checkHealth(ctx context.Context, h *Host) []CheckResult {
	if len(r.Env.Health) == 0 {
		return []CheckResult{{Host: h.Name, Kind: KindHealth, Check: KindHealth, Status: CheckSkipped, Message: "no health checks configured"}}
	}
	interval := r.Env.HealthWait.Interval
	if interval <= 0 {
		interval = config.DefaultWaitInterval
	}
	results, _ := Health(ctx, r.Env.Health, config.Wait{Deadline: 2 * interval, Interval: interval}, h.Name, h.Runner)
	out := make([]CheckResult, 0, len(results))
	for _, hr := range results {
		c := CheckResult{Host: h.Name, Kind: KindHealth, Check: "health " + hr.Check, Status: CheckOK, Duration: hr.Duration, Message: hr.Detail}
		if !hr.OK {
			c.fail(CheckFailed, fmt.Sprintf("%s (%s)", hr.Detail, plural(hr.Attempts, "attempt")),
				fmt.Sprintf("the app on %s does not answer as it should: read its logs; mage rollback goes back to the previous release (check.self_heal does that by itself)", h.Name))
		}
		out = append(out, c)
	}
	return out
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}

// healthFailure describes a host's failed health checks, "" when they
// passed.
func healthFailure(results []CheckResult) string {
	var failed []string
	for _, c := range results {
		if c.Kind == KindHealth && c.Status == CheckFailed {
			failed = append(failed, c.Check+": "+c.Message)
		}
	}
	return strings.Join(failed, "; ")
}

// selfHeal rolls the sick hosts back to their previous release under the
// deploy lock, records it in their state and checks them again, replacing
// their results.
func (r *Run) selfHeal(ctx context.Context, sick []*Host, causes map[*Host]string, results map[*Host]*hostChecks, minFree DiskThreshold) []HealAction {
	checked := map[*Host]string{}
	for _, h := range sick {
		checked[h] = h.Live
	}
	actions := make([]HealAction, len(sick))
	for i, h := range sick {
		actions[i] = HealAction{Host: h.Name, From: h.Live, Cause: causes[h]}
	}
	r.Hosts, r.connected = sick, true
	r.Command = "check (self-heal)"
	release, err := r.Hold(ctx)
	if err != nil {
		for i := range actions {
			actions[i].Error = "could not take the deploy lock: " + err.Error()
		}
		r.Log.Errorf("self-heal: %v", err)
		return actions
	}
	defer release()
	index := map[*Host]int{}
	for i, h := range sick {
		index[h] = i
	}
	r.eachHost(ctx, sick, "self-heal", func(ctx context.Context, h *Host) error {
		a := &actions[index[h]]
		start := time.Now()
		to, err := r.healHost(ctx, h, checked[h], a.Cause)
		a.To, a.Duration, a.OK = to, time.Since(start), err == nil
		if err != nil {
			a.Error = err.Error()
			h.Log.Errorf("self-heal: %v", err)
		}
		rs := []CheckResult{{Host: h.Name, Kind: KindConnect, Check: KindConnect, Status: CheckOK, Message: "connected"}}
		results[h].mu.Lock()
		results[h].results = append(rs, r.checkHost(ctx, h, minFree)...)
		results[h].mu.Unlock()
		return nil
	})
	return actions
}

// healHost rolls h back from the release checked to the previous one when
// that one is intact; if it is not healthy either, the release that was
// live goes back. Either way the state records it.
func (r *Run) healHost(ctx context.Context, h *Host, checked, cause string) (string, error) {
	if h.Live == "" || h.Live != checked {
		return "", fmt.Errorf("the live release changed since the check (%s, now %s): left alone", checked, orUnknown(h.Live))
	}
	prev, ok := h.State.Previous()
	if !ok {
		return "", fmt.Errorf("releases/%s is unhealthy and there is no previous release to roll back to", h.Live)
	}
	cmd, err := server.VerifyRelease(h.Layout, prev.ID, server.VerifySpec{Shared: r.Env.Shared, AssetsDir: r.Env.Assets.Dir})
	if err != nil {
		return "", err
	}
	if out, err := h.run(ctx, cmd); err != nil {
		if server.ExitCode(err) == server.ExitTreeMismatch {
			return "", fmt.Errorf("previous release %s differs from its manifest (%s): not rolling back to it", prev.ID, server.ParseTreeReport(out.Stdout))
		}
		return "", fmt.Errorf("verify previous release %s: %w", prev.ID, err)
	}
	left := h.Live
	start := time.Now()
	h.Log.Warnf("self-heal: releases/%s failed its health checks (%s); rolling back to %s", left, cause, prev.ID)
	d := server.Deploy{ID: prev.ID, Revision: prev.Revision, User: whoAmI(), Host: hostName(), Started: start,
		Result: server.ResultSelfHeal, Stage: "health", Error: r.Log.Redact("health failed on " + left + ": " + cause)}
	if err := r.rollbackTo(ctx, h, prev.ID, false); err != nil {
		h.Log.Errorf("self-heal: %v; putting releases/%s back", err, left)
		if serr := h.exec(ctx)(server.Switch(h.Layout, left)); serr == nil {
			if rerr := r.restart(ctx, h, left); rerr != nil {
				h.Log.Errorf("self-heal: restart %s: %v", left, rerr)
			}
		} else {
			h.Log.Errorf("self-heal: switch back to %s: %v", left, serr)
		}
		d.ID, d.Revision, d.Duration = left, "", time.Since(start)
		d.Error = r.Log.Redact(fmt.Sprintf("%s; rollback to %s failed: %v", d.Error, prev.ID, err))
		r.recordHeal(ctx, h, d)
		return "", fmt.Errorf("rolled back to %s but it is not healthy either, so releases/%s is live again: %w", prev.ID, left, err)
	}
	h.Live = prev.ID
	if err := h.State.Promote(prev.ID); err != nil {
		return prev.ID, err
	}
	if rel, ok := h.State.Release(left); ok {
		rel.Status = server.StatusFailed
		h.State.AddRelease(rel)
	}
	if prev.Revision != "" {
		// Detect diffs against the live release's revision from now on.
		h.State.Revision = prev.Revision
	}
	d.Duration = time.Since(start)
	r.recordHeal(ctx, h, d)
	h.Log.Warnf("self-heal: rolled back from %s to %s in %s; the state marks %s failed", left, prev.ID, ui.Round(d.Duration), left)
	return prev.ID, nil
}

// recordHeal adds a self-heal entry to h's deploy history and saves it.
func (r *Run) recordHeal(ctx context.Context, h *Host, d server.Deploy) {
	if err := h.State.RecordDeploy(d); err != nil {
		h.Log.Warnf("record self-heal: %v", err)
		return
	}
	if err := h.saveState(context.WithoutCancel(ctx)); err != nil {
		h.Log.Warnf("%v", err)
	}
}

// DiskThreshold is the least free space a check accepts: a share of the
// filesystem (Percent) or an absolute size (Bytes).
type DiskThreshold struct {
	Percent float64
	Bytes   int64
}

var sizeUnits = map[string]int64{"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}

// ParseDiskThreshold reads check.min_free_disk: "10%", "2GB", "500MB",
// "1.5G", "200MiB" or a plain number of bytes. Sizes are binary (1GB =
// 1024 MB), as the sizes Stagecoach prints. "" is DefaultMinFreeDisk.
func ParseDiskThreshold(s string) (DiskThreshold, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		s = DefaultMinFreeDisk
	}
	if num, ok := strings.CutSuffix(s, "%"); ok {
		p, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
		if err != nil || p < 0 || p >= 100 || math.IsNaN(p) {
			return DiskThreshold{}, fmt.Errorf("%q is not a percentage from 0 to below 100, like 10%%", s)
		}
		return DiskThreshold{Percent: p}, nil
	}
	i := len(s)
	for i > 0 && strings.ContainsRune("kKmMgGtTiIbB", rune(s[i-1])) {
		i--
	}
	num, unit := strings.TrimSpace(s[:i]), strings.ToLower(s[i:])
	unit = strings.TrimSuffix(unit, "b")
	unit = strings.TrimSuffix(unit, "i")
	mult, ok := sizeUnits[unit]
	if !ok || (unit == "" && strings.ToLower(s[i:]) == "i") {
		return DiskThreshold{}, fmt.Errorf("%q is not a size like 500MB, 2GB or 10%%", s)
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 || math.IsNaN(v) || math.IsInf(v, 0) || v*float64(mult) > math.MaxInt64/2 {
		return DiskThreshold{}, fmt.Errorf("%q is not a size like 500MB, 2GB or 10%%", s)
	}
	return DiskThreshold{Bytes: int64(v * float64(mult))}, nil
}

// Below reports whether free bytes of a filesystem of total bytes are
// less than the threshold.
func (t DiskThreshold) Below(free, total int64) bool {
	if t.Bytes > 0 || t.Percent == 0 {
		return free < t.Bytes
	}
	return total > 0 && float64(free)*100 < t.Percent*float64(total)
}

func (t DiskThreshold) String() string {
	if t.Bytes > 0 || t.Percent == 0 {
		return ui.Bytes(t.Bytes)
	}
	return strconv.FormatFloat(t.Percent, 'f', -1, 64) + "%"
}

// writeFileAtomic writes data to path through a temporary file in the same
// directory and a rename, so readers never see half a file.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
