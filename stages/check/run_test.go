package check_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/check"
	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/pipeline/pipelinetest"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/run/runtest"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/ui"
)

// project is a test project whose health check fails while its marker
// file exists.
type project struct {
	*runtest.Env
	marker string
}

// newProject writes the project; env is YAML added to its environment.
func newProject(t *testing.T, hosts int, env string) *project {
	t.Helper()
	marker := filepath.Join(t.TempDir(), "unhealthy")
	e := runtest.New(t, runtest.Options{Hosts: hosts, Environment: env, Health: "      - command: test ! -e " + marker + "\n"})
	return &project{Env: e, marker: marker}
}

// quickRollback makes a rollback's health checks give up soon.
func quickRollback(rc *run.Context) { rc.Env.HealthWait.Deadline = 100 * time.Millisecond }

// open opens a run of the project (see quickRollback); tweak, when given,
// changes it.
func (p *project) open(t *testing.T, opts run.Options, tweak ...func(*run.Context)) *run.Context {
	t.Helper()
	return p.Open(t, opts, append([]func(*run.Context){quickRollback}, tweak...)...)
}

// deploy deploys n releases, each a change of the web page, and returns
// their ids, oldest first.
func (p *project) deploy(t *testing.T, n int) []string {
	t.Helper()
	var ids []string
	for i := range n {
		if i > 0 {
			p.Write(t, "site/index.html", strings.Repeat("<p>again</p>\n", i))
			p.Commit(t, "change")
		}
		ids = append(ids, pipelinetest.Deploy(t, p.Env, quickRollback))
	}
	return ids
}

// check runs the cron check (see open).
func (p *project) check(t *testing.T, tweak ...func(*run.Context)) (*check.Report, error) {
	t.Helper()
	return check.Run(context.Background(), p.open(t, run.Options{}, tweak...))
}

// sick makes the health check fail on every host until t ends.
func (p *project) sick(t *testing.T) {
	t.Helper()
	if err := os.WriteFile(p.marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(p.marker) })
}

// fresh is p with new fake hosts (no rules, no calls) and log, for one
// case of a table whose cases share p's directories.
func (p *project) fresh() *project {
	return &project{Env: p.Fresh(), marker: p.marker}
}

// keep puts the file or symlink at path back as it is now when t ends,
// so a case may break it.
func keep(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	var target string
	var data []byte
	if fi.Mode()&os.ModeSymlink != 0 {
		target, err = os.Readlink(path)
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		os.Remove(path)
		if target != "" {
			err = os.Symlink(target, path)
		} else {
			err = os.WriteFile(path, data, fi.Mode().Perm())
		}
		if err != nil {
			t.Error(err)
		}
	})
}

// resultOf is host's result of the check named name.
func resultOf(t *testing.T, rep *check.Report, host, name string) check.Result {
	t.Helper()
	for _, c := range rep.Checks {
		if c.Host == host && c.Check == name {
			return c
		}
	}
	t.Fatalf("no %s check of %s in %+v", name, host, rep.Checks)
	return check.Result{}
}

// checksOf lists the checks run on host, in the report's order.
func checksOf(rep *check.Report, host string) []string {
	var out []string
	for _, c := range rep.Checks {
		if c.Host == host {
			out = append(out, c.Check)
		}
	}
	return out
}

// path is a file under host i's deploy root.
func (p *project) path(i int, rel ...string) string {
	return filepath.Join(append([]string{p.Roots[i]}, rel...)...)
}

