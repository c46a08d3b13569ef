package swap_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stagecoach/stagecoach/stages/pipeline"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/run/runtest"
	"github.com/stagecoach/stagecoach/stages/server"
)

// slotted is a project whose services run in two slots on free ports:
// starting a slot writes the release into shared/slot-<port>, which the
// slot's check reads; stopping removes it; each start, stop and switch of
// the router is a line of shared/services.log. The public check fails
// while shared/public-fails exists.
type slotted struct {
	*runtest.Env
	blue, green int
	nginxLog    string // the fake nginx's log, with an nginx router
}

const slotHealth = `      - command: test "$(cat ../../shared/slot-{port})" = "$STAGECOACH_RELEASE"
      - command: test ! -f ../../shared/public-fails
`

// newSlotted builds the project; nginx makes its router an nginx (a fake
// one, logging its commands, whose -t fails while nginx-fails exists in
// the project's directory) instead of a command.
func newSlotted(t *testing.T, nginx bool) *slotted {
	t.Helper()
	p := &slotted{blue: freePort(t), green: freePort(t)}
	router := `{command: 'echo "route $PORT" >> ../../shared/services.log && echo {port} > ../../shared/routed'}`
	var fake, upstream string
	if nginx {
		dir := t.TempDir()
		fake, upstream, p.nginxLog = filepath.Join(dir, "nginx"), filepath.Join(dir, "conf.d", "shop-upstream.conf"), filepath.Join(dir, "nginx.log")
		script := fmt.Sprintf("#!/bin/sh\necho \"nginx $*\" >> %s\ncase \" $* \" in *\" -t \"*) if [ -f %s ]; then echo 'nginx: [emerg] unexpected \"}\"' >&2; exit 1; fi;; esac\n",
			p.nginxLog, filepath.Join(dir, "nginx-fails"))
		if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		router = fmt.Sprintf("{nginx: {upstream: %s, binary: %s, conf: /etc/nginx/nginx.conf}}", upstream, fake)
	}
	p.Env = runtest.New(t, runtest.Options{Health: slotHealth, Services: fmt.Sprintf(`    services:
      manager: command
      restart: ['echo "start $STAGECOACH_RELEASE $PORT" >> ../../shared/services.log && echo "$STAGECOACH_RELEASE" > ../../shared/slot-{port}']
      stop: ['echo "stop $STAGECOACH_RELEASE {port}" >> ../../shared/services.log && rm -f ../../shared/slot-{port}']
      slots: {ports: [%d, %d]}
      router: %s
      drain: 300ms
`, p.blue, p.green, router)})
	return p
}

// freePort is a loopback port nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// deploy commits a change and deploys it, returning the release and the
// deploy's error.
func (p *slotted) deploy(t *testing.T, version string) (string, error) {
	t.Helper()
	p.Write(t, "site/index.html", "<h1>"+version+"</h1>\n")
	p.Commit(t, version)
	r := pipeline.New(p.Open(t, run.Options{}))
	err := r.Deploy(context.Background())
	return r.Plan.Release, err
}

func (p *slotted) shared(name string) string { return filepath.Join(p.Roots[0], "shared", name) }

// log is services.log since its first skip lines, with the releases
// named by names and the ports by slot.
func (p *slotted) log(t *testing.T, skip int, names map[string]string) []string {
	t.Helper()
	lines := p.Services(t, 0)[skip:]
	pairs := []string{fmt.Sprint(p.blue), "blue", fmt.Sprint(p.green), "green"}
	for id, name := range names {
		pairs = append(pairs, id, name)
	}
	r := strings.NewReplacer(pairs...)
	for i := range lines {
		lines[i] = r.Replace(lines[i])
	}
	return lines
}

// state reads host 0's slots' state.
func (p *slotted) state(t *testing.T) server.RouterState {
	t.Helper()
	l := server.Layout{Root: p.Roots[0]}
	data, err := os.ReadFile(l.RouterStatePath())
	if err != nil {
		t.Fatal(err)
	}
	routed, err := server.ParseRouted(append(data, "--- current\n--- router\n"...))
	if err != nil {
		t.Fatal(err)
	}
	return routed.State
}

func (p *slotted) wantLive(t *testing.T, slot, release string, idle bool) {
	t.Helper()
	st := p.state(t)
	if st.Live == nil || st.Live.Name != slot || st.Live.Release != release || (st.Idle != nil) != idle || st.Switching {
		t.Errorf("slots' state: live %+v, idle %+v, switching %v; want %s running %s, idle slot recorded %v", st.Live, st.Idle, st.Switching, slot, release, idle)
	}
	if got := p.Live(t, 0); got != release {
		t.Errorf("current -> %s, want %s", got, release)
	}
}

