package chaos_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/chaos"
	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/pipeline"
	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/run/runtest"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/testenv"
	"github.com/stagecoach/stagecoach/stages/ui"
)

// The driver's knobs, from the environment: STAGECOACH_CHAOS_RUNS faulted
// runs (default defaultRuns: 200, 40 under the race detector), from the
// chains of seeds 1, 2, ...; STAGECOACH_CHAOS_SEED replays the one chain
// of that seed.
var defaultRuns = 200

const (
	// runsPerChain is how many faulted runs a chain makes over one
	// project, each starting from what the one before left.
	runsPerChain = 25
)

// TestChaos runs deploys, rollbacks and checks of a generated project on
// 1-4 hosts, each a deploy root on this machine driven through the local
// transport, so the real scripts run. Each run has one or two faults
// injected at random calls; after each the hosts' roots are read directly
// and the invariants checked (see world.verify). A failure names its
// seed: STAGECOACH_CHAOS_SEED=<seed> replays that chain.
func TestChaos(t *testing.T) {
	runs := defaultRuns
	if s := os.Getenv("STAGECOACH_CHAOS_RUNS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("STAGECOACH_CHAOS_RUNS=%q: want a number of runs", s)
		}
		runs = n
	}
	var seeds []uint64
	if s := os.Getenv("STAGECOACH_CHAOS_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("STAGECOACH_CHAOS_SEED=%q: want a number", s)
		}
		seeds = []uint64{seed}
	} else {
		for i := range (runs + runsPerChain - 1) / runsPerChain {
			seeds = append(seeds, uint64(i+1))
		}
	}
	var total, faults atomic.Int64
	var mu sync.Mutex
	kinds := map[string]int{}
	// The runs mostly wait for shells; a few more than the CPUs keep
	// them busy.
	sem := make(chan struct{}, 4*runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for _, seed := range seeds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
				w := newWorld(t, seed)
				w.chain(runsPerChain)
				total.Add(int64(w.runs))
				mu.Lock()
				defer mu.Unlock()
				for k, n := range w.fired {
					kinds[k] += n
					faults.Add(int64(n))
				}
			})
		}()
	}
	wg.Wait()
	t.Logf("%d faulted runs in %d chains, %d faults struck: %v", total.Load(), len(seeds), faults.Load(), kinds)
}

// world is one chain: a project, its hosts, and what the chain knows.
type world struct {
	t     *testing.T
	seed  uint64
	rng   *rand.Rand
	e     *runtest.Env
	runs  int
	fired map[string]int
	// calls is, per operation, the most calls a host was seen to get in
	// one, so faults land within a run.
	calls map[string]int
	// tainted: a crash struck a deploy, which may have been migrating:
	// the database may be neither the one before nor the one after,
	// until the next deploy without faults migrates it.
	tainted bool
	// takeOver: a lock was left that the next deploy must break.
	takeOver bool
	// log keeps the chain's history for a failure's message.
	log strings.Builder
	n   int // commits so far
	mig int // migrations committed
}

// migrate is the project's migration: it rewrites the database in
// several writes, so one stopped half-way leaves it visibly mixed.
const migrate = `set -e
mkdir -p data
echo schema > data/db
for f in app/migrations/*.sql; do
  echo "applied $(basename "$f")" >> data/db
done
echo end >> data/db
`

func newWorld(t *testing.T, seed uint64) *world {
	w := &world{t: t, seed: seed, rng: rand.New(rand.NewPCG(seed, 0x5eed)), fired: map[string]int{}, calls: map[string]int{}}
	w.e = runtest.New(t, runtest.Options{Hosts: 1 + w.rng.IntN(4),
		Health: "      - command: grep -qx end data/db\n"})
	// Health fails fast: a run whose fault makes it fail waits the
	// deadline out.
	cfg := strings.Replace(runtest.ReadFile(t, w.e.Config), "deadline: 1s", "deadline: 300ms", 1)
	w.e.Write(t, "stagecoach.yml", cfg)
	w.e.Write(t, "app/migrate.sh", migrate)
	w.e.Commit(t, "whole migrations")
	w.mig, w.n = 1, 1
	w.logf("seed %d: %d hosts", seed, len(w.e.Names))
	w.clean("first deploy")
	return w
}

func (w *world) logf(format string, args ...any) {
	fmt.Fprintf(&w.log, format+"\n", args...)
}