// write replaces the file at path until t ends.
func (p *project) write(t *testing.T, path, content string) {
	t.Helper()
	keep(t, path)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// remove removes the file or symlink at path until t ends.
func (p *project) remove(t *testing.T, path string) {
	t.Helper()
	keep(t, path)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}

// editState changes host i's state file.
func (p *project) editState(t *testing.T, i int, edit func(*server.State)) {
	t.Helper()
	s := p.State(t, i)
	edit(s)
	data, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	p.write(t, p.path(i, ".stagecoach", "state.json"), string(data))
}

// df is `df -Pk` output of a filesystem with avail of total KiB free.
func df(avail, total int) []byte {
	return fmt.Appendf(nil, "Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/sda1 %d %d %d 50%% /srv\n", total, total-avail, avail)
}

func TestCheckOfHealthyHostsIsSilent(t *testing.T) {
	t.Parallel()
	p := newProject(t, 2, "")
	id := p.deploy(t, 1)[0]
	var quiet bytes.Buffer
	rep, err := p.check(t, func(rc *run.Context) {
		rc.Log = ui.New(&quiet, false)
		rc.Fleet.Log = rc.Log
	})
	if err != nil || rep.Result != "ok" || rep.ExitCode != exitcode.OK {
		t.Fatalf("check: %v, result %s, exit %d\n%s", err, rep.Result, rep.ExitCode, quiet.String())
	}
	if quiet.Len() > 0 {
		t.Errorf("a passing check printed, and cron mails output:\n%s", quiet.String())
	}
	want := []string{"connect", "state", "lock", "disk", "integrity", "service", "health[0] command"}
	for _, c := range rep.Checks {
		if c.Status != check.StatusOK && c.Kind != check.KindService {
			t.Errorf("%s %s: %s %s", c.Host, c.Check, c.Status, c.Message)
		}
	}
	for _, host := range p.Names {
		if got := checksOf(rep, host); !slices.Equal(got, want) {
			t.Errorf("%s checks %q, want %q", host, got, want)
		}
		if st := resultOf(t, rep, host, "state"); !strings.Contains(st.Message, "releases/"+id+" is live (revision ") {
			t.Errorf("state check says %q", st.Message)
		}
		// The command manager reports no status: the health checks
		// stand for the services.
		if svc := resultOf(t, rep, host, "service"); svc.Status != check.StatusSkipped {
			t.Errorf("service check of the command manager: %s %s", svc.Status, svc.Message)
		}
		if d := resultOf(t, rep, host, "disk").Disk; d == nil || d.TotalBytes == 0 {
			t.Errorf("disk check of %s measured %+v", host, d)
		}
	}

	// Verbose, it lists every check.
	p.check(t)
	if !strings.Contains(p.Log.String(), "check test: ok in ") {
		t.Errorf("verbose check did not list its checks:\n%s", p.Log)
	}
}

// hostFault is a fault on the second of two deployed hosts and the check
// result it must give there.
type hostFault struct {
	name   string
	fault  func(t *testing.T, p *project, id string)
	tweak  func(*run.Context)
	check  string // the check that reports the fault
	status string
	says   string // in its message
	action string // in what to do about it
	code   int
	extra  func(t *testing.T, r check.Result) // more to see in the result
}

func TestCheckFindsFaults(t *testing.T) {
	t.Parallel()
	const mib = 1024
	// The cases share one deployed project: each undoes its fault.
	p := newProject(t, 2, "")
	id := p.deploy(t, 1)[0]
	for _, c := range []hostFault{
		{
			name: "a modified file in the live release",
			fault: func(t *testing.T, p *project, id string) {
				p.write(t, p.path(1, "releases", id, "web", "index.html"), "<h1>defaced</h1>\n")
			},
			check: "integrity", status: check.StatusFailed, says: "1 modified (web/index.html)", action: "tampering", code: exitcode.Unhealthy,
			extra: func(t *testing.T, r check.Result) {
				if r.Files == nil || !slices.Equal(r.Files.Modified, []string{"web/index.html"}) {
					t.Errorf("integrity files: %+v", r.Files)
				}
			},
		},
		{
			name: "the manifest lists are gone",
			fault: func(t *testing.T, p *project, id string) {
				p.remove(t, p.path(1, ".stagecoach", "manifests", id+".sha256"))
			},
			check: "integrity", status: check.StatusFailed, says: "cannot verify", code: exitcode.Unhealthy,
		},
		{
			name: "the integrity check cannot run",
			fault: func(t *testing.T, p *project, _ string) {
				p.Fake(1).On("verify release").Exit(1, "sha256sum: not found")
			},
			check: "integrity", status: check.StatusError, says: "sha256sum: not found", code: exitcode.Unreachable,
		},
		{
			name:  "the state file is missing",
			fault: func(t *testing.T, p *project, _ string) { p.remove(t, p.path(1, ".stagecoach", "state.json")) },
			check: "state", status: check.StatusWarn, says: "is missing", action: "ships every file", code: exitcode.OK,
		},
		{
			name:  "the state file is corrupt",
			fault: func(t *testing.T, p *project, _ string) { p.write(t, p.path(1, ".stagecoach", "state.json"), "{") },
			check: "state", status: check.StatusFailed, says: "corrupt", action: "move it aside", code: exitcode.Unhealthy,
		},
		{
			name: "the state disagrees with current",
			fault: func(t *testing.T, p *project, _ string) {
				p.editState(t, 1, func(s *server.State) { s.Current = "20200101T000000Z-0000000" })
			},
			check: "state", status: check.StatusWarn, says: "changed by hand?", code: exitcode.OK,
		},
		{
			name:  "current is gone but the state is there",
			fault: func(t *testing.T, p *project, _ string) { p.remove(t, p.path(1, "current")) },
			check: "state", status: check.StatusFailed, says: "no current release", code: exitcode.Unhealthy,
		},
		{
			name: "current points elsewhere",
			fault: func(t *testing.T, p *project, _ string) {
				p.remove(t, p.path(1, "current"))
				if err := os.Symlink("shared", p.path(1, "current")); err != nil {
					t.Fatal(err)
				}
			},
			check: "state", status: check.StatusFailed, says: "not at a release", action: "mage rollback", code: exitcode.Unhealthy,
		},
		{
			name:  "the state cannot be read",
			fault: func(t *testing.T, p *project, _ string) { p.Fake(1).On("state.json").Exit(1, "permission denied") },
			check: "state", status: check.StatusError, says: "permission denied", code: exitcode.Unreachable,
		},
		{
			name: "current cannot be read",
			fault: func(t *testing.T, p *project, _ string) {
				p.Fake(1).On("read current release").Exit(1, "input/output error")
			},
			check: "state", status: check.StatusError, says: "input/output error", code: exitcode.Unreachable,
		},
		{
			name:  "a deploy is running",
			fault: func(t *testing.T, p *project, _ string) { p.TakeLock(t, 1, "alice@laptop", time.Minute, 0) },
			check: "lock", status: check.StatusOK, says: "deploy running for 1m", code: exitcode.OK,
		},
		{
			name:  "a live deploy holds the lock too long",
			tweak: func(rc *run.Context) { rc.Env.Check.LockMaxAge = 30 * time.Second },
			fault: func(t *testing.T, p *project, _ string) { p.TakeLock(t, 1, "alice@laptop", time.Hour, 0) },
			check: "lock", status: check.StatusFailed, says: "lock_max_age 30s", action: "holder is alive", code: exitcode.Unhealthy,
		},
		{
			name:  "a dead deploy left its lock",
			tweak: func(rc *run.Context) { rc.Env.Check.LockMaxAge = 30 * time.Second },
			fault: func(t *testing.T, p *project, _ string) { p.TakeLock(t, 1, "alice@laptop", time.Hour, time.Hour) },
			check: "lock", status: check.StatusFailed, says: "deploy lock stuck", action: "STAGECOACH_BREAK_LOCK=1", code: exitcode.Unhealthy,
		},
		{
			name:  "the lock is unreadable",
			fault: func(t *testing.T, p *project, _ string) { p.Fake(1).On("read deploy lock").Stdout([]byte("garbage\n")) },
			check: "lock", status: check.StatusFailed, says: "unreadable", code: exitcode.Unhealthy,
		},
		{
			name:  "the lock cannot be read",
			fault: func(t *testing.T, p *project, _ string) { p.Fake(1).On("read deploy lock").Exit(1, "no such shell") },
			check: "lock", status: check.StatusError, says: "no such shell", code: exitcode.Unreachable,
		},
		{
			name:  "the disk is nearly full",
			tweak: func(rc *run.Context) { rc.Env.Check.MinFreeDisk = "1GB" },
			fault: func(t *testing.T, p *project, _ string) {
				p.Fake(1).On("measure free disk").Stdout(df(100*mib, 100000*mib))
			},
			check: "disk", status: check.StatusFailed, says: "below the minimum 1.0 GB", action: "mage cleanup", code: exitcode.Unhealthy,
			extra: func(t *testing.T, r check.Result) {
				if d := r.Disk; d == nil || d.FreeBytes != 100<<20 || d.Mount != "/srv" {
					t.Errorf("disk: %+v", d)
				}
			},
		},
		{
			name:  "the disk is below its share",
			fault: func(t *testing.T, p *project, _ string) { p.Fake(1).On("measure free disk").Stdout(df(mib, 100*mib)) },
			check: "disk", status: check.StatusFailed, says: "(1.0%)", code: exitcode.Unhealthy,
		},
		{
			name:  "df fails",
			fault: func(t *testing.T, p *project, _ string) { p.Fake(1).On("measure free disk").Exit(1, "df: not found") },
			check: "disk", status: check.StatusError, says: "df: not found", code: exitcode.Unreachable,
		},
		{
			name:  "df says something else",
			fault: func(t *testing.T, p *project, _ string) { p.Fake(1).On("measure free disk").Stdout([]byte("what?\n")) },
			check: "disk", status: check.StatusError, says: "unexpected df output", code: exitcode.Unreachable,
		},
		{
			name:  "the host is unreachable",
			fault: func(t *testing.T, p *project, _ string) { p.Dialer.Fail(p.Names[1], errors.New("connection refused")) },
			check: "connect", status: check.StatusError, says: "connection refused", action: "known_hosts", code: exitcode.Unreachable,
		},
		{
			name:  "the health check fails",
			fault: func(t *testing.T, p *project, _ string) { p.sick(t) },
			check: "", status: check.StatusFailed, says: "attempt", action: "check.self_heal", code: exitcode.Unhealthy,
		},
	} {
		t.Run(c.name, func(t *testing.T) { c.run(t, p.fresh(), id) })
	}
}

func (c hostFault) run(t *testing.T, p *project, id string) {
	c.fault(t, p, id)
	var tweaks []func(*run.Context)
	if c.tweak != nil {
		tweaks = append(tweaks, c.tweak)
	}
	rep, err := p.check(t, tweaks...)
	if got := exitcode.Of(err); got != c.code || rep.ExitCode != c.code {
		t.Fatalf("exit %d (report %d): %v, want %d\n%s", got, rep.ExitCode, err, c.code, p.Log)
	}
	name := c.check
	if name == "" {
		name = "health[0] command"
	}
	got := resultOf(t, rep, p.Names[1], name)
	if got.Status != c.status || !strings.Contains(got.Message, c.says) || !strings.Contains(got.Action, c.action) {
		t.Errorf("%s check: %s %q, action %q; want %s saying %q, action with %q", name, got.Status, got.Message, got.Action, c.status, c.says, c.action)
	}
	if c.extra != nil {
		c.extra(t, got)
	}
	if c.code != exitcode.OK && !strings.Contains(err.Error(), name+" on "+p.Names[1]) {
		t.Errorf("error %q does not name the check and the host", err)
	}
	// The healthy host is not blamed, unless the fault is everywhere.
	if name == c.check {
		for _, r := range rep.Checks {
			if r.Host == p.Names[0] && r.Status != check.StatusOK && r.Status != check.StatusSkipped {
				t.Errorf("healthy host: %s %s %s", r.Check, r.Status, r.Message)
			}
		}
	}
	if c.status == check.StatusFailed || c.status == check.StatusError {
		if !strings.Contains(p.Log.String(), "what to do: ") {
			t.Errorf("the log does not say what to do:\n%s", p.Log)
		}
	}
}
