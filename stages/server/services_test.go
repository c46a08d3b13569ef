package server

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stagecoach/stagecoach/stages/config"
	"github.com/stagecoach/stagecoach/stages/remote"
)

// TestRestartScripts runs the restart commands against fake tools that log
// their arguments, in a root whose path needs quoting.
func TestRestartScripts(t *testing.T) {
	l := newRoot(t)
	mustMkRelease(t, l, id1)
	writeFile(t, l.EnvPath(), "APP_MODE='it'\\''s $x'\n")
	rel := l.ReleaseDir(id1)
	env := " in " + rel + " release=" + id1 + " root=" + l.Root + " mode=it's $x"
	for _, tc := range []struct {
		name  string
		m     config.Services
		uid   string
		calls string // what the fakes log, after the compose probe
		where string // where compose ran, if it did
	}{
		{"compose", config.Services{Manager: "compose", Restart: []string{"app", "worker"}, File: "deploy/my compose.yml"}, "1000",
			"docker [compose] [-f] [deploy/my compose.yml] [-p] [restaurant-app] [up] [-d] [--remove-orphans] [app] [worker]\n", env},
		{"compose all services", config.Services{Manager: "compose"}, "1000",
			"docker [compose] [-p] [restaurant-app] [up] [-d] [--remove-orphans]\n", env},
		{"systemd", config.Services{Manager: "systemd", Restart: []string{"app.service", "it's.service"}}, "1000",
			"id [-u]\nsudo [-n] [systemctl] [restart] [--] [app.service] [it's.service]\n", ""},
		{"systemd as root", config.Services{Manager: "systemd", Restart: []string{"app.service"}}, "0",
			"id [-u]\nsystemctl [restart] [--] [app.service]\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmds, err := Restart(tc.m, l, id1, "Restaurant App")
			if err != nil {
				t.Fatal(err)
			}
			if len(cmds) != 1 {
				t.Fatalf("%d commands, want 1", len(cmds))
			}
			// docker also says where it ran and with which environment.
			where := filepath.Join(t.TempDir(), "where")
			bin, log := fakeTools(t, map[string]string{"id": "echo " + tc.uid, "sudo": "", "systemctl": "",
				"docker": `echo " in $PWD release=$STAGECOACH_RELEASE root=$STAGECOACH_ROOT mode=$APP_MODE" >> ` + remote.Quote(where)})
			mustRun(t, withPath(cmds[0], bin+":/usr/bin:/bin"), nil)
			got := strings.TrimPrefix(calls(t, log), "docker [compose] [version]\n")
			if got != tc.calls {
				t.Errorf("calls:\n%s\nwant:\n%s", got, tc.calls)
			}
			if tc.where != "" {
				w, _ := os.ReadFile(where)
				if !strings.Contains(string(w), tc.where) {
					t.Errorf("compose ran%s\nwant%s", w, tc.where)
				}
			}
		})
	}

	// The command manager runs each command in the release, with its
	// environment; stop commands too.
	writeFile(t, filepath.Join(rel, "bin/reload"), "#!/bin/sh\necho \"reload $STAGECOACH_RELEASE $APP_MODE\"\n")
	if err := os.Chmod(filepath.Join(rel, "bin/reload"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmds, err := Restart(config.Services{Manager: "command", Restart: []string{"./bin/reload", "touch tmp/restart.txt"}}, l, id1, "a")
	if err != nil || len(cmds) != 2 {
		t.Fatalf("%d commands, %v", len(cmds), err)
	}
	if err := os.MkdirAll(filepath.Join(rel, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	if res := mustRun(t, cmds[0], nil); string(res.Stdout) != "reload "+id1+" it's $x\n" {
		t.Errorf("reload printed %q", res.Stdout)
	}
	mustRun(t, cmds[1], nil)
	if _, err := os.Stat(filepath.Join(rel, "tmp/restart.txt")); err != nil {
		t.Errorf("touch did not run in the release: %v", err)
	}
	stops, err := Stop(config.Services{Manager: "command", Stop: []string{"echo stopped in \"$PWD\"; exit 3"}}, l, id1)
	if err != nil || len(stops) != 1 {
		t.Fatalf("stop %v %v", stops, err)
	}
	if res, err := run(t, stops[0]); ExitCode(err) != 3 || string(res.Stdout) != "stopped in "+rel+"\n" {
		t.Errorf("stop: %q %v", res.Stdout, err)
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
	for _, m := range []string{"none", ""} {
		if cmds, err := Restart(config.Services{Manager: m}, l, id1, "a"); err != nil || len(cmds) != 0 {
			t.Errorf("manager %q: %v %v", m, cmds, err)
		}
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
	l := newRoot(t)
	mustMkRelease(t, l, id1)
	status, ok, err := Status(config.Services{Manager: "compose", File: "compose.yml"}, l, id1, "app")
	if err != nil || !ok {
		t.Fatalf("compose status %v %v", ok, err)
	}
	// A fake docker with two containers, then with none.
	for _, ids := range []string{"c1 c2", ""} {
		bin, log := fakeTools(t, map[string]string{"docker": `case $1 in
compose) [ "$2" = version ] || for c in ` + ids + `; do echo "$c"; done;;
inspect) printf 'app\trunning\thealthy\nworker\texited\t\n';;
esac`})
		res := mustRun(t, withPath(status.Cmd, bin+":/usr/bin:/bin"), nil)
		want := "docker [compose] [version]\ndocker [compose] [-f] [compose.yml] [-p] [app] [ps] [-a] [-q]\n"
		out := ""
		if ids != "" {
			want += "docker [inspect] [--format] [{{index .Config.Labels \"com.docker.compose.service\"}}\t{{.State.Status}}\t{{if .State.Health}}{{.State.Health.Status}}{{end}}] [c1] [c2]\n"
			out = "app\trunning\thealthy\nworker\texited\t\n"
		}
		if got := calls(t, log); got != want || string(res.Stdout) != out {
			t.Errorf("containers %q: calls\n%s\nwant\n%s\nstdout %q", ids, got, want, res.Stdout)
		}
	}
	status, ok, _ = Status(config.Services{Manager: "systemd", Restart: []string{"a.service", "it's.service"}}, l, id1, "app")
	if cmd := status.Cmd; !ok || cmd.Script != "systemctl show -p Id -p ActiveState -p SubState -- a.service 'it'\\''s.service'" {
		t.Errorf("systemd status %q", status.Cmd.Script)
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

// TestServiceStepNames: a step is named by its role and position, never by
// its script, which may be long and span lines.
func TestServiceStepNames(t *testing.T) {
	l := Layout{Root: "/srv"}
	script := "set -e\n./bin/migrate-cache\nkill -HUP \"$(cat tmp/pids/app.pid)\""
	for _, tc := range []struct {
		name string
		m    config.Services
		stop bool
		want []string
	}{
		{"command restart", config.Services{Manager: ManagerCommand, Restart: []string{script, "touch tmp/restart.txt"}},
			false, []string{"restart[0]", "restart[1]"}},
		{"command stop", config.Services{Manager: ManagerCommand, Restart: []string{"x"}, Stop: []string{script}},
			true, []string{"stop[0]"}},
		{"compose", config.Services{Manager: ManagerCompose, Restart: []string{"app"}}, false, []string{"restart compose services of " + id1}},
		{"systemd", config.Services{Manager: ManagerSystemd, Restart: []string{"app.service", "worker.service"}},
			false, []string{"restart app.service worker.service"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			build := Restart
			if tc.stop {
				build = func(m config.Services, l Layout, id, _ string) ([]remote.Command, error) { return Stop(m, l, id) }
			}
			cmds, err := build(tc.m, l, id1, "app")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range cmds {
				got = append(got, c.Desc)
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("descs %q, want %q", got, tc.want)
			}
		})
	}
}

// TestFailingMultiLineRestartNamesItsScriptOnce: the error of a failing
// restart script says which step failed and what it printed, and does not
// repeat the script.
func TestFailingMultiLineRestartNamesItsScriptOnce(t *testing.T) {
	l := newRoot(t)
	mustMkRelease(t, l, id1)
	script := "echo reloading workers\necho cannot reach the queue >&2\nexit 4"
	cmds, err := Restart(config.Services{Manager: ManagerCommand, Restart: []string{"true", script}}, l, id1, "a")
	if err != nil {
		t.Fatal(err)
	}
	_, err = remote.NewLocal().Run(context.Background(), cmds[1])
	if ExitCode(err) != 4 {
		t.Fatalf("error %v, want exit status 4", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "restart[1]") || !strings.Contains(msg, "cannot reach the queue") {
		t.Errorf("error %q lacks the step's name or its stderr", msg)
	}
	if n := strings.Count(msg, script); n > 1 {
		t.Errorf("the script appears %d times in %q", n, msg)
	}
	if strings.Contains(msg, "exit 4") {
		t.Errorf("error %q holds the script", msg)
	}
}
