package check_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stagecoach/stagecoach/stages/check"
	"github.com/stagecoach/stagecoach/stages/config"
	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/run"
)

// The service managers with a status report each service; the fake host
// answers the status command as the manager would. One deployed host
// serves every case, each answer spent by one check.
func TestCheckServices(t *testing.T) {
	t.Parallel()
	p := newProject(t, 1, "")
	id := p.deploy(t, 1)[0]
	systemd := config.Services{Manager: "systemd", Restart: []string{"web.service", "worker.service"}}
	compose := config.Services{Manager: "compose", File: "compose.yml"}
	for _, c := range []struct {
		name     string
		services config.Services
		status   string // the manager's answer
		fails    bool   // the status command fails
		want     map[string]string
		says     string
		code     int
	}{
		{
			name: "systemd units are active", services: systemd,
			status: "Id=web.service\nActiveState=active\nSubState=running\n\nId=worker.service\nActiveState=active\nSubState=running\n",
			want:   map[string]string{"service web.service": check.StatusOK, "service worker.service": check.StatusOK},
		},
		{
			name: "a systemd unit failed", services: systemd,
			status: "Id=web.service\nActiveState=active\nSubState=running\n\nId=worker.service\nActiveState=failed\nSubState=failed\n",
			want:   map[string]string{"service web.service": check.StatusOK, "service worker.service": check.StatusFailed},
			says:   "worker.service is failed (failed)", code: exitcode.Unhealthy,
		},
		{
			name: "no systemd unit runs", services: systemd, status: "\n",
			want: map[string]string{"service": check.StatusFailed}, says: "no systemd services of releases/" + id + " are running", code: exitcode.Unhealthy,
		},
		{
			name: "systemctl fails", services: systemd, fails: true,
			want: map[string]string{"service": check.StatusError}, says: "Failed to connect to bus", code: exitcode.Unreachable,
		},
		{
			// Just restarted: its first healthcheck has not run yet.
			name: "a compose service is starting", services: compose, status: "web\trunning\tstarting\n",
			want: map[string]string{"service web": check.StatusWarn},
		},
		{
			name: "a compose service is unhealthy", services: compose, status: "web\trunning\tunhealthy\n",
			want: map[string]string{"service web": check.StatusFailed}, says: "web is running (unhealthy)", code: exitcode.Unhealthy,
		},
		{
			name: "compose says something else", services: compose, status: "web running\n",
			want: map[string]string{"service": check.StatusError}, says: "unexpected compose status line", code: exitcode.Unreachable,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			rule := p.Fake(0).On("status").Times(1)
			if c.fails {
				rule.Exit(1, "Failed to connect to bus")
			} else {
				rule.Stdout([]byte(c.status))
			}
			rep, err := p.check(t, func(rc *run.Context) { rc.Env.Services = c.services })
			if got := exitcode.Of(err); got != c.code {
				t.Fatalf("exit %d: %v, want %d", got, err, c.code)
			}
			var says []string
			for name, status := range c.want {
				got := resultOf(t, rep, p.Names[0], name)
				if got.Status != status {
					t.Errorf("%s: %s %q, want %s", name, got.Status, got.Message, status)
				}
				says = append(says, got.Message)
			}
			if !strings.Contains(strings.Join(says, "\n"), c.says) {
				t.Errorf("no service check says %q: %q", c.says, says)
			}
		})
	}
}

func TestCheckWritesJSONAndPrometheus(t *testing.T) {
	t.Parallel()
	p := newProject(t, 1, "    check: { prometheus: metrics/stagecoach.prom }\n")
	p.deploy(t, 1)
	rep, err := p.check(t)
	if err != nil {
		t.Fatal(err)
	}
	data, err := rep.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var decoded struct {
		App, Environment, Result string
		ExitCode                 int `json:"exit_code"`
		Checks                   []check.Result
	}
	if err := json.Unmarshal(data, &decoded); err != nil {
		t.Fatalf("JSON report: %v\n%s", err, data)
	}
	if decoded.App != "shop" || decoded.Environment != "test" || decoded.Result != "ok" || len(decoded.Checks) != len(rep.Checks) || len(rep.Failed()) > 0 {
		t.Errorf("JSON report: %+v", decoded)
	}
	text, err := os.ReadFile(filepath.Join(p.Dir, "metrics", "stagecoach.prom"))
	if err != nil {
		t.Fatal(err)
	}
	if want := `stagecoach_check_ok{app="shop",env="test",host="deploy@web1",check="integrity"} 1`; !strings.Contains(string(text), want) {
		t.Errorf("textfile lacks %s:\n%s", want, text)
	}

	// Sick, the JSON lists the failure; a textfile that cannot be written
	// fails a check that passes otherwise.
	p.sick(t)
	rep, _ = p.check(t)
	if failed := rep.Failed(); len(failed) != 1 || failed[0].Kind != check.KindHealth {
		t.Errorf("failed checks of a sick host: %+v", failed)
	}
	os.Remove(p.marker)
	_, err = p.check(t, func(rc *run.Context) { rc.Env.Check.Prometheus = filepath.Join(p.Config, "stagecoach.prom") })
	if exitcode.Of(err) != exitcode.Failed || !strings.Contains(err.Error(), "write prometheus textfile") {
		t.Errorf("check with an unwritable textfile: %v", err)
	}
}

// These fail before any host is deployed to.
func TestCheckWithoutADeploy(t *testing.T) {
	t.Parallel()
	p := newProject(t, 5, "")
	rep, err := p.check(t)
	if exitcode.Of(err) != exitcode.Unhealthy || !strings.Contains(resultOf(t, rep, p.Names[0], "state").Message, "nothing deployed") {
		t.Errorf("check before the first deploy: %v", err)
	}
	// Nothing is live, so nothing is verified.
	for _, c := range rep.Checks {
		if c.Kind == check.KindIntegrity || c.Kind == check.KindService {
			t.Errorf("%s checked with nothing live", c.Check)
		}
	}

	for _, name := range p.Names {
		p.Dialer.Fail(name, errors.New("connection refused"))
	}
	_, err = p.check(t)
	if exitcode.Of(err) != exitcode.Unreachable || !strings.HasSuffix(err.Error(), "connect on deploy@web4 and 1 more") {
		t.Errorf("check of five unreachable hosts: %v", err)
	}

	if _, err := p.check(t, func(rc *run.Context) { rc.Env.Check.MinFreeDisk = "plenty" }); exitcode.Of(err) != exitcode.BadConfig || !strings.Contains(err.Error(), "min_free_disk") {
		t.Errorf("check with a bad min_free_disk: %v", err)
	}
}
