package check_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/check"
	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/pipeline/pipelinetest"
	"github.com/stagecoach/stagecoach/stages/run"
)

// fleetCheck is the report's check over all hosts, failing the test when
// it has none.
func fleetCheck(t *testing.T, rep *check.Report) check.Result {
	t.Helper()
	for _, c := range rep.Checks {
		if c.Kind == check.KindFleet {
			return c
		}
	}
	t.Fatalf("no fleet check in %+v", rep.Checks)
	return check.Result{}
}

func TestCheckFindsHostsOnDifferentReleases(t *testing.T) {
	t.Parallel()
	p := newProject(t, 3, "")
	first := p.deploy(t, 1)[0]

	rep, err := p.check(t)
	if err != nil {
		t.Fatalf("check of one release everywhere: %v", err)
	}
	if c := fleetCheck(t, rep); c.Status != check.StatusOK || c.Message != "the 3 hosts run "+first {
		t.Errorf("fleet check %s: %s", c.Status, c.Message)
	}

	// A deploy that reached only web1 and web2.
	p.Write(t, "site/index.html", "<h1>v2</h1>\n")
	p.Commit(t, "v2")
	second := pipelinetest.Deploy(t, p.Env, func(rc *run.Context) { rc.Env.Hosts = rc.Env.Hosts[:2] })

	rep, err = p.check(t)
	want := "hosts run different releases: deploy@web3 runs " + first + ", the others " + second
	if exitcode.Of(err) != exitcode.Unhealthy || !strings.Contains(err.Error(), "releases of the hosts failed") {
		t.Errorf("check = %v (exit %d), want unhealthy naming the releases check", err, exitcode.Of(err))
	}
	c := fleetCheck(t, rep)
	if c.Status != check.StatusFailed || c.Message != want || !strings.Contains(c.Action, "STAGECOACH_HOSTS=failed") {
		t.Errorf("fleet check %s: %q (do: %q), want failed: %q", c.Status, c.Message, c.Action, want)
	}
	if !strings.Contains(p.Log.String(), "test: releases: "+want) {
		t.Errorf("the log does not say %q:\n%s", want, p.Log)
	}

	// While a deploy holds a lock, the hosts may differ.
	p.TakeLock(t, 0, "alice@laptop", time.Second, 0)
	rep, err = p.check(t)
	if err != nil {
		t.Errorf("check while a deploy runs: %v", err)
	}
	if c := fleetCheck(t, rep); c.Status != check.StatusSkipped || !strings.Contains(c.Message, "a deploy holds the lock on deploy@web1") {
		t.Errorf("fleet check during a deploy: %s: %s", c.Status, c.Message)
	}
}
