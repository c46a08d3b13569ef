package check_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stagecoach/stagecoach/stages/check"
	"github.com/stagecoach/stagecoach/stages/pipeline/pipelinetest"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/run/runtest"
	"github.com/stagecoach/stagecoach/stages/server"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestCheckSlots: check names the live slot and whether it answers, a
// slot left running, current or the router file pointing elsewhere.
func TestCheckSlots(t *testing.T) {
	dir := t.TempDir()
	nginx, upstream := filepath.Join(dir, "nginx"), filepath.Join(dir, "shop-upstream.conf")
	if err := os.WriteFile(nginx, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	blue, green := freePort(t), freePort(t)
	e := runtest.New(t, runtest.Options{
		Health: "      - command: test \"$(cat ../../shared/slot-{port})\" = \"$STAGECOACH_RELEASE\"\n",
		Services: fmt.Sprintf(`    services:
      manager: command
      restart: ['echo "$STAGECOACH_RELEASE" > ../../shared/slot-{port}']
      stop: ['rm -f ../../shared/slot-{port}']
      slots: {ports: [%d, %d]}
      router: {nginx: {upstream: %s, binary: %s}}
      drain: 100ms
`, blue, green, upstream, nginx)})
	a := pipelinetest.Deploy(t, e)
	checkRouter := func() check.Result {
		t.Helper()
		rep, _ := check.Run(context.Background(), e.Open(t, run.Options{}))
		return resultOf(t, rep, e.Names[0], check.KindRouter)
	}
	res := checkRouter()
	if want := fmt.Sprintf("live: slot blue (port %d, release %s), answers", blue, a); res.Status != check.StatusOK || res.Message != want {
		t.Errorf("router check: %s %q, want ok %q", res.Status, res.Message, want)
	}

	l := server.Layout{Root: e.Roots[0]}
	keep(t, upstream)
	if err := os.WriteFile(upstream, []byte(fmt.Sprintf("upstream shop_backend {\n    server 127.0.0.1:%d;\n}\n", green)), 0o644); err != nil {
		t.Fatal(err)
	}
	res = checkRouter()
	if want := fmt.Sprintf("the router file %s is not the one Stagecoach wrote (edited by hand?): it sends traffic to port %d", upstream, green); res.Status != check.StatusFailed || !strings.Contains(res.Message, want) || !strings.Contains(res.Action, "Stagecoach owns") {
		t.Errorf("router file edited: %s %q (%s), want failed with %q", res.Status, res.Message, res.Action, want)
	}
	os.WriteFile(upstream, []byte(server.NginxUpstream(*e.Open(t, run.Options{}).Env.Services.Router.Nginx, server.SlotBlue, blue)), 0o644)

	keep(t, filepath.Join(e.Roots[0], "shared", fmt.Sprintf("slot-%d", blue)))
	os.Remove(filepath.Join(e.Roots[0], "shared", fmt.Sprintf("slot-%d", blue)))
	if res = checkRouter(); res.Status != check.StatusFailed || !strings.Contains(res.Message, "does not answer") {
		t.Errorf("live slot stopped: %s %q, want failed, does not answer", res.Status, res.Message)
	}

	// A deploy killed before its drain: the old slot is recorded as
	// possibly running.
	keep(t, l.RouterStatePath())
	data, _ := os.ReadFile(l.RouterStatePath())
	routed, _ := server.ParseRouted(append(data, "--- current\n--- router\n"...))
	st := routed.State
	st.Idle = &server.Slot{Name: server.SlotGreen, Port: green, Release: a}
	if err := os.WriteFile(l.RouterStatePath(), []byte(fmt.Sprintf(`{"live": {"slot": "blue", "port": %d, "release": %q}, "idle": {"slot": "green", "port": %d, "release": %q}, "router": %q}`, blue, a, green, a, st.Router)), 0o644); err != nil {
		t.Fatal(err)
	}
	if res = checkRouter(); !strings.Contains(res.Message, fmt.Sprintf("slot green (port %d, release %s) may still run", green, a)) {
		t.Errorf("slot left running: %s %q", res.Status, res.Message)
	}
}
