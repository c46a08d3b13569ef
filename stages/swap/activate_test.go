package swap_test

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stagecoach/stagecoach/stages/pipeline"
	"github.com/stagecoach/stagecoach/stages/pipeline/pipelinetest"
	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/remote/remotetest"
	"github.com/stagecoach/stagecoach/stages/run/runtest"
	"github.com/stagecoach/stagecoach/stages/swap"
)

// A migration that changes the database, then fails.
const failingMigration = `mkdir -p data && echo "$STAGECOACH_RELEASE" >> data/db && echo "002: syntax error" >&2 && exit 3` + "\n"

// activation is a release B staged on every host of e over the live
// release A (none when first), with the project changed by files.
type activation struct {
	e     *runtest.Env
	r     *pipeline.Run
	a, b  string
	marks []int // the hosts' calls before the activation
}

func stagedOver(t *testing.T, hosts int, first bool, files map[string]string) *activation {
	t.Helper()
	e := runtest.New(t, runtest.Options{Hosts: hosts})
	act := &activation{e: e}
	if !first {
		act.a = pipelinetest.Deploy(t, e)
	}
	change(t, e, files)
	act.r = pipelinetest.Shipped(t, e)
	if err := swap.StageAll(context.Background(), act.r.Context); err != nil {
		t.Fatalf("stage: %v\n%s", err, e.Log)
	}
	act.b, act.marks = act.r.Plan.Release, e.Marks()
	return act
}

// expand names the releases in want: "A" is the live one, "B" the new one.
func (act *activation) expand(want []string) []string {
	out := make([]string, len(want))
	for i, w := range want {
		out[i] = strings.NewReplacer("A", act.a, "B", act.b).Replace(w)
	}
	return out
}

// check fails unless host i was asked for calls, its service log and its
// database read as want (releases named as for expand; db "" for none),
// and current points at live.
func (act *activation) check(t *testing.T, i int, calls, services []string, db, live string) {
	t.Helper()
	e := act.e
	e.CheckCalls(t, i, act.marks[i], act.expand(calls)...)
	if got, want := e.Services(t, i), act.expand(services); !slices.Equal(got, want) {
		t.Errorf("host %d services: %q, want %q", i, got, want)
	}
	path := filepath.Join(e.Roots[i], "shared", "data", "db")
	switch want := act.expand([]string{db})[0]; {
	case want == "" && runtest.Exists(t, path):
		t.Errorf("host %d has a database: %q", i, runtest.ReadFile(t, path))
	case want != "" && runtest.ReadFile(t, path) != want:
		t.Errorf("host %d database is %q, want %q", i, runtest.ReadFile(t, path), want)
	}
	if got, want := e.Live(t, i), act.expand([]string{live})[0]; got != want {
		t.Errorf("host %d runs %q, want %q", i, got, want)
	}
}

var (
	withMigration = map[string]string{"site/index.html": "<h1>v2</h1>\n", "app/migrations/002.sql": "alter table t;\n"}
	siteOnly      = map[string]string{"site/index.html": "<h1>v2</h1>\n"}
)

func TestActivate(t *testing.T) {
	tests := []struct {
		name     string
		first    bool // no release is live yet
		files    map[string]string
		noBackup bool
		calls    []string
		services []string
		db       string
	}{{
		name:     "migrations pending",
		files:    withMigration,
		calls:    []string{"back up files before migrating B", "migrate", "stop", "switch current to B", "restart"},
		services: []string{"restart A", "stop A", "restart B"},
		db:       "A\nB\n",
	}, {
		name:     "no migration pending",
		files:    siteOnly,
		calls:    []string{"stop", "switch current to B", "restart"},
		services: []string{"restart A", "stop A", "restart B"},
		db:       "A\n",
	}, {
		name:     "nothing to back up",
		files:    withMigration,
		noBackup: true,
		calls:    []string{"migrate", "stop", "switch current to B", "restart"},
		services: []string{"restart A", "stop A", "restart B"},
		db:       "A\nB\n",
	}, {
		name:     "first deploy",
		first:    true,
		files:    siteOnly,
		calls:    []string{"back up files before migrating B", "migrate", "switch current to B", "restart"},
		services: []string{"restart B"},
		db:       "B\n",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			act := stagedOver(t, 2, tt.first, tt.files)
			if tt.noBackup {
				act.r.Cfg.Migrations.Backup = nil
			}
			if err := swap.ActivateAll(context.Background(), act.r.Context); err != nil {
				t.Fatalf("activate: %v\n%s", err, act.e.Log)
			}
			for i, h := range act.r.Hosts {
				act.check(t, i, tt.calls, tt.services, tt.db, "B")
				if !h.Switched || h.Migrated != act.r.Plan.Migrations.Pending {
					t.Errorf("host %d: Switched %v, Migrated %v", i, h.Switched, h.Migrated)
				}
			}
		})
	}
}

