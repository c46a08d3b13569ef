package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/pipeline"
	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/testenv"
)

// fleetBed is three hosts, each a real sshd in a network namespace of its
// own on one bridge (testenv.FleetNet), deployed to once with a canary and
// batches of one host. Both ends give a silent peer up within seconds
// (ServerAlive and ClientAlive every second), so a cut link shows as a lost
// connection soon and the server drops its end before the link is mended:
// nothing sent into the cut arrives later. Each host's health check fails
// while its root holds a file sick that does not name the release checked.
type fleetBed struct {
	net   *testenv.FleetNet
	hosts []*testenv.Host
	p     *testenv.Project
	roots []string
}

func newFleetBed(t *testing.T) *fleetBed {
	t.Helper()
	b := &fleetBed{net: testenv.NewFleetNet(t, 3)}
	for i, ns := range b.net.Hosts {
		b.hosts = append(b.hosts, testenv.StartSSHD(t, testenv.InNetns(ns, b.net.Addrs[i]),
			testenv.WithConfig("ClientAliveInterval 1", "ClientAliveCountMax 1")))
	}
	sshConfig := filepath.Join(t.TempDir(), "ssh_config")
	if err := os.WriteFile(sshConfig, []byte("Host *\n  ServerAliveInterval 1\n  ServerAliveCountMax 2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	port := testenv.FreePort(t)
	b.p = testenv.NewProject(t, testenv.ProjectOptions{
		Hosts: b.hosts, Root: filepath.Join(t.TempDir(), "{host}", "srv"), Port: port, SSHConfig: sshConfig,
		// Fails after it migrated while the root holds fail-migration.
		Migrate:     `./backend/server migrate -db data/restaurant.sqlite3 && test ! -e "$STAGECOACH_ROOT/fail-migration"`,
		Environment: "    strategy: { canary: 1, batch: 1 }\n",
		Health: "      - http: \"http://{host}:" + strconv.Itoa(port) + "/healthz\"\n        body: '\"status\":\"ok\"'\n        timeout: 2s\n" +
			"      - command: 'test ! -e \"$STAGECOACH_ROOT/sick\" || grep -qxF \"$STAGECOACH_RELEASE\" \"$STAGECOACH_ROOT/sick\"'\n",
	})
	for _, h := range b.hosts {
		b.roots = append(b.roots, b.p.HostRoot(h.Addr))
	}
	mustDeploy(t, b.p)
	return b
}

// live is the release every host runs, checked on the servers: current
// verified against its manifest and the backend's answer.
func (b *fleetBed) live(t *testing.T) []string {
	t.Helper()
	out := make([]string, len(b.hosts))
	for i, h := range b.hosts {
		out[i] = verifyLive(t, b.roots[i])
		if v := versionAt(t, h.Addr, b.p.Port); v != out[i] {
			t.Errorf("%s: current is %s but the backend serves %s", h.Addr, out[i], v)
		}
	}
	return out
}

// clean fails when a host keeps a deploy lock, a staging directory or an
// upload of release id.
func (b *fleetBed) clean(t *testing.T, id string) {
	t.Helper()
	for i, root := range b.roots {
		l := server.Layout{Root: root}
		if _, err := os.Stat(l.LockDir()); !os.IsNotExist(err) {
			t.Errorf("host %d: lock left behind (%v)", i+1, err)
		}
		mustNotExist(t, l.StagingDir(id))
		mustNotExist(t, l.IncomingPath(id))
		if left, _ := filepath.Glob(filepath.Join(root, "releases", ".staging-*")); len(left) > 0 {
			t.Errorf("host %d keeps staging directories %v", i+1, left)
		}
	}
}

// deploy runs one deploy of a new commit, each host's runner wrapped by
// wrap when it is set, with quick health deadlines.
func (b *fleetBed) deploy(t *testing.T, wrap func(i int, r remote.Runner) remote.Runner) (*pipeline.Run, error, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r, out := openRun(t, b.p, pipeline.Options{})
	r.Env.HealthWait.Deadline = 3 * time.Second
	if err := r.Detect(ctx); err != nil {
		t.Fatalf("detect: %v\n%s", err, out)
	}
	if wrap != nil {
		for i, h := range r.Hosts {
			h.Runner = wrap(i, h.Runner)
		}
	}
	err := r.Deploy(ctx)
	return r, err, out.String()
}

// cuttingRunner cuts its host's link when it is asked for the first
// command whose description contains at, and mends it after mendAfter:
// long after both ends gave the connection up.
type cuttingRunner struct {
	remote.Runner
	at        string
	cut, mend func()
	once      sync.Once
}

func (c *cuttingRunner) Run(ctx context.Context, cmd remote.Command) (remote.Result, error) {
	if strings.Contains(cmd.Desc, c.at) {
		c.once.Do(func() {
			c.cut()
			time.AfterFunc(5*time.Second, c.mend)
		})
	}
	return c.Runner.Run(ctx, cmd)
}

func (b *fleetBed) cutAt(t *testing.T, host int, at string) func(int, remote.Runner) remote.Runner {
	mended := make(chan struct{})
	t.Cleanup(func() { <-mended })
	return func(i int, r remote.Runner) remote.Runner {
		if i != host {
			return r
		}
		return &cuttingRunner{Runner: r, at: at,
			cut:  func() { b.net.Cut(t, host) },
			mend: func() { b.net.Mend(t, host); close(mended) }}
	}
}

func (b *fleetBed) sick(t *testing.T, host int, healthyOn string) {
	t.Helper()
	path := filepath.Join(b.roots[host], "sick")
	if err := os.WriteFile(path, []byte(healthyOn+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(path) })
}

func fileSum(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// TestRolloutFaults deploys to three sshd hosts in network namespaces
// with a canary and batches of one, and injects one fault per deploy.
// After each, every host serves the release it should (the old one, or
// under continue the documented mix), as its current and its backend
// show, and no host keeps a lock, a staging directory or an upload.
func TestRolloutFaults(t *testing.T) {
	t.Parallel()
	b := newFleetBed(t)
	same := func(t *testing.T, old string) {
		t.Helper()
		for i, got := range b.live(t) {
			if got != old {
				t.Errorf("host %d runs %s, want %s still", i+1, got, old)
			}
		}
	}
	step := func(name string, fn func(t *testing.T, old string)) {
		old := live(t, b.roots[0])
		changeFrontend(t, b.p, name)
		if !t.Run(name, func(t *testing.T) { fn(t, old) }) {
			t.FailNow() // the hosts may disagree now; later steps would not say much
		}
	}

	step("a host cut off in prepare", func(t *testing.T, old string) {
		r, err, out := b.deploy(t, b.cutAt(t, 1, "stage release"))
		if err == nil || exitcode.Of(err) == exitcode.RolledBack {
			t.Fatalf("deploy: %v, want a failure before any switch\n%s", err, out)
		}
		if !strings.Contains(err.Error(), b.hosts[1].Target()) {
			t.Errorf("the error does not name the host cut off: %v", err)
		}
		same(t, old)
		b.clean(t, r.Plan.Release)
		for _, root := range b.roots {
			mustNotExist(t, server.Layout{Root: root}.ReleaseDir(r.Plan.Release))
		}
	})
	step("staging fails on one host", func(t *testing.T, old string) {
		r, err, out := b.deploy(t, func(i int, r remote.Runner) remote.Runner {
			if i != 2 {
				return r
			}
			return &corruptingRunner{Runner: r, layout: server.Layout{Root: b.roots[2]}}
		})
		if exitcode.Of(err) != exitcode.Failed {
			t.Fatalf("deploy: %v (exit %d), want 1\n%s", err, exitcode.Of(err), out)
		}
		same(t, old)
		b.clean(t, r.Plan.Release)
	})
	step("health fails on the canary", func(t *testing.T, old string) {
		b.sick(t, 0, old)
		r, err, out := b.deploy(t, nil)
		if exitcode.Of(err) != exitcode.RolledBack || !strings.Contains(err.Error(), "health of "+b.hosts[0].Target()) {
			t.Fatalf("deploy: %v (exit %d), want the canary's health failure rolled back (5)\n%s", err, exitcode.Of(err), out)
		}
		same(t, old)
		b.clean(t, r.Plan.Release)
		for i := 1; i < 3; i++ {
			if log := servicesLog(t, b.roots[i]); strings.Contains(strings.Join(log, "\n"), r.Plan.Release) {
				t.Errorf("host %d was activated after its canary failed: %q", i+1, log)
			}
		}
	})
	step("a host cut off after the canary activated", func(t *testing.T, old string) {
		r, err, out := b.deploy(t, b.cutAt(t, 1, "switch current to"))
		if exitcode.Of(err) != exitcode.RolledBack {
			t.Fatalf("deploy: %v (exit %d), want rolled back (5)\n%s", err, exitcode.Of(err), out)
		}
		if !strings.Contains(out, "canary: activating") || !strings.Contains(out, "rolled back: current -> releases/"+old) {
			t.Errorf("the canary did not activate and go back:\n%s", out)
		}
		same(t, old)
		b.clean(t, r.Plan.Release)
	})
	step("health fails on the second batch", func(t *testing.T, old string) {
		b.sick(t, 2, old)
		r, err, out := b.deploy(t, nil)
		if exitcode.Of(err) != exitcode.RolledBack || !strings.Contains(err.Error(), "health of "+b.hosts[2].Target()) {
			t.Fatalf("deploy: %v (exit %d), want the last batch's health failure rolled back (5)\n%s", err, exitcode.Of(err), out)
		}
		same(t, old)
		b.clean(t, r.Plan.Release)
	})
	step("a migration fails with once", func(t *testing.T, old string) {
		// Each host has a database of its own here; once: the first
		// alone would migrate.
		cfg := readFile(t, b.p.Config)
		b.p.Write("stagecoach.yml", strings.Replace(cfg, "  backup: [shared/data/restaurant.sqlite3]\n", "  backup: [shared/data/restaurant.sqlite3]\n  once: true\n", 1))
		b.p.Write("backend/migrations/0003_spicy.sql", "ALTER TABLE menu_items ADD COLUMN spicy INTEGER NOT NULL DEFAULT 0;\n")
		b.p.Commit("a migration, once")
		defer func() {
			b.p.Write("stagecoach.yml", cfg)
			b.p.Commit("migrations on every host")
		}()
		if err := os.WriteFile(filepath.Join(b.roots[0], "fail-migration"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(filepath.Join(b.roots[0], "fail-migration"))
		var dbs []string
		for _, root := range b.roots {
			dbs = append(dbs, fileSum(t, filepath.Join(root, "shared", "data", "restaurant.sqlite3")))
		}
		r, err, out := b.deploy(t, nil)
		if exitcode.Of(err) != exitcode.Failed || !strings.Contains(err.Error(), "database restored") {
			t.Fatalf("deploy: %v (exit %d), want the migration's failure, database restored (1)\n%s", err, exitcode.Of(err), out)
		}
		same(t, old)
		b.clean(t, r.Plan.Release)
		for i, root := range b.roots {
			db := filepath.Join(root, "shared", "data", "restaurant.sqlite3")
			if i == 0 {
				// The live backend restarted on the restored file; its
				// schema is the old one (sqlite keeps it as text).
				for _, f := range []string{db, db + "-wal"} {
					if data, err := os.ReadFile(f); err == nil && strings.Contains(string(data), "spicy") {
						t.Errorf("host 1: %s keeps the failed migration", f)
					}
				}
			} else if got := fileSum(t, db); got != dbs[i] {
				t.Errorf("host %d: the database changed", i+1)
			}
			if i > 0 && strings.Contains(out, b.hosts[i].Target()+": back up files") {
				t.Errorf("host %d migrated too", i+1)
			}
		}
	})
	step("health fails on the first batch under continue", func(t *testing.T, old string) {
		cfg := readFile(t, b.p.Config)
		b.p.Write("stagecoach.yml", strings.Replace(cfg, "strategy: { canary: 1, batch: 1 }", "strategy: { canary: 1, batch: 1, on_failure: continue }", 1))
		b.p.Commit("on_failure continue")
		b.sick(t, 1, old)
		r, err, out := b.deploy(t, nil)
		if exitcode.Of(err) != exitcode.Partial || !strings.Contains(err.Error(), b.hosts[1].Target()+" stay on") {
			t.Fatalf("deploy: %v (exit %d), want the batch's host left on the old release (8)\n%s", err, exitcode.Of(err), out)
		}
		id := r.Plan.Release
		want := []string{id, old, id}
		for i, got := range b.live(t) {
			if got != want[i] {
				t.Errorf("host %d runs %s, want %s", i+1, got, want[i])
			}
			if s := state(t, b.roots[i]); s.Current != want[i] {
				t.Errorf("host %d's state says %s is live, want %s", i+1, s.Current, want[i])
			}
		}
		b.clean(t, id)
	})
}
