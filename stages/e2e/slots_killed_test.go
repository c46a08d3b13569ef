package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/check"
	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/fleet"
	"github.com/stagecoach/stagecoach/stages/pipeline"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/testenv"
)

// TestSlotsKilledWhileDraining kills a deploy with SIGKILL, over the real
// sshd and nginx and under a load, after it switched the router and
// current to the new slot, while the old slot drains (a connection held
// open to it keeps the drain waiting). check then reports one live slot,
// the router and state agreeing on it and the slot answering, and the old
// slot as possibly still running; the next deploy stops that one first,
// goes live, and no request fails throughout.
func TestSlotsKilledWhileDraining(t *testing.T) {
	if fleet.BootID() == "" {
		t.Skip("no boot id on this system: the killed deploy's lock is never broken automatically")
	}
	s := newSlotSite(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	first, err := s.deploy(t, ctx, 0)
	if err != nil {
		t.Fatalf("first deploy: %v", err)
	}
	s.wantLive(t, first, server.SlotBlue)
	load := s.load(ctx)
	defer load.Stop()
	waitRequests(t, load, 100)

	// An idle connection to the old slot: the drain waits for it.
	held, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", s.blue))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()

	s.p.Write("backend/internal/api/deploy.go", "package api\n\n// deployNumber changes with every test deploy.\nconst deployNumber = 1\n")
	s.p.Commit("backend change 1, killed while draining")
	out := &testenv.SyncBuffer{}
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledDeployProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "STAGECOACH_E2E_KILLED_DEPLOY_PROCESS=1", "STAGECOACH_CONFIG="+s.p.Config, "STAGECOACH_ENV=test", "MAGEFILE_VERBOSE=1")
	cmd.Dir = s.p.Dir
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	var killed server.Slot
	waitFor(t, "the deploy's switch to slot green", func() bool {
		data, err := os.ReadFile(server.Layout{Root: s.root}.RouterStatePath())
		if err != nil {
			return false
		}
		routed, err := server.ParseRouted(append(data, "--- current\n--- router\n"...))
		st := routed.State
		if err != nil || st.Switching || st.Live == nil || st.Live.Name != server.SlotGreen || st.Idle == nil {
			return false
		}
		killed = *st.Live
		return true
	})
	// The public check through nginx, then the drain, which the held
	// connection keeps waiting for up to services.drain (10s).
	time.Sleep(time.Second)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err == nil || cmd.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the deploy process ended with %v, want killed\n%s", err, out)
	}
	s.mu.Lock()
	s.releases[killed.Release] = true
	s.mu.Unlock()

	st, port := s.routed(t)
	if st.Live == nil || *st.Live != killed || st.Idle == nil || st.Idle.Name != server.SlotBlue || port != s.green || live(t, s.root) != killed.Release {
		t.Fatalf("after the kill: live %+v, idle %+v, router file on port %d, current %s; want %s live, blue recorded as idle", st.Live, st.Idle, port, live(t, s.root), killed)
	}

	r, cout := openRun(t, s.p, pipeline.Options{})
	rep, err := r.Check(ctx)
	r.Close()
	if code := exitcode.Of(err); code != exitcode.OK {
		t.Errorf("check after the kill: exit %d: %v\n%s", code, err, cout)
	}
	for _, c := range rep.Checks {
		if c.Check != check.KindRouter {
			continue
		}
		want := fmt.Sprintf("live: %s, answers", killed)
		if c.Status == check.StatusFailed || !strings.HasPrefix(c.Message, want) || !strings.Contains(c.Message, "slot blue") || !strings.Contains(c.Message, "may still run") {
			t.Errorf("router check after the kill: %s %q; want %q and slot blue as may still run", c.Status, c.Message, want)
		}
	}
	held.Close()

	next, err := s.deploy(t, ctx, 2)
	if err != nil {
		t.Fatalf("the deploy after the killed one: %v", err)
	}
	s.wantLive(t, next, server.SlotBlue)
	after, _ := load.Progress()
	waitRequests(t, load, after+100)
	lrep := load.Stop()
	t.Logf("load: %s", lrep)
	if lrep.Failures != 0 {
		t.Errorf("%d failed requests around the killed deploy:\n%s", lrep.Failures, strings.Join(lrep.FailureSamples, "\n"))
	}
	s.wantVersions(t, lrep)
}
