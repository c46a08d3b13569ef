package server

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/config"
	"github.com/stagecoach/stagecoach/stages/remote"
)

const (
	relA = "20261128T122605Z-aaaaaaa"
	relB = "20261128T122705Z-bbbbbbb"
)

func TestRoutedResolve(t *testing.T) {
	blue := &Slot{Name: SlotBlue, Port: 8081, Release: relA}
	green := &Slot{Name: SlotGreen, Port: 8082, Release: relB}
	greenA := &Slot{Name: SlotGreen, Port: 8082, Release: relA}
	nginxAt := func(port int) string { return NginxUpstream(config.NginxRouter{Name: "shop_backend"}, "x", port) }
	tests := []struct {
		name       string
		routed     Routed
		live, idle *Slot
	}{
		{"settled", Routed{State: RouterState{Live: blue, Idle: green}, Current: relA}, blue, green},
		{"killed before current switched", Routed{State: RouterState{Live: blue, Idle: green, Switching: true}, Current: relA}, blue, green},
		{"killed after current switched", Routed{State: RouterState{Live: blue, Idle: green, Switching: true}, Current: relB}, green, blue},
		{"first switch, done", Routed{State: RouterState{Idle: green, Switching: true}, Current: relB}, green, nil},
		{"first switch, not done", Routed{State: RouterState{Idle: green, Switching: true}}, nil, green},
		// The same release in both slots (a restart): only the router file tells.
		{"nginx switched", Routed{State: RouterState{Live: blue, Idle: greenA, Switching: true}, Current: relA, File: nginxAt(8082)}, greenA, blue},
		{"nginx not switched", Routed{State: RouterState{Live: blue, Idle: greenA, Switching: true}, Current: relA, File: nginxAt(8081)}, blue, greenA},
		{"nginx file says more than current", Routed{State: RouterState{Live: blue, Idle: green, Switching: true}, Current: relB, File: nginxAt(8081)}, blue, green},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := tt.routed.Resolve()
			if st.Switching || fmt.Sprint(st.Live) != fmt.Sprint(tt.live) || fmt.Sprint(st.Idle) != fmt.Sprint(tt.idle) {
				t.Errorf("Resolve() = live %v, idle %v, switching %v; want live %v, idle %v", st.Live, st.Idle, st.Switching, tt.live, tt.idle)
			}
		})
	}
}

