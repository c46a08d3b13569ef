// Package runtest builds run contexts for unit tests of the steps and the
// pipeline without a server: a small project in a git repository of its
// own, and hosts that are scripted fake runners (remotetest) over this
// machine's shell, each with a deploy root of its own. The real server
// scripts run against those roots, so a test sees what a deploy would
// leave on a server, and can inject a fault at any call.
package runtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/fleet"
	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/remote/remotetest"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/testenv"
	"github.com/stagecoach/stagecoach/stages/ui"
)

// Options shape the project and its environment.
type Options struct {
	// Hosts is how many hosts the environment has; default 1. They are
	// named deploy@web1, deploy@web2, ...
	Hosts int
	// Health is YAML for the environment's health list items, e.g.
	// "      - command: test -f web/index.html\n"; default none.
	Health string
	// Services replaces the environment's services block; by default the
	// command manager logs each stop and restart to shared/services.log.
	Services string
	// Environment is YAML appended to the environment's block.
	Environment string
	// Settings, when set, are the hosts' settings in YAML flow style, in
	// host order, e.g. "vars: {PORT: 8081}, tags: [web]": each host is
	// then written as {host: deploy@webN, <settings>}.
	Settings []string
}

// Env is a project and its fake hosts.
type Env struct {
	Dir    string   // the project's work tree
	Config string   // its stagecoach.yml
	Names  []string // the hosts as configured
	Roots  []string // each host's deploy root, in Names' order
	Dialer *remotetest.Dialer
	Log    *testenv.SyncBuffer // every run's log, verbose
}

// New writes and commits the project. It has two components, web (site/
// built into dist/) and app (app/ built into appdist/, holding the
// migration script), migrations under app/migrations/ that append the
// release id to shared/data/db, and shared/data linked into each release.
func New(t testing.TB, opts Options) *Env {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("git not found: apt-get install -y git")
	}
	e := &Env{Dir: t.TempDir(), Dialer: &remotetest.Dialer{Inner: remote.NewLocal()}, Log: &testenv.SyncBuffer{}}
	hosts := max(opts.Hosts, 1)
	root := filepath.Join(t.TempDir(), "{host}", "srv")
	var entries []string
	for i := 1; i <= hosts; i++ {
		name := fmt.Sprintf("deploy@web%d", i)
		e.Names = append(e.Names, name)
		e.Roots = append(e.Roots, fleet.HostRoot(root, name))
		entry := name
		if i <= len(opts.Settings) && opts.Settings[i-1] != "" {
			entry = fmt.Sprintf("{host: %s, %s}", name, opts.Settings[i-1])
		}
		entries = append(entries, entry)
	}
	services := opts.Services
	if services == "" {
		services = `    services:
      manager: command
      stop: ['echo "stop $STAGECOACH_RELEASE" >> ../../shared/services.log']
      restart: ['echo "restart $STAGECOACH_RELEASE" >> ../../shared/services.log']
`
	}
	health := ""
	if opts.Health != "" {
		health = "    health:\n" + opts.Health + "    health_wait: { deadline: 1s, interval: 10ms }\n"
	}
	e.Config = filepath.Join(e.Dir, "stagecoach.yml")
	e.Write(t, "stagecoach.yml", fmt.Sprintf(`app: shop
keep_releases: 3
components:
  web:
    watch: ["site/**"]
    build: rm -rf dist && mkdir -p dist && cp -R site/. dist/
    output: dist
  app:
    watch: ["app/**"]
    build: rm -rf appdist && mkdir -p appdist && cp -R app/. appdist/
    output: appdist
migrations:
  watch: ["app/migrations/**"]
  run: sh app/migrate.sh
  backup: [shared/data/db]
environments:
  test:
    hosts: [%s]
    root: %q
    shared: [data]
%s%s%s`, strings.Join(entries, ", "), root, services, health, opts.Environment))
	e.Write(t, ".gitignore", "dist/\nappdist/\n.stagecoach/\n")
	e.Write(t, "site/index.html", "<h1>v1</h1>\n")
	e.Write(t, "app/migrate.sh", "mkdir -p data && echo \"$STAGECOACH_RELEASE\" >> data/db\n")
	e.Write(t, "app/migrations/001.sql", "create table t (id int);\n")
	e.git(t, "init", "-q", "-b", "main")
	e.git(t, "config", "user.email", "test@example.com")
	e.git(t, "config", "user.name", "Test")
	e.Commit(t, "initial")
	return e
}

// Open opens a run of the test environment whose hosts are e's fakes;
// tweak, when given, changes its context. Its deploy locks keep a lease
// of a one-second heartbeat and a one-minute TTL: the server tells lock
// ages in whole seconds, so a TTL of a fraction of one would make a live
// lock look stale, and each heartbeat costs a shell per host. A test that
// wants a stale lock takes one with an old heartbeat (TakeLock).
func (e *Env) Open(t testing.TB, opts run.Options, tweak ...func(*run.Context)) *run.Context {
	t.Helper()
	opts.ConfigPath, opts.Environment = e.Config, "test"
	rc, err := run.Open(opts, ui.New(e.Log, true))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	rc.Fleet.Dial = e.Dialer.Dial
	rc.Fleet.Lease = fleet.LeaseTiming{Heartbeat: time.Second, TTL: time.Minute}
	for _, fn := range tweak {
		fn(rc)
	}
	return rc
}

