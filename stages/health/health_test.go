package health_test

import (
	"context"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/config"
	"github.com/stagecoach/stagecoach/stages/health"
	"github.com/stagecoach/stagecoach/stages/probe"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/run/runtest"
)

// checkRun opens a run of hosts hosts with the health checks given as
// YAML, connected, retrying failed checks only briefly.
func checkRun(t *testing.T, hosts int, checks string) (*runtest.Env, *run.Context) {
	t.Helper()
	e := runtest.New(t, runtest.Options{Hosts: hosts, Health: checks})
	rc := e.Open(t, run.Options{})
	rc.Env.HealthWait = config.Wait{Deadline: 60 * time.Millisecond, Interval: 10 * time.Millisecond}
	if len(checks) == 0 {
		return e, rc
	}
	var err error
	if rc.Hosts, err = rc.Fleet.Connect(context.Background(), rc.Env.Hosts, rc.Env.Root); err != nil {
		t.Fatal(err)
	}
	return e, rc
}

func TestNoChecksConfiguredIsAWarning(t *testing.T) {
	e, rc := checkRun(t, 2, "")
	if err := (health.Step{}).Run(context.Background(), rc); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(e.Log.String(), "WARN no health checks configured for test") {
		t.Errorf("log %q lacks the warning", e.Log)
	}
	if len(rc.Report.Health) != 0 || len(e.Fake(0).Calls()) != 0 {
		t.Errorf("checked something: %+v, calls %q", rc.Report.Health, e.Fake(0).Descs())
	}
}

// outcome is a result as "host check ok|failed", for comparing.
func outcome(r probe.Result) string {
	s := r.Host + " " + r.Check + " failed"
	if r.OK {
		s = r.Host + " " + r.Check + " ok"
	}
	return s
}

func TestChecksOnSeveralHosts(t *testing.T) {
	const (
		pass = `      - command: test -n "$PWD"` + "\n"
		fail = "      - command: exit 7\n"
	)
	down := func(e *runtest.Env) { e.Fake(1).On("health check").Exit(1, "503 not ready") }
	for _, tc := range []struct {
		name    string
		checks  string
		rules   func(e *runtest.Env)
		want    []string // outcomes, sorted
		wantErr []string // in the error; none: no error
		notErr  []string
	}{
		{name: "all pass", checks: pass, want: []string{
			"deploy@web1 health[0] command ok", "deploy@web2 health[0] command ok", "deploy@web3 health[0] command ok"}},
		{name: "one host fails", checks: pass, rules: down, want: []string{
			"deploy@web1 health[0] command ok", "deploy@web2 health[0] command failed", "deploy@web3 health[0] command ok"},
			wantErr: []string{"health of deploy@web2: unhealthy: health[0] command", "503 not ready"},
			notErr:  []string{"deploy@web1", "deploy@web3", "test -n"}},
		{name: "one check fails everywhere", checks: pass + fail, want: []string{
			"deploy@web1 health[0] command ok", "deploy@web1 health[1] command failed",
			"deploy@web2 health[0] command ok", "deploy@web2 health[1] command failed",
			"deploy@web3 health[0] command ok", "deploy@web3 health[1] command failed"},
			wantErr: []string{"health of deploy@web1: unhealthy: health[1] command", "health of deploy@web2", "health of deploy@web3"},
			notErr:  []string{"health[0]", "exit 7"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, rc := checkRun(t, 3, tc.checks)
			// Long enough for a second attempt of a check that runs a
			// real shell on a loaded machine: the test counts attempts.
			rc.Env.HealthWait.Deadline = time.Second
			if tc.rules != nil {
				tc.rules(e)
			}
			err := (health.Step{}).Run(context.Background(), rc)
			if (err != nil) != (len(tc.wantErr) > 0) {
				t.Fatalf("Run = %v, want an error: %v", err, len(tc.wantErr) > 0)
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
			for _, not := range tc.notErr {
				if strings.Contains(err.Error(), not) {
					t.Errorf("error %q names %q, which passed", err, not)
				}
			}
			var got []string
			for _, r := range rc.Report.Health {
				got = append(got, outcome(r))
				// A failed check was retried until its deadline.
				if !r.OK && r.Attempts < 2 {
					t.Errorf("%s: %d attempts", outcome(r), r.Attempts)
				}
			}
			sort.Strings(got)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("report:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// TestChecksRunOnTheirHost: a command check goes over the host's own
// connection, and only there.
func TestChecksRunOnTheirHost(t *testing.T) {
	e, rc := checkRun(t, 2, "      - command: true\n")
	if err := (health.Step{}).Run(context.Background(), rc); err != nil {
		t.Fatal(err)
	}
	for i := range e.Names {
		if n := e.Fake(i).Count("health check"); n != 1 {
			t.Errorf("host %d: %d checks, want 1", i, n)
		}
	}
}

// TestStepName: the report and the plugin hooks (before-health) use it.
func TestStepName(t *testing.T) {
	if s := (health.Step{}).String(); s != "health" {
		t.Errorf("String() = %q", s)
	}
}