func TestRouterStateRoundTrip(t *testing.T) {
	l := newRoot(t)
	empty, err := ReadRouter(l, nil).Decode(mustRun(t, ReadRouter(l, nil).Cmd, nil), nil)
	if err != nil || empty.State.Live != nil || empty.Current != "" {
		t.Fatalf("no state yet: %+v, %v", empty, err)
	}
	st := RouterState{Live: &Slot{Name: SlotGreen, Port: 8082, Release: relB}, Switching: true, Router: "upstream x {}\n"}
	mustRun(t, WriteRouterState(l, st), nil)
	mustMkRelease(t, l, relB)
	mustRun(t, mustCmd(Switch(l, relB)), nil)
	file := l.Root + "/upstream.conf"
	writeFile(t, file, "upstream shop {\n    server 127.0.0.1:8082;\n}\n")
	r := &config.Router{Nginx: &config.NginxRouter{Upstream: file}}
	got, err := ReadRouter(l, r).Decode(mustRun(t, ReadRouter(l, r).Cmd, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if *got.State.Live != *st.Live || !got.State.Switching || got.State.Router != st.Router || got.Current != relB || !strings.Contains(got.File, "8082") {
		t.Errorf("read back %+v", got)
	}
	if port, ok := got.FilePort(); !ok || port != 8082 {
		t.Errorf("FilePort() = %d, %v", port, ok)
	}
}

func TestPortFree(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	o := PortFree(port)
	res, rerr := run(t, o.Cmd)
	_, err = o.Decode(res, rerr)
	var taken *PortTakenError
	if !errors.As(err, &taken) || taken.Port != port {
		t.Fatalf("PortFree(%d) with a listener: %v, want *PortTakenError", port, err)
	}
	ln.Close()
	res, rerr = run(t, o.Cmd)
	if _, err := o.Decode(res, rerr); err != nil {
		t.Errorf("PortFree(%d) once free: %v", port, err)
	}
}

func TestDrainEndsWhenNoConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	if got := string(mustRun(t, Drain(port, 5*time.Second, 300*time.Millisecond), nil).Stdout); got != fmt.Sprintf("port %d drained after 200 ms\n", port) {
		t.Errorf("drain with no connection: %q", got)
	}
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := string(mustRun(t, Drain(port, 200*time.Millisecond, time.Second), nil).Stdout); !strings.Contains(got, "connections still open after the drain of 200 ms") {
		t.Errorf("drain with a connection open: %q", got)
	}
}

// TestSlotCommands: a slot's commands run in the release with PORT
// exported over shared/.env's and {port} replaced.
func TestSlotCommands(t *testing.T) {
	l := newRoot(t)
	mustMkRelease(t, l, relA)
	writeFile(t, l.EnvPath(), "PORT=1\n")
	svc := config.Services{Restart: []string{`echo "start {port} $PORT $STAGECOACH_RELEASE $(basename "$PWD")"`}, Stop: []string{"echo stop {port}"}}
	starts, err := SlotStart(svc, l, "shop", Slot{Name: SlotGreen, Port: 8082, Release: relA})
	if err != nil || len(starts) != 1 || starts[0].Desc != "start[0] on port 8082" {
		t.Fatalf("SlotStart: %+v, %v", starts, err)
	}
	if got, want := string(mustRun(t, starts[0], nil).Stdout), "start 8082 8082 "+relA+" "+relA+"\n"; got != want {
		t.Errorf("start printed %q, want %q", got, want)
	}
	stops, err := SlotStop(svc, l, "shop", Slot{Name: SlotBlue, Port: 8081, Release: relA})
	if err != nil || string(mustRun(t, stops[0], nil).Stdout) != "stop 8081\n" {
		t.Errorf("SlotStop: %+v, %v", stops, err)
	}
	if _, err := SlotStart(svc, l, "shop", Slot{Port: 8082, Release: "../x"}); err == nil {
		t.Error("SlotStart took a bad release id")
	}
}

func TestIdleSlot(t *testing.T) {
	svc := config.Services{Slots: &config.Slots{Ports: []int{8081, 8082}}}
	for _, tt := range []struct {
		live *Slot
		name string
		port int
	}{{nil, SlotBlue, 8081}, {&Slot{Name: SlotBlue}, SlotGreen, 8082}, {&Slot{Name: SlotGreen}, SlotBlue, 8081}} {
		if name, port := IdleSlot(svc, RouterState{Live: tt.live}); name != tt.name || port != tt.port {
			t.Errorf("IdleSlot(live %v) = %s %d, want %s %d", tt.live, name, port, tt.name, tt.port)
		}
	}
}

func TestNginxSwitchArgv(t *testing.T) {
	n := config.NginxRouter{Upstream: "/etc/nginx/conf.d/shop-upstream.conf", Name: "shop_backend", Binary: "/usr/sbin/nginx", Prefix: "/srv/nginx/", Conf: "/srv/nginx/nginx.conf"}
	if got, want := strings.Join(nginxArgv(n), " "), "/usr/sbin/nginx -p /srv/nginx/ -c /srv/nginx/nginx.conf"; got != want {
		t.Errorf("nginx argv %q, want %q", got, want)
	}
	want := "# Written by Stagecoach at each switch; edits are overwritten.\n# Live slot: green.\nupstream shop_backend {\n    server 127.0.0.1:8082;\n}\n"
	if got := NginxUpstream(n, SlotGreen, 8082); got != want {
		t.Errorf("NginxUpstream:\n%s\nwant\n%s", got, want)
	}
}

// TestSlotManagerCommands: the exact commands that start and stop a slot
// under systemd (template units) and compose (a project per slot).
func TestSlotManagerCommands(t *testing.T) {
	l := Layout{Root: "/srv/shop"}
	green := Slot{Name: SlotGreen, Port: 8082, Release: relB}
	inRelease := func(cmd string) string {
		return "exec " + remote.Join(runInScript.argv(l.ReleaseDir(relB), l.EnvPath(), relB, l.Root, "/bin/sh", "-c", withPortScript.src, withPortScript.name, "8082", cmd)...)
	}
	tests := []struct {
		name        string
		svc         config.Services
		start, stop []string // desc: script
	}{{
		name:  "systemd template",
		svc:   config.Services{Manager: ManagerSystemd, Restart: []string{"shop@"}},
		start: []string{"start shop@8082: exec " + systemctlScript.line("start", "shop@8082")},
		stop:  []string{"stop shop@8082: exec " + systemctlScript.line("stop", "shop@8082")},
	}, {
		name:  "systemd units with suffix and {port}",
		svc:   config.Services{Manager: ManagerSystemd, Restart: []string{"shop@.service", "worker@{port}.service"}},
		start: []string{"start shop@8082.service worker@8082.service: exec " + systemctlScript.line("start", "shop@8082.service", "worker@8082.service")},
		stop:  []string{"stop shop@8082.service worker@8082.service: exec " + systemctlScript.line("stop", "shop@8082.service", "worker@8082.service")},
	}, {
		name:  "compose project per slot",
		svc:   config.Services{Manager: ManagerCompose, File: "compose.yaml", Restart: []string{"web"}},
		start: []string{"compose up shop-green on port 8082: " + inRelease(composeScript.line("up", "compose.yaml", "shop-green", "web"))},
		stop:  []string{"compose down shop-green on port 8082: " + inRelease(composeScript.line("down", "compose.yaml", "shop-green"))},
	}, {
		name:  "command",
		svc:   config.Services{Manager: ManagerCommand, Restart: []string{"./server -addr :{port} &"}, Stop: []string{"kill $(cat {port}.pid)"}},
		start: []string{"start[0] on port 8082: " + inRelease("./server -addr :8082 &")},
		stop:  []string{"stop[0] on port 8082: " + inRelease("kill $(cat 8082.pid)")},
	}}
	describe := func(cmds []remote.Command) []string {
		var out []string
		for _, c := range cmds {
			out = append(out, c.Desc+": "+c.Script)
		}
		return out
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start, err := SlotStart(tt.svc, l, "Shop", green)
			if err != nil || !slices.Equal(describe(start), tt.start) {
				t.Errorf("SlotStart:\n  %q (%v)\nwant\n  %q", describe(start), err, tt.start)
			}
			stop, err := SlotStop(tt.svc, l, "Shop", green)
			if err != nil || !slices.Equal(describe(stop), tt.stop) {
				t.Errorf("SlotStop:\n  %q (%v)\nwant\n  %q", describe(stop), err, tt.stop)
			}
		})
	}
}
