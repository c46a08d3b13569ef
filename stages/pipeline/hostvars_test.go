package pipeline

import (
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/run/runtest"
	"github.com/stagecoach/stagecoach/stages/ui"
)

// hostVarsEnv is two hosts whose services need ports of their own: the
// restart command logs the port it would listen on, and the command check
// passes only when the host's PORT is the one its config gives it.
func hostVarsEnv(t *testing.T) *runtest.Env {
	return runtest.New(t, runtest.Options{
		Hosts:    2,
		Settings: []string{"vars: {PORT: 8081}, tags: [web]", "vars: {PORT: 8082, MODE: canary}, tags: [web, canary]"},
		Services: `    services:
      manager: command
      restart: ['echo "restart $STAGECOACH_RELEASE $PORT $MODE" >> ../../shared/services.log']
`,
		Health:      "      - command: test \"$PORT\" = {vars.PORT}\n",
		Environment: "    env: {vars: {PORT: \"80\", MODE: prod}}\n",
	})
}

func TestHostVarsReachCommandsAndChecks(t *testing.T) {
	t.Parallel()
	e := hostVarsEnv(t)
	r, err := deploy(context.Background(), t, e, run.Options{})
	if err != nil {
		t.Fatalf("deploy: %v\n%s", err, e.Log)
	}
	id := r.Plan.Release
	for i, want := range []string{"restart " + id + " 8081 prod", "restart " + id + " 8082 canary"} {
		log := runtest.ReadFile(t, filepath.Join(e.Roots[i], "shared", "services.log"))
		if strings.TrimSpace(log) != want {
			t.Errorf("host %d: services.log = %q, want %q (host vars over env.vars)", i, log, want)
		}
	}
	for _, res := range r.Report.Health {
		if !res.OK {
			t.Errorf("%s %s: %s", res.Host, res.Check, res.Detail)
		}
	}
	if len(r.Report.Health) != 2 {
		t.Errorf("%d health results, want 2", len(r.Report.Health))
	}
}

func TestSelectedHostsOnly(t *testing.T) {
	t.Parallel()
	e := hostVarsEnv(t)
	old := mustDeploy(t, e)
	e.Write(t, "site/index.html", "<h1>v2</h1>\n")
	e.Commit(t, "v2")

	marks := e.Marks()
	r, err := deploy(context.Background(), t, e, run.Options{Hosts: "tag:canary"})
	if err != nil {
		t.Fatalf("deploy: %v\n%s", err, e.Log)
	}
	if got := e.Live(t, 0); got != old {
		t.Errorf("host 0, not selected, runs %s, want %s still", got, old)
	}
	if got := e.Live(t, 1); got != r.Plan.Release {
		t.Errorf("host 1 runs %s, want %s", got, r.Plan.Release)
	}
	if calls := e.CallsSince(0, marks[0]); len(calls) != 0 {
		t.Errorf("the host not selected got calls: %q", calls)
	}
	if rep := readReport(t, r); len(rep.Hosts) != 1 || rep.Hosts[0].Name != e.Names[1] {
		t.Errorf("report hosts = %+v, want only %s", rep.Hosts, e.Names[1])
	}

	_, err = run.Open(run.Options{ConfigPath: e.Config, Hosts: "web9"}, ui.New(io.Discard, false))
	if exitcode.Of(err) != exitcode.BadConfig || !strings.Contains(err.Error(), `STAGECOACH_HOSTS=web9: environment test has no host "web9" (hosts: deploy@web1, deploy@web2)`) {
		t.Errorf("unknown host: %v (exit %d)", err, exitcode.Of(err))
	}
}
