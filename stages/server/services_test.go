package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stagecoach/stagecoach/stages/config"
)

func TestRestartScripts(t *testing.T) {
	l := Layout{Root: "/srv/my app"}
	for _, tc := range []struct {
		name     string
		m        config.Services
		n        int
		contains []string
	}{
		{"compose", config.Services{Manager: "compose", Restart: []string{"app", "worker"}, File: "deploy/compose.yml"}, 1, []string{
			"cd '/srv/my app/releases/" + id1 + "'",
			"if docker compose version >/dev/null 2>&1; then set -- docker compose",
			"elif command -v docker-compose >/dev/null 2>&1; then set -- docker-compose",
			"neither docker compose nor docker-compose found",
			`"$@" -f deploy/compose.yml -p restaurant-app up -d --remove-orphans app worker`,
			". '/srv/my app/shared/.env'",
		}},
		{"compose all services", config.Services{Manager: "compose"}, 1, []string{`"$@" -p restaurant-app up -d --remove-orphans` + "\n"}},
		{"systemd", config.Services{Manager: "systemd", Restart: []string{"app.service", "it's.service"}}, 1, []string{
			`sudo="sudo -n"`, `$sudo systemctl restart -- app.service 'it'\''s.service'`,
		}},
		{"command", config.Services{Manager: "command", Restart: []string{"./bin/reload", "touch tmp/restart.txt"}}, 2, []string{
			"./bin/reload", "touch tmp/restart.txt", "STAGECOACH_RELEASE=" + id1,
		}},
		{"none", config.Services{Manager: "none"}, 0, nil},
		{"unset", config.Services{}, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmds, err := Restart(tc.m, l, id1, "Restaurant App")
			if err != nil {
				t.Fatal(err)
			}
			if len(cmds) != tc.n {
				t.Fatalf("%d commands, want %d", len(cmds), tc.n)
			}
			var all strings.Builder
			for _, c := range cmds {
				all.WriteString(c.Script)
			}
			for _, want := range tc.contains {
				if !strings.Contains(all.String(), want) {
					t.Errorf("script lacks %q:\n%s", want, all.String())
				}
			}
		})
	}
	if _, err := Restart(config.Services{Manager: "k8s"}, l, id1, "a"); err == nil || !strings.Contains(err.Error(), "unknown service manager") {
		t.Errorf("unknown manager: %v", err)
	}
	if _, err := Restart(config.Services{Manager: "systemd"}, l, id1, "a"); err == nil {
		t.Error("systemd without units accepted")
	}
	if _, err := Restart(config.Services{Manager: "none"}, l, "bad", "a"); err == nil {
		t.Error("bad id accepted")
	}
	stops, err := Stop(config.Services{Manager: "command", Stop: []string{"./bin/stop"}}, l, id1)
	if err != nil || len(stops) != 1 || !strings.HasSuffix(stops[0].Script, "./bin/stop\n") {
		t.Errorf("stop %v %v", stops, err)
	}
	if stops, _ := Stop(config.Services{Manager: "compose", Stop: []string{"x"}}, l, id1); stops != nil {
		t.Error("compose stop commands")
	}
}

// TestComposeDetection runs the compose restart script against fake
// docker binaries: v2 preferred, v1 as fallback, a clear error without.
func TestComposeDetection(t *testing.T) {
	l := newRoot(t)
	mustMkRelease(t, l, id1)
	m := config.Services{Manager: "compose", Restart: []string{"app"}}
	cmds, err := Restart(m, l, id1, "shop")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		fakes map[string]string
		want  string
	}{
		{"v2", map[string]string{"docker": `[ "$1" = compose ] || exit 1; echo "docker $*"`, "docker-compose": `echo "v1 $*"`}, "docker compose -p shop up -d --remove-orphans app"},
		{"v1", map[string]string{"docker": `exit 1`, "docker-compose": `echo "v1 $*"`}, "v1 -p shop up -d --remove-orphans app"},
		{"neither", map[string]string{}, "neither docker compose nor docker-compose found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bin := t.TempDir()
			for name, body := range tc.fakes {
				if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			cmd := cmds[0]
			path := bin + ":/usr/bin:/bin"
			if tc.name == "neither" {
				path = bin // hide any real docker
			}
			cmd.Script = "PATH=" + path + "\n" + cmd.Script
			res, err := run(t, cmd)
			got := string(res.Stdout) + string(res.Stderr)
			if !strings.Contains(got, tc.want) {
				t.Errorf("output %q, want %q (%v)", got, tc.want, err)
			}
			if (tc.name == "neither") != (err != nil) {
				t.Errorf("err %v", err)
			}
		})
	}
}

func TestStatus(t *testing.T) {
	l := Layout{Root: "/srv/app"}
	cmd, ok, err := Status(config.Services{Manager: "compose", File: "compose.yml"}, l, id1, "app")
	if err != nil || !ok || !strings.Contains(cmd.Script, `"$@" -f compose.yml -p app ps -a -q`) || !strings.Contains(cmd.Script, "docker inspect --format") {
		t.Errorf("compose status %v %v:\n%s", ok, err, cmd.Script)
	}
	cmd, ok, _ = Status(config.Services{Manager: "systemd", Restart: []string{"a.service"}}, l, id1, "app")
	if !ok || cmd.Script != "systemctl show -p Id -p ActiveState -p SubState -- a.service\n" {
		t.Errorf("systemd status %q", cmd.Script)
	}
	if _, ok, _ := Status(config.Services{Manager: "command"}, l, id1, "app"); ok {
		t.Error("command manager has a status")
	}

	st, err := ParseStatus("compose", []byte("app\trunning\thealthy\nworker\trunning\t\ndb\texited\t\nweb\trunning\tunhealthy\n"))
	if err != nil || len(st) != 4 {
		t.Fatalf("%v %v", st, err)
	}
	for i, want := range []bool{true, true, false, false} {
		if st[i].Healthy() != want {
			t.Errorf("%+v healthy = %v", st[i], !want)
		}
	}
	if _, err := ParseStatus("compose", []byte("garbage\n")); err == nil {
		t.Error("garbage accepted")
	}
	st, err = ParseStatus("systemd", []byte("Id=a.service\nActiveState=active\nSubState=running\n\nId=b.service\nActiveState=failed\nSubState=failed\n"))
	if err != nil || len(st) != 2 || !st[0].Healthy() || st[1].Healthy() || st[1].Name != "b.service" {
		t.Errorf("%+v %v", st, err)
	}
	if _, err := ParseStatus("none", nil); err == nil {
		t.Error("none has a status")
	}
	if ComposeProject("My App!") != "my-app" || ComposeProject("!!") != "app" {
		t.Error(ComposeProject("My App!"), ComposeProject("!!"))
	}
}
