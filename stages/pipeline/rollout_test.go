package pipeline

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/fleet"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/run/runtest"
	"github.com/stagecoach/stagecoach/stages/server"
)

func TestWaves(t *testing.T) {
	for _, tt := range []struct {
		hosts, canary, batch int
		want                 string
	}{
		{4, 0, 4, "1234"},
		{4, 1, 3, "1 234"},
		{4, 1, 2, "1 23 4"},
		{4, 2, 1, "12 3 4"},
		{4, 4, 1, "1234"},
		{5, 1, 100, "1 2345"},
		{1, 1, 1, "1"},
		{3, 0, 1, "1 2 3"},
	} {
		hosts := make([]*fleet.Host, tt.hosts)
		for i := range hosts {
			hosts[i] = &fleet.Host{Name: strconv.Itoa(i + 1)}
		}
		var got []string
		for _, w := range waves(hosts, tt.canary, tt.batch) {
			var s string
			for _, h := range w {
				s += h.Name
			}
			got = append(got, s)
		}
		if g := strings.Join(got, " "); g != tt.want {
			t.Errorf("%d hosts, canary %d, batch %d: waves %q, want %q", tt.hosts, tt.canary, tt.batch, g, tt.want)
		}
	}
}

// rolloutFixture is a project of four hosts deployed once, saved like
// fixture, whose health check passes on a host unless its root holds a
// file sick: then only the release the file names is healthy there (see
// sick). Every health check appends "host release" to order.
type rolloutFixture struct {
	*fixture
	order string
}

func newRolloutFixture(t *testing.T, strategy string, migration bool) *rolloutFixture {
	t.Helper()
	order := filepath.Join(t.TempDir(), "order")
	health := fmt.Sprintf(`      - command: 'echo "$STAGECOACH_HOST $STAGECOACH_RELEASE" >> %s; test ! -e "$STAGECOACH_ROOT/sick" || grep -qxF "$STAGECOACH_RELEASE" "$STAGECOACH_ROOT/sick"'`+"\n", order)
	e, old := deployed(t, runtest.Options{Hosts: 4, Health: health, Environment: "    strategy: " + strategy + "\n"}, migration)
	f := &fixture{env: e, old: old, marker: filepath.Join(t.TempDir(), "unused"), saved: t.TempDir()}
	for i, dir := range f.dirs() {
		copyTree(t, dir, filepath.Join(f.saved, strconv.Itoa(i)))
	}
	return &rolloutFixture{fixture: f, order: order}
}