// fail ends the chain, naming its seed and history.
func (w *world) fail(format string, args ...any) {
	w.t.Helper()
	w.t.Fatalf("%s\nreplay: STAGECOACH_CHAOS_SEED=%d go test -short -run TestChaos ./stages/chaos\nhistory:\n%s",
		fmt.Sprintf(format, args...), w.seed, w.log.String())
}

// change commits a change of the site and, sometimes, a migration.
func (w *world) change() {
	w.n++
	w.e.Write(w.t, "site/index.html", fmt.Sprintf("<h1>v%d</h1>\n", w.n))
	if w.rng.IntN(3) == 0 {
		w.mig++
		w.e.Write(w.t, fmt.Sprintf("app/migrations/%03d.sql", w.mig), fmt.Sprintf("-- migration %d\n", w.mig))
	}
	w.e.Commit(w.t, fmt.Sprintf("v%d", w.n))
}

// chain runs n faulted runs, each followed by the checks; a run whose
// client crashed is followed by a deploy without faults, and so is the
// chain.
func (w *world) chain(n int) {
	for range n {
		w.faulted()
	}
	w.change()
	w.clean("last deploy")
}

// op is what a run does.
type op string

const (
	opDeploy   op = "deploy"
	opRollback op = "rollback"
	opCheck    op = "check"
)

// outcome is a run's: its error, and what struck.
type outcome struct {
	op      op
	err     error
	release string // a deploy's release id; "" when nothing changed
	took    time.Duration
	inj     *chaos.Injector
	log     *testenv.SyncBuffer
}

// client is a process standing in for a deploying client's, so that the
// lock names a PID that dies when the client does.
func (w *world) client() (pid int, exit func()) {
	cmd := exec.Command("sleep", "3600")
	if err := cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	return cmd.Process.Pid, func() {
		cmd.Process.Kill()
		cmd.Wait()
	}
}

// do runs o with the faults.
func (w *world) do(o op, opts run.Options, faults ...chaos.Fault) (out outcome) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	local := func(context.Context, string) (remote.Runner, error) { return remote.NewLocal(), nil }
	inj := chaos.NewInjector(local, faults...)
	inj.Cancel = cancel
	pid, exit := w.client()
	defer exit()
	log := &testenv.SyncBuffer{}
	rc := w.e.Open(w.t, opts, func(rc *run.Context) {
		rc.Fleet.Dial = inj.Dial
		rc.Fleet.Now = inj.Now
		rc.Fleet.PID = pid
		rc.Log = ui.New(log, true)
		rc.Fleet.Log = rc.Log
	})
	r := pipeline.New(rc)
	out = outcome{op: o, inj: inj, log: log}
	start := time.Now()
	defer func() { out.took = time.Since(start) }()
	switch o {
	case opDeploy:
		out.err = r.Deploy(ctx)
		if r.Plan != nil && r.Report.Result != server.ResultNoChange {
			out.release = r.Plan.Release
		}
	case opRollback:
		r.Command = "rollback"
		release, err := r.Hold(ctx)
		if err == nil {
			err = r.Rollback(ctx)
			release()
		}
		out.err = err
	case opCheck:
		r.Command = "check"
		_, out.err = r.Check(ctx)
		r.Close()
	}
	for _, h := range w.e.Names {
		w.calls[string(o)] = max(w.calls[string(o)], inj.Calls(h))
	}
	return out
}

// snapshot reads every host's root.
func (w *world) snapshot() []*chaos.Snapshot {
	var out []*chaos.Snapshot
	for _, root := range w.e.Roots {
		s, err := chaos.Inspect(context.Background(), root, "shared/data/db", server.VerifySpec{Shared: []string{"data"}, Jobs: 1})
		if err != nil {
			w.fail("inspect: %v", err)
		}
		out = append(out, s)
	}
	return out
}