func TestActivateFailures(t *testing.T) {
	tests := []struct {
		name      string
		first     bool   // no release is live yet
		migration string // the new release's migrate.sh, when set
		fake      func(f *remotetest.Fake)
		want      []string // in the error
		calls     []string
		services  []string
		db        string
		live      string
		migrated  bool // the database holds the migration: a rollback must restore it
	}{{
		name:      "migration fails",
		migration: failingMigration,
		want:      []string{"migration failed (database restored from the backup): ", "002: syntax error"},
		calls:     []string{"back up files before migrating B", "migrate", "restore files backed up before B", "restart"},
		services:  []string{"restart A", "restart A"},
		db:        "A\n",
		live:      "A",
	}, {
		name:      "migration fails on the first deploy",
		first:     true,
		migration: failingMigration,
		want:      []string{"migration failed (database restored from the backup): "},
		calls:     []string{"back up files before migrating B", "migrate", "restore files backed up before B"},
	}, {
		name:      "restoring the backup fails too",
		migration: failingMigration,
		fake:      func(f *remotetest.Fake) { f.On("restore files").Exit(1, "mv: cannot move") },
		want:      []string{"migration failed: ", "restoring the database backup failed too: ", "mv: cannot move"},
		calls:     []string{"back up files before migrating B", "migrate", "restore files backed up before B"},
		services:  []string{"restart A"},
		db:        "A\nB\n",
		live:      "A",
		migrated:  true,
	}, {
		name:      "restarting the live release fails after the restore",
		migration: failingMigration,
		fake:      func(f *remotetest.Fake) { f.On("restart").Exit(1, "unit failed") },
		want:      []string{"migration failed (database restored from the backup, but restarting A failed: ", "unit failed"},
		calls:     []string{"back up files before migrating B", "migrate", "restore files backed up before B", "restart"},
		services:  []string{"restart A"},
		db:        "A\n",
		live:      "A",
	}, {
		name:     "backup fails",
		fake:     func(f *remotetest.Fake) { f.On("back up files").Exit(1, "cp: cannot open") },
		want:     []string{"back up database: ", "cp: cannot open"},
		calls:    []string{"back up files before migrating B"},
		services: []string{"restart A"},
		db:       "A\n",
		live:     "A",
	}, {
		name:     "backup runs out of space",
		fake:     func(f *remotetest.Fake) { f.On("back up files").Exit(1, "cp: No space left on device") },
		want:     []string{"back up database: disk full on deploy@web1 at "},
		calls:    []string{"back up files before migrating B"},
		services: []string{"restart A"},
		db:       "A\n",
		live:     "A",
	}, {
		// current still points at A: its services must run again.
		name:     "stopping the live release fails",
		fake:     func(f *remotetest.Fake) { f.On("stop").Exit(1, "kill: no such process") },
		want:     []string{"kill: no such process"},
		calls:    []string{"back up files before migrating B", "migrate", "stop", "restart"},
		services: []string{"restart A", "restart A"},
		db:       "A\nB\n",
		live:     "A",
		migrated: true,
	}, {
		name:     "switch fails",
		fake:     func(f *remotetest.Fake) { f.On("switch current").Exit(82, "current points at releases/X") },
		want:     []string{"current points at releases/X"},
		calls:    []string{"back up files before migrating B", "migrate", "stop", "switch current to B", "restart"},
		services: []string{"restart A", "stop A", "restart A"},
		db:       "A\nB\n",
		live:     "A",
		migrated: true,
	}, {
		name:     "switch fails on the first deploy",
		first:    true,
		fake:     func(f *remotetest.Fake) { f.On("switch current").Exit(82, "current points at releases/X") },
		want:     []string{"current points at releases/X"},
		calls:    []string{"back up files before migrating B", "migrate", "switch current to B"},
		db:       "B\n",
		migrated: true,
	}, {
		name: "switch fails and so does restarting the live release",
		fake: func(f *remotetest.Fake) {
			f.On("switch current").Exit(82, "current points at releases/X")
			f.On("restart").Exit(1, "unit failed")
		},
		want:     []string{"current points at releases/X", "restarting A failed too: ", "unit failed"},
		calls:    []string{"back up files before migrating B", "migrate", "stop", "switch current to B", "restart"},
		services: []string{"restart A", "stop A"},
		db:       "A\nB\n",
		live:     "A",
		migrated: true,
	}, {
		// After the switch the caller rolls back: Switched says so.
		name:     "restart fails after the switch",
		fake:     func(f *remotetest.Fake) { f.On("restart").Exit(1, "unit failed") },
		want:     []string{"restart services: ", "unit failed"},
		calls:    []string{"back up files before migrating B", "migrate", "stop", "switch current to B", "restart"},
		services: []string{"restart A", "stop A"},
		db:       "A\nB\n",
		live:     "B",
		migrated: true,
	}, {
		// Found by the chaos driver: an activation whose answer never
		// came had switched, but the host was not rolled back. What
		// the host says decides.
		name:     "the connection is lost once the switch ran",
		fake:     func(f *remotetest.Fake) { f.On("switch current").Times(1).Pass().LoseConnection() },
		want:     []string{"connection lost"},
		calls:    []string{"back up files before migrating B", "migrate", "stop", "switch current to B", "read what the activation of B did"},
		services: []string{"restart A", "stop A"},
		db:       "A\nB\n",
		live:     "B",
		migrated: true,
	}, {
		name:     "interrupted once the backup ran",
		fake:     func(f *remotetest.Fake) { f.On("back up files").Times(1).Pass().Err(context.Canceled) },
		want:     []string{"context canceled"},
		calls:    []string{"back up files before migrating B", "read what the activation of B did", "restart"},
		services: []string{"restart A", "restart A"},
		db:       "A\n",
		live:     "A",
		migrated: true,
	}, {
		name:     "interrupted before anything ran",
		fake:     func(f *remotetest.Fake) { f.On("back up files").Times(1).Err(context.Canceled) },
		want:     []string{"context canceled"},
		calls:    []string{"back up files before migrating B", "read what the activation of B did", "restart"},
		services: []string{"restart A", "restart A"},
		db:       "A\n",
		live:     "A",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			files := maps(withMigration, map[string]string{"app/migrate.sh": tt.migration})
			act := stagedOver(t, 1, tt.first, files)
			if tt.fake != nil {
				tt.fake(act.e.Fake(0))
			}
			h := act.r.Hosts[0]
			err := swap.Activate(context.Background(), act.r.Context, h, swap.MigrateEach(act.r.Context))
			for _, want := range act.expand(tt.want) {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("error %v, want it to say %q", err, want)
				}
			}
			act.check(t, 0, tt.calls, tt.services, tt.db, tt.live)
			if h.Switched != (tt.live == "B") || h.Migrated != tt.migrated {
				t.Errorf("Switched %v, Migrated %v; want %v, %v", h.Switched, h.Migrated, tt.live == "B", tt.migrated)
			}
		})
	}
}