func (f *rolloutFixture) restore(t *testing.T) *runtest.Env {
	t.Helper()
	e := f.fixture.restore(t)
	if err := os.WriteFile(f.order, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return e
}

// sick makes host i healthy on release only ("" for none).
func sick(t *testing.T, e *runtest.Env, i int, release string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(e.Roots[i], "sick"), []byte(release+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// checked lists the health checks of the new release in the order they
// ran, by host number (1-based).
func (f *rolloutFixture) checked(t *testing.T, e *runtest.Env, id string) string {
	t.Helper()
	var out string
	for _, line := range strings.Split(strings.TrimSpace(runtest.ReadFile(t, f.order)), "\n") {
		host, release, _ := strings.Cut(line, " ")
		if release != id {
			continue
		}
		for i, name := range e.Names {
			if name == host && !strings.HasSuffix(out, strconv.Itoa(i+1)) {
				out += strconv.Itoa(i + 1)
			}
		}
	}
	return out
}

// The canary is activated and checked first, then each batch: no host of
// a wave is checked before every host of the wave before it passed.
func TestRolloutInWaves(t *testing.T) {
	t.Parallel()
	f := newRolloutFixture(t, "{canary: 1, batch: 2}", false)
	e := f.restore(t)
	r, err := deploy(context.Background(), t, e, run.Options{}, quickHealth)
	if err != nil {
		t.Fatalf("deploy: %v\n%s", err, e.Log)
	}
	id := r.Plan.Release
	assertLive(t, e, id)
	assertUnlocked(t, e)
	assertRecorded(t, e, r, server.ResultSuccess, "")
	got := f.checked(t, e, id)
	if len(got) != 4 || got[0] != '1' || got[3] != '4' {
		t.Errorf("health checks of the new release by host: %q, want 1, then 2 and 3, then 4", got)
	}
	for _, want := range []string{"canary: activating", "batch 1 of 2: activating " + id + " on deploy@web2, deploy@web3", "batch 2 of 2"} {
		if !strings.Contains(e.Log.String(), want) {
			t.Errorf("the log does not say %q", want)
		}
	}
}

// rolloutCase is a fault in a rollout over four hosts. hosts says what
// each host went through: u untouched (the old release, services never
// stopped), s switched and stays on the new release, b switched and back
// on the old release, x switched, failed to restart and back.
type rolloutCase struct {
	name     string
	strategy string
	fault    func(t *testing.T, e *runtest.Env, old string, cancel context.CancelFunc) []func(*run.Context)
	code     int
	result   string
	stage    string
	says     []string
	hosts    string
	// own is each host's own recorded outcome when it is not what hosts
	// implies (s: success, b and x: rolled-back, u: aborted); R:
	// rollback-failed, i: interrupted.
	own string
}

var ownResults = map[byte]string{'s': server.ResultSuccess, 'b': server.ResultRolledBack, 'x': server.ResultRolledBack,
	'u': server.ResultAborted, 'R': server.ResultRollbackFailed, 'i': server.ResultInterrupted}

func TestRolloutFaults(t *testing.T) {
	t.Parallel()
	sickOn := func(hosts ...int) func(t *testing.T, e *runtest.Env, old string, _ context.CancelFunc) []func(*run.Context) {
		return func(t *testing.T, e *runtest.Env, old string, _ context.CancelFunc) []func(*run.Context) {
			for _, i := range hosts {
				sick(t, e, i, old)
			}
			return nil
		}
	}
	pausing := func(t *testing.T, e *runtest.Env, _ string, cancel context.CancelFunc) []func(*run.Context) {
		// Set here, not in the fixture, whose first deploy would pause.
		long := func(rc *run.Context) { rc.Env.Strategy.Pause = time.Hour }
		return []func(*run.Context){long, logTo(&cancelOn{Writer: e.Log, text: "pausing", cancel: cancel})}
	}
	cases := []rolloutCase{
		{name: "canary health fails", strategy: "{canary: 1, batch: 2}", fault: sickOn(0),
			code: exitcode.RolledBack, result: server.ResultRolledBack, stage: "health", says: []string{"health of deploy@web1", "rolled back"},
			hosts: "buuu"},
		{name: "canary health fails under stop", strategy: "{canary: 1, batch: 2, on_failure: stop}", fault: sickOn(0),
			code: exitcode.RolledBack, result: server.ResultRolledBack, stage: "health", says: []string{"health of deploy@web1", "rolled back"},
			hosts: "buuu"},
		{name: "canary health fails under continue", strategy: "{canary: 1, batch: 2, on_failure: continue}", fault: sickOn(0),
			code: exitcode.RolledBack, result: server.ResultRolledBack, stage: "health", says: []string{"health of deploy@web1", "rolled back"},
			hosts: "buuu"},
		{name: "one of two canaries fails under continue", strategy: "{canary: 2, batch: 2, on_failure: continue}", fault: sickOn(1),
			code: exitcode.Partial, result: server.ResultStopped, stage: "health", says: []string{"on_failure continue: the rollout stopped", "deploy@web1 run"},
			hosts: "sbuu"},
		{name: "first batch fails", strategy: "{canary: 1, batch: 2}", fault: sickOn(1),
			code: exitcode.RolledBack, result: server.ResultRolledBack, stage: "health", says: []string{"health of deploy@web2", "rolled back"},
			hosts: "bbbu"},
		{name: "second batch fails", strategy: "{canary: 1, batch: 2}", fault: sickOn(3),
			code: exitcode.RolledBack, result: server.ResultRolledBack, stage: "health", says: []string{"health of deploy@web4", "rolled back"},
			hosts: "bbbb"},
		{name: "second batch fails under stop", strategy: "{canary: 1, batch: 2, on_failure: stop}", fault: sickOn(3),
			code: exitcode.Partial, result: server.ResultStopped, stage: "health",
			says:  []string{"on_failure stop: the rollout stopped: deploy@web1, deploy@web2, deploy@web3 run", "deploy@web4 stay on", "health of deploy@web4"},
			hosts: "sssb"},
		{name: "first batch fails under stop", strategy: "{canary: 1, batch: 2, on_failure: stop}", fault: sickOn(1),
			code: exitcode.Partial, result: server.ResultStopped, stage: "health", says: []string{"deploy@web2, deploy@web4 stay on"},
			hosts: "sbsu"},
		{name: "first batch fails under continue", strategy: "{canary: 1, batch: 2, on_failure: continue}", fault: sickOn(1),
			code: exitcode.Partial, result: server.ResultPartial, stage: "health",
			says:  []string{"on_failure continue: the rollout went on with the other hosts: deploy@web1, deploy@web3, deploy@web4 run", "deploy@web2 stay on"},
			hosts: "sbss"},
		{name: "two batches fail under continue", strategy: "{canary: 1, batch: 2, on_failure: continue}", fault: sickOn(2, 3),
			code: exitcode.Partial, result: server.ResultPartial, stage: "health", says: []string{"deploy@web3, deploy@web4 stay on", "health of deploy@web3", "health of deploy@web4"},
			hosts: "ssbb"},
		{name: "activation fails under continue", strategy: "{canary: 1, batch: 2, on_failure: continue}",
			fault: func(t *testing.T, e *runtest.Env, _ string, _ context.CancelFunc) []func(*run.Context) {
				e.Fake(2).On("restart").Nth(1).Exit(1, "unit failed")
				return nil
			},
			code: exitcode.Partial, result: server.ResultPartial, stage: "swap", says: []string{"activate", "unit failed", "deploy@web3 stay on"},
			hosts: "ssxs"},
		{name: "putting a host back fails under continue", strategy: "{canary: 1, batch: 2, on_failure: continue}",
			fault: func(t *testing.T, e *runtest.Env, _ string, _ context.CancelFunc) []func(*run.Context) {
				sick(t, e, 1, "")
				return nil
			},
			code: exitcode.RollbackFailed, result: server.ResultRollbackFailed, stage: "health", says: []string{"putting them back failed too", "not healthy after the rollback either"},
			hosts: "sbsu", own: "sRsu"},
		{name: "interrupt during the pause", strategy: "{canary: 1, batch: 2}", fault: pausing,
			code: exitcode.RolledBack, result: server.ResultRolledBack, stage: "swap", says: []string{"swap interrupted and the deploy was rolled back", "pause after the canary"},
			hosts: "buuu", own: "biii"},
		{name: "interrupt during the pause under stop", strategy: "{canary: 1, batch: 2, on_failure: stop}", fault: pausing,
			code: exitcode.Partial, result: server.ResultStopped, stage: "swap", says: []string{"the rollout stopped: deploy@web1 run", "pause after the canary"},
			hosts: "suuu", own: "siii"},
	}
	projects := map[string]*rolloutFixture{}
	for _, c := range cases {
		if projects[c.strategy] == nil {
			projects[c.strategy] = newRolloutFixture(t, c.strategy, false)
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.run(t, projects[c.strategy]) })
	}
}

func (c rolloutCase) run(t *testing.T, f *rolloutFixture) {
	e, old := f.restore(t), f.old
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tweaks := append(c.fault(t, e, old, cancel), quickHealth)
	r, err := deploy(ctx, t, e, run.Options{}, tweaks...)
	assertCode(t, e, err, c.code, c.says...)
	id := r.Plan.Release
	for i := range e.Names {
		live, services, current := old, untouched, old
		switch c.hosts[i] {
		case 's':
			live, services, current = id, []string{"restart OLD", "stop OLD", "restart NEW"}, id
		case 'b':
			services = rolledBack
		case 'x':
			services = []string{"restart OLD", "stop OLD", "restart OLD"}
		}
		if got := e.Live(t, i); got != live {
			t.Errorf("host %d runs %s, want %s", i, got, live)
		}
		assertServices(t, e, i, services, old, id)
		if s := e.State(t, i); s.Current != current {
			t.Errorf("host %d state says %s is live, want %s", i, s.Current, current)
		}
	}
	assertIntact(t, e, old)
	assertUnlocked(t, e)
	own := c.own
	if own == "" {
		own = c.hosts
	}
	var results []string
	for i := range own {
		results = append(results, ownResults[own[i]])
	}
	assertRecorded(t, e, r, c.result, c.stage, results...)
	if rep := readReport(t, r); rep.ExitCode != c.code || rep.Result != c.result {
		t.Errorf("report: exit %d, result %s", rep.ExitCode, rep.Result)
	}
}

// With migrations.once the first canary alone backs up and migrates,
// before any host switches; the other hosts never migrate.
func TestMigrationsOnce(t *testing.T) {
	t.Parallel()
	type onceCase struct {
		name     string
		strategy string
		fault    func(t *testing.T, e *runtest.Env, old string)
		code     int
		says     []string
		migrated bool   // the first host's database keeps the migration
		hosts    string // as in rolloutCase
	}
	cases := []onceCase{
		{name: "success", strategy: "{canary: 1, batch: 2}", fault: func(*testing.T, *runtest.Env, string) {},
			migrated: true, hosts: "ssss"},
		{name: "the migration fails", strategy: "{canary: 1, batch: 2}",
			fault: func(t *testing.T, e *runtest.Env, _ string) { e.Fake(0).On("migrate").Pass().Err(exitError("migrate")) },
			code:  exitcode.Failed, says: []string{"migrate on deploy@web1", "migration failed (database restored from the backup)"},
			hosts: "uuuu"},
		{name: "the backup fails", strategy: "{canary: 1, batch: 2}",
			fault: func(t *testing.T, e *runtest.Env, _ string) {
				e.Fake(0).On("back up").Exit(1, "no space left on device")
			},
			code: exitcode.Failed, says: []string{"back up database"},
			hosts: "uuuu"},
		{name: "the canary's health fails", strategy: "{canary: 1, batch: 2}",
			fault: func(t *testing.T, e *runtest.Env, old string) { sick(t, e, 0, old) },
			code:  exitcode.RolledBack, says: []string{"health of deploy@web1", "rolled back"},
			hosts: "buuu"},
		{name: "a batch fails under continue", strategy: "{canary: 1, batch: 2, on_failure: continue}",
			fault: func(t *testing.T, e *runtest.Env, old string) { sick(t, e, 2, old) },
			code:  exitcode.Partial, says: []string{"deploy@web3 stay on"},
			migrated: true, hosts: "ssbs"},
		{name: "the last batch fails under revert", strategy: "{batch: 3}",
			fault: func(t *testing.T, e *runtest.Env, old string) { sick(t, e, 3, old) },
			code:  exitcode.RolledBack, says: []string{"health of deploy@web4", "rolled back"},
			hosts: "bbbb"},
	}
	projects := map[string]*rolloutFixture{}
	for _, c := range cases {
		if projects[c.strategy] == nil {
			projects[c.strategy] = newRolloutFixture(t, c.strategy, true)
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, old := projects[c.strategy].restore(t), projects[c.strategy].old
			// The fixture's config gets once: true for every case.
			cfg := runtest.ReadFile(t, e.Config)
			e.Write(t, "stagecoach.yml", strings.Replace(cfg, "  backup: [shared/data/db]\n", "  backup: [shared/data/db]\n  once: true\n", 1))
			e.Commit(t, "migrations once")
			var dbs []string
			for i := range e.Names {
				dbs = append(dbs, database(t, e, i))
			}
			c.fault(t, e, old)
			marks := e.Marks()
			r, err := deploy(context.Background(), t, e, run.Options{}, quickHealth)
			if c.code == 0 && err != nil {
				t.Fatalf("deploy: %v\n%s", err, e.Log)
			}
			if c.code != 0 {
				assertCode(t, e, err, c.code, c.says...)
			}
			id := r.Plan.Release
			for i := range e.Names {
				want := dbs[i]
				if i == 0 && c.migrated {
					want += id + "\n"
				}
				if got := database(t, e, i); got != want {
					t.Errorf("host %d database %q, want %q", i, got, want)
				}
				calls := strings.Join(e.CallsSince(i, marks[i]), "\n")
				if i > 0 && (strings.Contains(calls, "migrate") || strings.Contains(calls, "back up")) {
					t.Errorf("host %d migrated or backed up:\n%s", i, calls)
				}
				if i == 0 && strings.Contains(calls, "switch current") && strings.Index(calls, "migrate") > strings.Index(calls, "switch current") {
					t.Errorf("host 1 switched before it migrated:\n%s", calls)
				}
				live, services := old, untouched
				switch c.hosts[i] {
				case 's':
					live, services = id, []string{"restart OLD", "stop OLD", "restart NEW"}
				case 'b':
					services = rolledBack
				}
				if got := e.Live(t, i); got != live {
					t.Errorf("host %d runs %s, want %s", i, got, live)
				}
				// A failed migration restarts the first host's services
				// on the restored database.
				if i > 0 || c.hosts[i] != 'u' {
					assertServices(t, e, i, services, old, id)
				}
			}
			assertUnlocked(t, e)
		})
	}
}

// pause waits its time, and no longer than until the interrupt.
func TestRolloutPauseWaits(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	start := time.Now()
	if err := pause(ctx, 20*time.Millisecond); err != nil || time.Since(start) < 20*time.Millisecond {
		t.Errorf("pause: %v after %s", err, time.Since(start))
	}
	cancel()
	if err := pause(ctx, time.Hour); err != context.Canceled {
		t.Errorf("pause after the interrupt: %v, want context.Canceled", err)
	}
}