// clean deploys HEAD without faults: it must succeed and leave every host
// on its release, whole, with nothing left behind.
func (w *world) clean(why string) {
	w.t.Helper()
	out := w.do(opDeploy, run.Options{})
	w.logf("%s (no fault, %v): exit %d %v", why, out.took.Round(time.Millisecond), exitcode.Of(out.err), out.err)
	if out.err != nil {
		w.fail("%s without faults failed: %v\n%s", why, out.err, out.log)
	}
	after := w.snapshot()
	for i, s := range after {
		if out.release != "" && s.Current != out.release {
			w.fail("%s: host %d runs %q, want %q\n%s", why, i, s.Current, out.release, out.log)
		}
		if len(s.Leftovers) > 0 {
			w.fail("%s: host %d keeps %q after a deploy without faults\n%s", why, i, s.Leftovers, out.log)
		}
		if s.State == nil || s.State.Current != s.Current {
			w.fail("%s: host %d: state says %v live, current is %s", why, i, stateCurrent(s), s.Current)
		}
	}
	w.common(after, out)
	want := migrated(w.mig)
	for i, s := range after {
		if !bytes.Equal(s.DB, want) {
			w.fail("%s: host %d's database is %q, want the one its release migrates, %q\n%s", why, i, s.DB, want, out.log)
		}
	}
	w.tainted = false
}

// migrated is the database as the migration of a tree with n migrations
// leaves it.
func migrated(n int) []byte {
	var b strings.Builder
	b.WriteString("schema\n")
	for i := range n {
		fmt.Fprintf(&b, "applied %03d.sql\n", i+1)
	}
	b.WriteString("end\n")
	return []byte(b.String())
}

func stateCurrent(s *chaos.Snapshot) string {
	if s.State == nil {
		return "(no state)"
	}
	return s.State.Current
}

// faulted runs one operation with one or two faults and checks what it
// left; a crashed client's run is followed by a deploy without faults.
func (w *world) faulted() {
	w.t.Helper()
	o := opDeploy
	switch w.rng.IntN(5) {
	case 0:
		o = opRollback
	case 1:
		o = opCheck
	}
	opts := run.Options{}
	if o == opDeploy && w.rng.IntN(4) != 0 {
		w.change()
	}
	if o == opRollback {
		opts.RestoreDB = w.rng.IntN(2) == 0
	}
	faults := w.plan(o, 1+w.rng.IntN(2))
	before := w.snapshot()
	out := w.do(o, opts, faults...)
	w.runs++
	fired := out.inj.Fired()
	for _, f := range fired {
		w.fired[f.Kind.String()]++
	}
	w.logf("%s restoreDB=%v (%v), planned %v, struck %v: exit %d %v", o, opts.RestoreDB, out.took.Round(time.Millisecond), faults, fired, exitcode.Of(out.err), out.err)
	if out.took > 3*time.Second {
		w.t.Logf("slow: %s", strings.TrimSpace(w.log.String()[strings.LastIndex(strings.TrimSuffix(w.log.String(), "\n"), "\n")+1:]))
	}
	after := w.snapshot()
	w.verify(before, after, out, opts)
	if out.inj.Crashed() || w.takeOver {
		w.takeOver = false
		w.change()
		w.clean("deploy after the crash")
	}
}

// plan picks n faults at calls within a run of o.
func (w *world) plan(o op, n int) []chaos.Fault {
	calls := max(w.calls[string(o)], 8)
	var out []chaos.Fault
	for range n {
		f := chaos.Fault{
			Kind: chaos.Kinds[w.rng.IntN(len(chaos.Kinds))],
			Host: w.e.Names[w.rng.IntN(len(w.e.Names))],
			Call: 1 + w.rng.IntN(calls),
			When: chaos.When(w.rng.IntN(3)),
		}
		f.Delay = time.Duration(w.rng.IntN(30)) * time.Millisecond
		f.Jump = time.Duration(w.rng.IntN(48)-24) * time.Hour
		out = append(out, f)
	}
	return out
}