// maps merges ms, later ones winning, leaving out empty values.
func maps(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			if v != "" {
				out[k] = v
			}
		}
	}
	return out
}

// ActivateThen runs its followup in the activation's round trip, and only
// when every step of the activation succeeded.
func TestActivateThen(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fake   func(f *remotetest.Fake)
		ran    bool
		failed bool
	}{
		{name: "after the activation", ran: true},
		{name: "not after a failed switch", fake: func(f *remotetest.Fake) { f.On("switch current").Exit(1, "mv: failed") }, failed: true},
		{name: "not after a failed restart", fake: func(f *remotetest.Fake) { f.On("restart").Times(1).Exit(1, "unit failed") }, failed: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			act := stagedOver(t, 1, false, siteOnly)
			if tc.fake != nil {
				tc.fake(act.e.Fake(0))
			}
			h := act.r.Hosts[0]
			marker := filepath.Join(t.TempDir(), "followed")
			batches := 0
			then := swap.Followup{
				Cmds: []remote.Command{{Desc: "follow up", Script: "touch " + marker}},
				Batch: func(ctx context.Context, cmds ...remote.Command) ([]remote.Result, []error) {
					batches++
					return h.RunBatch(ctx, cmds...)
				},
			}
			_, errs, err := swap.ActivateThen(context.Background(), act.r.Context, h, false, then)
			if (err != nil) != tc.failed {
				t.Fatalf("error %v, want failed %v", err, tc.failed)
			}
			if batches != 1 {
				t.Errorf("%d batches, want 1", batches)
			}
			if runtest.Exists(t, marker) != tc.ran || (tc.ran && (len(errs) != 1 || errs[0] != nil)) {
				t.Errorf("followup ran %v (%v), want %v", runtest.Exists(t, marker), errs, tc.ran)
			}
			batch, _ := act.e.BatchWith(0, act.marks[0], "stop")
			if ran := slices.Contains(batch, "follow up"); ran != tc.ran {
				t.Errorf("the activation's batch %q", batch)
			}
		})
	}
}