func wantLog(t *testing.T, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("services:\n  %q\nwant\n  %q", got, want)
	}
}

// TestSlotsDeploys: each deploy starts the release in the idle slot,
// switches the router to it after its own check passed, then stops the
// old slot; the slots alternate.
func TestSlotsDeploys(t *testing.T) {
	p := newSlotted(t, false)
	a, err := p.deploy(t, "a")
	if err != nil {
		t.Fatalf("deploy a: %v\n%s", err, p.Log)
	}
	wantLog(t, p.log(t, 0, map[string]string{a: "A"}), "start A blue", "route blue")
	p.wantLive(t, server.SlotBlue, a, false)

	mark := len(p.Fake(0).Calls())
	b, err := p.deploy(t, "b")
	if err != nil {
		t.Fatalf("deploy b: %v\n%s", err, p.Log)
	}
	wantLog(t, p.log(t, 2, map[string]string{a: "A", b: "B"}), "start B green", "route green", "stop A blue")
	p.wantLive(t, server.SlotGreen, b, false)
	var acts []string
	for _, d := range p.CallsSince(0, mark) {
		if strings.Contains(d, "port") || strings.Contains(d, "slots") || strings.Contains(d, "current") || d == "health check" || d == "start" || d == "stop" {
			acts = append(acts, strings.NewReplacer(fmt.Sprint(p.blue), "blue", fmt.Sprint(p.green), "green").Replace(d))
		}
	}
	want := []string{"read the slots' state", "check that port green is free", "record the slots", "start",
		"health check", "record the slots", "switch the router to port green", "switch current to " + b, "record the slots",
		"health check", "drain port blue", "stop", "record the slots", "health check"}
	if !slices.Equal(acts, want) {
		t.Errorf("activation:\n  %q\nwant\n  %q", acts, want)
	}

	c, err := p.deploy(t, "c")
	if err != nil {
		t.Fatalf("deploy c: %v\n%s", err, p.Log)
	}
	wantLog(t, p.log(t, 5, map[string]string{b: "B", c: "C"}), "start C blue", "route blue", "stop B green")
	p.wantLive(t, server.SlotBlue, c, false)
}

// TestSlotNeverHealthy: a release whose slot fails its check gets no
// traffic (the router never switches), is stopped, and the live slot
// serves on.
func TestSlotNeverHealthy(t *testing.T) {
	p := newSlotted(t, false)
	a, _ := p.deploy(t, "a")
	p.Fake(0).On("health check").Exit(1, "connection refused")
	b, err := p.deploy(t, "b")
	if err == nil || !strings.Contains(err.Error(), "never became healthy in slot green") || !strings.Contains(err.Error(), "it got no traffic and was stopped") {
		t.Fatalf("deploy b: %v, want the slot never healthy", err)
	}
	wantLog(t, p.log(t, 2, map[string]string{a: "A", b: "B"}), "start B green", "stop B green")
	p.wantLive(t, server.SlotBlue, a, false)
}

// TestSlotPortTaken: a foreign process on the idle slot's port is a clear
// error before anything changes.
func TestSlotPortTaken(t *testing.T) {
	p := newSlotted(t, false)
	a, _ := p.deploy(t, "a")
	before, _ := os.ReadFile(server.Layout{Root: p.Roots[0]}.RouterStatePath())
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p.green))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = p.deploy(t, "b")
	var taken *server.PortTakenError
	if !errors.As(err, &taken) || taken.Port != p.green {
		t.Fatalf("deploy b: %v, want the port %d taken", err, p.green)
	}
	if want := fmt.Sprintf("port %d of the idle slot is taken by a process this deploy did not start", p.green); !strings.Contains(err.Error(), want) {
		t.Errorf("error %q lacks %q", err, want)
	}
	wantLog(t, p.log(t, 0, map[string]string{a: "A"}), "start A blue", "route blue")
	after, _ := os.ReadFile(server.Layout{Root: p.Roots[0]}.RouterStatePath())
	if string(before) != string(after) {
		t.Errorf("the slots' state changed:\n%s\nwas\n%s", after, before)
	}
	p.wantLive(t, server.SlotBlue, a, false)
}