// verify checks the invariants after a faulted run.
func (w *world) verify(before, after []*chaos.Snapshot, out outcome, opts run.Options) {
	w.t.Helper()
	crashed := out.inj.Crashed()
	w.common(after, out)
	code := exitcode.Of(out.err)
	w.database(before, after, out, opts, code, crashed)
	if crashed {
		// Anything the client left is the next deploy's to take over.
		w.tainted = w.tainted || out.op == opDeploy
		return
	}
	// Two faults may strike a lock's release and its retry: the lock is
	// left, warned about, for the next deploy to break (its holder is
	// gone), as after a crash.
	leftLock := len(out.inj.Fired()) > 1 && strings.Contains(out.log.String(), "WARN "+"deploy@")
	for i, s := range after {
		if s.Locked && leftLock && strings.Contains(out.log.String(), ": release deploy lock: ") {
			w.takeOver = true
			continue
		}
		if s.Locked {
			w.fail("host %d is still locked after a run that did not crash (exit %d)\n%s", i, code, out.log)
		}
	}
	unchanged := func(why string) {
		for i, s := range after {
			if s.Current != before[i].Current {
				w.fail("%s: host %d went from %q to %q\n%s", why, i, before[i].Current, s.Current, out.log)
			}
		}
	}
	agree := func(why string) {
		for i, s := range after {
			if s.Current != after[0].Current {
				w.fail("%s: host %d runs %q, host 0 %q\n%s", why, i, s.Current, after[0].Current, out.log)
			}
		}
	}
	switch out.op {
	case opDeploy:
		switch code {
		case exitcode.OK:
			for i, s := range after {
				want := out.release
				if want == "" {
					want = before[i].Current
				}
				if s.Current != want {
					w.fail("deploy succeeded: host %d runs %q, want %q\n%s", i, s.Current, want, out.log)
				}
			}
		case exitcode.Failed, exitcode.Unreachable, exitcode.RolledBack:
			unchanged(fmt.Sprintf("deploy exit %d", code))
		case exitcode.RollbackFailed:
			// The hosts may disagree, each whole (common), but only
			// when a second fault struck the rollback: one fault is
			// what the rollback is there to recover from.
			if len(out.inj.Fired()) < 2 {
				w.fail("deploy exit %d after one fault: %v\n%s", code, out.err, out.log)
			}
		default:
			w.fail("deploy exit %d: %v\n%s", code, out.err, out.log)
		}
	case opRollback:
		// All or nothing: a rollback that failed put back what it
		// moved, unless putting back failed too (Partial).
		switch code {
		case exitcode.OK:
			agree("rollback succeeded")
		case exitcode.Partial:
			if len(out.inj.Fired()) < 2 {
				w.fail("rollback exit %d after one fault: %v\n%s", code, out.err, out.log)
			}
		default:
			unchanged(fmt.Sprintf("rollback exit %d", code))
		}
	case opCheck:
		unchanged(fmt.Sprintf("check exit %d", code))
	}
}

// common checks what holds after any run: each host's current is a
// complete release matching its manifest (the database: see database).
func (w *world) common(after []*chaos.Snapshot, out outcome) {
	w.t.Helper()
	for i, s := range after {
		if s.Current == "" {
			w.fail("host %d has no current release\n%s", i, out.log)
		}
		if s.Intact != nil {
			w.fail("host %d: current release %s is not intact: %v\n%s", i, s.Current, s.Intact, out.log)
		}
	}
}

// database checks the database of every host after a faulted run: it is
// the one before the run or the one the run's own change leaves, exactly,
// never a mix: for a deploy, the database its release migrates; for a
// rollback restoring the database, the backup taken before the release
// it left; a rollback that does not restore it, and a check, change
// nothing. What the run reported narrows it to one where it can: a
// deploy that succeeded leaves the migrated database, one that failed or
// was rolled back the one before, a rollback the one it promised or,
// failing, the one before. Only a crash of a deploy, which may have been
// migrating, exempts it, until the next deploy without faults (clean).
func (w *world) database(before, after []*chaos.Snapshot, out outcome, opts run.Options, code int, crashed bool) {
	w.t.Helper()
	if w.tainted || crashed && out.op == opDeploy {
		return
	}
	for i, s := range after {
		pre := before[i].DB
		var want [][]byte
		switch {
		case crashed:
			want = [][]byte{pre}
			if out.op == opRollback && opts.RestoreDB {
				want = append(want, before[i].Backup)
			}
		case out.op == opDeploy && code == exitcode.OK:
			want = [][]byte{migrated(w.mig)}
		case out.op == opDeploy && (code == exitcode.RollbackFailed || code == exitcode.Partial):
			want = [][]byte{pre, migrated(w.mig)}
		case out.op == opRollback && opts.RestoreDB && code == exitcode.OK:
			want = [][]byte{before[i].Backup}
		case out.op == opRollback && opts.RestoreDB && code == exitcode.Partial:
			want = [][]byte{pre, before[i].Backup}
		default:
			want = [][]byte{pre}
		}
		ok := false
		for _, db := range want {
			ok = ok || bytes.Equal(s.DB, db)
		}
		if !ok {
			w.fail("%s exit %d restoreDB=%v: host %d's database is %q, want one of %q\n%s", out.op, code, opts.RestoreDB, i, s.DB, want, out.log)
		}
	}
}