// Fresh is a copy of e over the same project and deploy roots with new
// fake hosts (no rules, no calls) and a new log, so that the cases of a
// table can share one deployed project yet see only their own calls.
func (e *Env) Fresh() *Env {
	c := *e
	c.Dialer = &remotetest.Dialer{Inner: remote.NewLocal()}
	c.Log = &testenv.SyncBuffer{}
	return &c
}

// Fake is host i's fake runner (0-based), shared by every connection to it.
func (e *Env) Fake(i int) *remotetest.Fake { return e.Dialer.Host(e.Names[i]) }

// Write writes a file of the project, relative to its root.
func (e *Env) Write(t testing.TB, rel, content string) {
	t.Helper()
	path := filepath.Join(e.Dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Commit commits every change of the work tree.
func (e *Env) Commit(t testing.TB, msg string) {
	t.Helper()
	e.git(t, "add", "-A")
	e.git(t, "commit", "-q", "-m", msg)
}

// Live is the release current points at on host i, "" when none.
func (e *Env) Live(t testing.TB, i int) string {
	t.Helper()
	target, err := os.Readlink(filepath.Join(e.Roots[i], "current"))
	if os.IsNotExist(err) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(target, "releases/")
}

// Services is host i's shared/services.log: one "stop ID" or "restart ID"
// line per service operation, none when nothing was touched.
func (e *Env) Services(t testing.TB, i int) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(e.Roots[i], "shared", "services.log"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(data)), "\n")
}

// State reads host i's deploy state.
func (e *Env) State(t testing.TB, i int) *server.State {
	t.Helper()
	path := server.Layout{Root: e.Roots[i]}.StatePath()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := server.ParseState(path, data)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TakeLock takes host i's deploy lock as another deploy by holder would
// (pid 4242, token "token-of-" + holder) until t ends: taken heldFor ago,
// its last heartbeat heartbeat ago. A heartbeat older than the lease's
// TTL (see Open) makes the lock stale.
func (e *Env) TakeLock(t testing.TB, i int, holder string, heldFor, heartbeat time.Duration) {
	t.Helper()
	l := server.Layout{Root: e.Roots[i]}
	// Cases that share the roots must not find the lock of another.
	t.Cleanup(func() { os.RemoveAll(l.LockDir()) })
	lock, err := server.Lock(l, server.LockInfo{Holder: holder, PID: 4242, Token: "token-of-" + holder})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := server.Run(context.Background(), remote.NewLocal(), lock); err != nil {
		t.Fatal(err)
	}
	// The heartbeat is info.json's mtime; when the lock was taken, the
	// directory's.
	for path, age := range map[string]time.Duration{filepath.Join(l.LockDir(), "info.json"): heartbeat, l.LockDir(): heldFor} {
		then := time.Now().Add(-age)
		if err := os.Chtimes(path, then, then); err != nil {
			t.Fatal(err)
		}
	}
}

// Marks notes how many calls each host has had so far, for CallsSince.
func (e *Env) Marks() []int {
	m := make([]int, len(e.Names))
	for i := range m {
		m[i] = len(e.Fake(i).Calls())
	}
	return m
}

// CallsSince is what host i was asked for after its first mark calls,
// each command by its Desc up to its arguments (an upload's path after
// " /", a service command's position, as in restart[1], or text after
// ":"). The state reads are left out: every run makes them, wherever a
// test stops it.
func (e *Env) CallsSince(i, mark int) []string {
	var out []string
	for _, d := range e.Fake(i).Descs()[mark:] {
		if d == "read deploy state" {
			continue
		}
		out = append(out, shortDesc(d))
	}
	return out
}

// BatchWith is the batch that carried host i's first call after its
// first mark calls whose Desc has desc, each command as CallsSince tells
// it (those that did not run, since one before them failed, are left
// out), and the mark of the calls after it (see CallsSince); nil and the
// number of calls when no batch has one.
func (e *Env) BatchWith(i, mark int, desc string) (batch []string, after int) {
	calls := e.Fake(i).Calls()
	n := 0
	for _, c := range calls[mark:] {
		if c.Batch > 0 && strings.Contains(c.Desc, desc) {
			n = c.Batch
			break
		}
	}
	if n == 0 {
		return nil, len(calls)
	}
	for j, c := range calls {
		if c.Batch == n {
			batch, after = append(batch, shortDesc(c.Desc)), j+1
		}
	}
	return batch, after
}

// shortDesc is a command's Desc up to its arguments (see CallsSince).
func shortDesc(d string) string {
	d, _, _ = strings.Cut(d, ":")
	d, _, _ = strings.Cut(d, "[")
	d, _, _ = strings.Cut(d, " /")
	return d
}

// CheckCalls fails unless host i was asked for exactly want after its
// first mark calls (see CallsSince).
func (e *Env) CheckCalls(t testing.TB, i, mark int, want ...string) {
	t.Helper()
	if got := e.CallsSince(i, mark); !slices.Equal(got, want) {
		t.Errorf("host %d was asked for %q, want %q", i, got, want)
	}
}

// ReadFile is the content of the file at path, a host's or the project's.
func ReadFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Exists reports whether path exists, a symlink even when it dangles.
func Exists(t testing.TB, path string) bool {
	t.Helper()
	_, err := os.Lstat(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return err == nil
}

func (e *Env) git(t testing.TB, args ...string) {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = e.Dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}