// TestSlotPublicCheckFails: when the public check fails after the switch,
// the router and current go back to the old slot, which still ran, and
// the new one stops.
func TestSlotPublicCheckFails(t *testing.T) {
	p := newSlotted(t, false)
	a, _ := p.deploy(t, "a")
	if err := os.WriteFile(p.shared("public-fails"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := p.deploy(t, "b")
	if err == nil || !strings.Contains(err.Error(), "failed its public health checks after the switch; the router and current are back on slot blue") {
		t.Fatalf("deploy b: %v, want switched back", err)
	}
	wantLog(t, p.log(t, 2, map[string]string{a: "A", b: "B"}), "start B green", "route green", "route blue", "stop B green")
	p.wantLive(t, server.SlotBlue, a, false)
}

// TestSlotNginx: the nginx router's upstream file names the live slot; a
// configuration nginx -t refuses puts the old file back, and nothing
// switches.
func TestSlotNginx(t *testing.T) {
	p := newSlotted(t, true)
	a, err := p.deploy(t, "a")
	if err != nil {
		t.Fatalf("deploy a: %v\n%s", err, p.Log)
	}
	upstream := filepath.Join(filepath.Dir(p.nginxLog), "conf.d", "shop-upstream.conf")
	first := runtest.ReadFile(t, upstream)
	if want := fmt.Sprintf("upstream shop_backend {\n    server 127.0.0.1:%d;\n}\n", p.blue); !strings.HasSuffix(first, want) {
		t.Errorf("upstream file:\n%s\nwant it to end with\n%s", first, want)
	}
	if got, want := runtest.ReadFile(t, p.nginxLog), "nginx -c /etc/nginx/nginx.conf -t\nnginx -c /etc/nginx/nginx.conf -s reload\n"; got != want {
		t.Errorf("nginx ran:\n%s\nwant\n%s", got, want)
	}
	if st := p.state(t); st.Router != first {
		t.Errorf("state records the router file %q, want %q", st.Router, first)
	}

	if err := os.WriteFile(filepath.Join(filepath.Dir(p.nginxLog), "nginx-fails"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := p.deploy(t, "b")
	var refused *server.NginxTestError
	if !errors.As(err, &refused) || !strings.Contains(err.Error(), `nginx: [emerg] unexpected "}"`) {
		t.Fatalf("deploy b: %v, want nginx -t refused", err)
	}
	if got := runtest.ReadFile(t, upstream); got != first {
		t.Errorf("upstream file after the refused test:\n%s\nwant the old one back:\n%s", got, first)
	}
	if strings.Contains(runtest.ReadFile(t, p.nginxLog), "reload\nnginx -c /etc/nginx/nginx.conf -t\nnginx -c /etc/nginx/nginx.conf -s reload") {
		t.Errorf("nginx reloaded after the refused test")
	}
	wantLog(t, p.log(t, 1, map[string]string{a: "A", b: "B"}), "start B green", "stop B green")
	p.wantLive(t, server.SlotBlue, a, false)
	if entries, _ := os.ReadDir(filepath.Dir(upstream)); len(entries) != 1 {
		t.Errorf("files beside the upstream file: %v", entries)
	}
}

// TestSlotKilledBeforeDrain: a deploy that ends between the switch and
// the old slot's stop leaves the new slot live and the old one recorded
// as running; the next deploy stops it before it reuses its port, and a
// rollback meanwhile only switches back to it.
func TestSlotKilledBeforeDrain(t *testing.T) {
	p := newSlotted(t, false)
	a, _ := p.deploy(t, "a")
	p.Fake(0).On("drain port").Times(1).Err(errors.New("killed"))
	b, err := p.deploy(t, "b")
	if err != nil {
		t.Fatalf("deploy b: %v\n%s", err, p.Log)
	}
	names := map[string]string{a: "A", b: "B"}
	wantLog(t, p.log(t, 2, names), "start B green", "route green")
	p.wantLive(t, server.SlotGreen, b, true)
	if idle := p.state(t).Idle; idle.Name != server.SlotBlue || idle.Release != a {
		t.Errorf("idle slot recorded %+v, want blue running %s", idle, a)
	}

	// The rollback finds A still running in blue: it switches back at
	// once, without starting anything, then stops green.
	r := pipeline.New(p.Open(t, run.Options{}))
	release, err := r.Hold(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Rollback(context.Background()); err != nil {
		t.Fatalf("rollback: %v\n%s", err, p.Log)
	}
	release()
	r.Close()
	wantLog(t, p.log(t, 4, names), "route blue", "stop B green")
	p.wantLive(t, server.SlotBlue, a, false)

	// Killed again before the drain, then a new deploy: it stops what
	// the idle slot still runs before it starts there.
	p.Fake(0).On("drain port").Times(1).Err(errors.New("killed"))
	c, err := p.deploy(t, "c")
	if err != nil {
		t.Fatalf("deploy c: %v\n%s", err, p.Log)
	}
	names[c] = "C"
	wantLog(t, p.log(t, 6, names), "start C green", "route green")
	d, err := p.deploy(t, "d")
	if err != nil {
		t.Fatalf("deploy d: %v\n%s", err, p.Log)
	}
	names[d] = "D"
	wantLog(t, p.log(t, 8, names), "stop A blue", "start D blue", "route blue", "stop C green")
	p.wantLive(t, server.SlotBlue, d, false)
}
