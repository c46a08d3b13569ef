// Package check is the cron job: is the live release on every host healthy
// and intact? It takes no lock unless it heals, and exits with a code cron
// can act on.
package check

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stagecoach/stagecoach/stages/config"
	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/fleet"
	"github.com/stagecoach/stagecoach/stages/run"
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
	// KindFleet is the check over every host: do they run one release?
	// Its Host is "".
	KindFleet = "fleet"
)

var kindOrder = map[string]int{KindConnect: 0, KindState: 1, KindLock: 2, KindDisk: 3, KindIntegrity: 4, KindService: 5, KindRouter: 6, KindHealth: 7, KindFleet: 8}

// Outcomes of a check.
const (
	StatusOK      = "ok"
	StatusWarn    = "warn"    // worth a look, but the release is healthy
	StatusFailed  = "failed"  // unhealthy
	StatusError   = "error"   // could not be checked (host unreachable, a command failed to run)
	StatusSkipped = "skipped" // does not apply here
)

// Result is one check on one host.
type Result struct {
	Host     string        `json:"host"`
	Kind     string        `json:"kind"`
	Check    string        `json:"check"` // unique per host, e.g. "integrity", "health[0] GET http://web1/healthz"
	Status   string        `json:"status"`
	Duration time.Duration `json:"duration_ns"`
	Message  string        `json:"message"`          // what was seen, or what is wrong
	Action   string        `json:"action,omitempty"` // what to do about a failure
	Files    *FileDiffs    `json:"files,omitempty"`  // integrity: the files that differ
	Disk     *DiskSpace    `json:"disk,omitempty"`   // disk: the filesystem holding the root

	held bool // lock: a deploy holds it
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

// Report is the outcome of Run.Check, for people and machines.
type Report struct {
	App         string        `json:"app"`
	Environment string        `json:"environment"`
	Started     time.Time     `json:"started"`
	Duration    time.Duration `json:"duration_ns"`
	Result      string        `json:"result"` // ok | unhealthy | unreachable | healed
	ExitCode    int           `json:"exit_code"`
	Checks      []Result      `json:"checks"`
	SelfHeal    []HealAction  `json:"self_heal,omitempty"`
}

// Failed returns the checks that failed or could not run.
func (rep *Report) Failed() []Result {
	var out []Result
	for _, c := range rep.Checks {
		if c.Status == StatusFailed || c.Status == StatusError {
			out = append(out, c)
		}
	}
	return out
}

// JSON encodes the report, indented, with a trailing newline.
func (rep *Report) JSON() ([]byte, error) {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// hostChecks collects the results of one host's concurrent checks.
type hostChecks struct {
	mu      sync.Mutex
	results []Result
}

func (hc *hostChecks) add(rs ...Result) {
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
func Run(ctx context.Context, rc *run.Context) (*Report, error) {
	return checker{rc}.check(ctx)
}

// checker is the cron check over one run's context.
type checker struct{ *run.Context }

func (r checker) check(ctx context.Context) (*Report, error) {
	minFree, err := ParseDiskThreshold(r.Env.Check.MinFreeDisk)
	if err != nil {
		return nil, exitcode.Errorf(exitcode.BadConfig, "%s: environments.%s.check.min_free_disk: %v", r.Cfg.File, r.Env.Name, err)
	}
	rep := &Report{App: r.Cfg.App, Environment: r.Env.Name, Started: time.Now()}
	hosts := r.Fleet.Hosts(r.Env.Hosts, r.Env.Root)
	defer fleet.Close(hosts)
	results := make(map[*fleet.Host]*hostChecks, len(hosts))
	for _, h := range hosts {
		results[h] = &hostChecks{}
	}
	r.Fleet.Each(ctx, hosts, "check", func(ctx context.Context, h *fleet.Host) error {
		start := time.Now()
		err := r.Fleet.Open(ctx, h)
		res := Result{Host: h.Name, Kind: KindConnect, Check: KindConnect, Status: StatusOK, Duration: time.Since(start), Message: "connected"}
		if err != nil {
			res.Status, res.Message = StatusError, err.Error()
			res.Action = connectAction(err)
			results[h].add(res)
			return nil
		}
		results[h].add(res)
		results[h].add(r.checkHost(ctx, h, minFree)...)
		return nil
	})

	if r.Env.Check.SelfHeal {
		var sick []*fleet.Host
		causes := map[*fleet.Host]string{}
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
	if res, ok := r.checkDrift(hosts, rep.Checks); ok {
		rep.Checks = append(rep.Checks, res)
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
func (rep *Report) conclude() error {
	var failed, errored []string
	for _, c := range rep.Checks {
		switch c.Status {
		case StatusFailed:
			failed = append(failed, c.where())
		case StatusError:
			errored = append(errored, c.where())
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

// where names the check and its host, for the summary error.
func (c Result) where() string {
	if c.Host == "" {
		return c.Check + " of the hosts"
	}
	return c.Check + " on " + c.Host
}

// checkDrift compares the releases the hosts run, once each host's state
// was read (results are theirs): hosts of one environment on different
// releases fail, naming which runs what, unless a deploy holds the lock
// on any of them (it is on its way from one to the other). Hosts that
// could not be read are left out; with fewer than two there is nothing to
// compare.
func (r checker) checkDrift(hosts []*fleet.Host, results []Result) (Result, bool) {
	read, held := map[string]bool{}, ""
	for _, c := range results {
		switch {
		case c.Kind == KindState && c.Status != StatusError:
			read[c.Host] = true
		case c.Kind == KindLock && c.held && held == "":
			held = c.Host
		}
	}
	var live []fleet.HostRelease
	for _, h := range hosts {
		if read[h.Name] {
			live = append(live, fleet.HostRelease{Host: h.Name, Release: h.Live})
		}
	}
	if len(live) < 2 {
		return Result{}, false
	}
	res := Result{Kind: KindFleet, Check: "releases", Status: StatusOK, Message: fmt.Sprintf("the %d hosts run %s", len(live), live[0].Release)}
	drift := fleet.Drift(live)
	switch {
	case drift != "" && held != "":
		res.Status, res.Message = StatusSkipped, fmt.Sprintf("a deploy holds the lock on %s; the hosts differ while it runs: %s", held, drift)
	case drift != "":
		res.fail(StatusFailed, "hosts run different releases: "+drift,
			"finish the deploy on the hosts it left behind (STAGECOACH_HOSTS=failed mage deploy), or deploy again, or roll the others back (mage rollback)")
	}
	return res, true
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
func (r checker) printCheck(rep *Report) {
	for _, c := range rep.Checks {
		host := ui.Or(c.Host, rep.Environment)
		switch c.Status {
		case StatusFailed, StatusError:
			r.Log.Errorf("%s: %s: %s", host, c.Check, c.Message)
		case StatusWarn:
			r.Log.Warnf("%s: %s: %s", host, c.Check, c.Message)
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
		rows = append(rows, []string{ui.Or(c.Host, rep.Environment), c.Check, c.Status, ui.Round(c.Duration).String(), msg})
	}
	var table strings.Builder
	ui.Table(&table, []string{"HOST", "CHECK", "STATUS", "DURATION", "DETAIL"}, rows)
	fmt.Fprintf(&table, "\ncheck %s: %s in %s", rep.Environment, rep.Result, ui.Round(rep.Duration))
	r.Log.Infof("%s", table.String())
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
// 1024 MB), as the sizes Stagecoach prints. "" is config.DefaultMinFreeDisk.
func ParseDiskThreshold(s string) (DiskThreshold, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		s = config.DefaultMinFreeDisk
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
