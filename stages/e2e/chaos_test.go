package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/chaos"
	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/fleet"
	"github.com/stagecoach/stagecoach/stages/pipeline"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/targets"
	"github.com/stagecoach/stagecoach/stages/testenv"
)

// The real-server faults TestChaosRealServers strikes at a random moment
// of a deploy.
const (
	killClient = iota // kill -9 of the deploying process
	killSSHD          // sshd's connection processes killed, and what they run
	fillDisk          // the deploy root's tmpfs filled up
	killPlugin        // a plugin's process killed mid-hook
	nRealFaults
)

var realFaultNames = [...]string{"kill -9 client", "kill sshd", "fill disk", "kill plugin"}

// TestChaosRealServers deploys the example app over a real sshd to a root
// on a small tmpfs, STAGECOACH_CHAOS_E2E_RUNS times (default 5), each
// deploy struck at a random moment by one fault: the client killed with
// SIGKILL, sshd's connection processes killed, the disk filled, a plugin
// killed. After each it reads the root directly: current names a complete
// release matching its manifest, the deploy's exit code agrees with it, no
// lock is left but a killed client's; then a deploy without faults must go
// live, take over what a killed client left, leave no lock, staging or
// upload behind, and every reservation made so far must still be in the
// database. STAGECOACH_CHAOS_SEED picks the faults (default 1).
func TestChaosRealServers(t *testing.T) {
	t.Parallel()
	if fleet.BootID() == "" {
		t.Skip("no boot id on this system: a killed client's lock is never broken automatically")
	}
	runs, seed := 5, uint64(1)
	if s := os.Getenv("STAGECOACH_CHAOS_E2E_RUNS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("STAGECOACH_CHAOS_E2E_RUNS=%q: want a number of runs", s)
		}
		runs = n
	}
	if s := os.Getenv("STAGECOACH_CHAOS_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("STAGECOACH_CHAOS_SEED=%q: want a number", s)
		}
		seed = n
	}
	t.Logf("seed %d, %d runs (STAGECOACH_CHAOS_SEED, STAGECOACH_CHAOS_E2E_RUNS)", seed, runs)
	rng := rand.New(rand.NewPCG(seed, 0xe2e))

	mnt := smallDisk(t, "256m")
	host := testenv.StartSSHD(t)
	p := testenv.NewProject(t, testenv.ProjectOptions{Hosts: []*testenv.Host{host}, Root: filepath.Join(mnt, "srv")})
	pluginModule(t, p)
	p.Commit("module")
	plugin := filepath.Join(p.Dir, "plugins/bin/testplugin")
	build := exec.Command("go", "build", "-o", plugin, "./plugins/internal/testplugins/testplugin")
	build.Dir = testenv.RepoRoot(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build test plugin: %v\n%s", err, out)
	}
	base := readFile(t, p.Config)
	mustDeploy(t, p)
	guests := []string{reserve(t, p.Port, "Chaos Guest 0")}
	// How long a deploy takes here: the faults strike within it.
	changeFrontend(t, p, "timed")
	start := time.Now()
	mustDeploy(t, p)
	span := time.Since(start)

	counts := map[string]int{}
	for i := range runs {
		fault := rng.IntN(nRealFaults)
		at := time.Duration(rng.Int64N(int64(span)))
		name := realFaultNames[fault]
		counts[name]++
		cfg := base
		if fault == killPlugin {
			// A plugin that hangs until killed, before or after the swap.
			hook := [...]string{"before-swap", "after-swap"}[rng.IntN(2)]
			cfg += "plugins:\n  - name: gate\n    path: plugins/bin/testplugin\n    at: " + hook + "\n    config: { mode: hang }\n"
			name += " " + hook
		}
		p.Write("stagecoach.yml", cfg)
		changeFrontend(t, p, fmt.Sprintf("chaos run %d", i))
		before := verifyLive(t, p.Root)
		what := fmt.Sprintf("run %d (seed %d): %s after %v", i, seed, name, at.Round(time.Millisecond))

		var err error
		var log, release string
		killed := false
		switch fault {
		case killClient:
			var code int
			killed, code, log = deployKilled(t, p, at)
			switch {
			case killed:
				err = errors.New("killed")
			case code != exitcode.OK:
				// Done before the kill: judged by its own exit code.
				err = exitcode.With(code, errors.New("ended before the kill"))
			}
		default:
			strike := func() {}
			switch fault {
			case killSSHD:
				strike = host.KillConnections
			case fillDisk:
				strike = func() { fillUp(filepath.Join(mnt, "filler")) }
			case killPlugin:
				strike = func() { killProcesses(plugin) }
			}
			struck := make(chan struct{})
			timer := time.AfterFunc(at, func() { strike(); close(struck) })
			if fault == killPlugin {
				// The plugin hangs: it is killed once it runs.
				if timer.Stop() {
					close(struck)
				}
				go func() {
					for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
						if killProcesses(plugin) > 0 {
							return
						}
					}
				}()
			}
			res := deployWith(t, p, pipeline.Options{})
			if timer.Stop() {
				close(struck)
			}
			// A strike under way (the disk filling) ends before the
			// cleanup below, or it would go on filling after it.
			<-struck
			err, log = res.err, res.log
			if res.run.Plan != nil {
				release = res.run.Plan.Release
			}
		}
		os.Remove(filepath.Join(mnt, "filler"))
		t.Logf("%s: exit %d %v", what, exitcode.Of(err), err)

		s := inspectRoot(t, p.Root)
		if s.Current == "" || s.Intact != nil {
			t.Fatalf("%s: current %q is not a complete release: %v\n%s", what, s.Current, s.Intact, log)
		}
		if fault != killClient {
			switch code := exitcode.Of(err); code {
			case exitcode.OK:
				if s.Current != release {
					t.Fatalf("%s: the deploy succeeded, current is %s, want %s\n%s", what, s.Current, release, log)
				}
			case exitcode.Failed, exitcode.Unreachable, exitcode.RolledBack:
				if s.Current != before {
					t.Fatalf("%s: exit %d, yet current moved from %s to %s\n%s", what, code, before, s.Current, log)
				}
			case exitcode.RollbackFailed:
			default:
				t.Fatalf("%s: exit %d: %v\n%s", what, code, err, log)
			}
			if s.Locked {
				t.Fatalf("%s: the lock is left after a deploy that was not killed\n%s", what, log)
			}
		} else if !killed && exitcode.Of(err) != exitcode.OK && s.Current != before {
			// A deploy that ended by itself before the kill and failed
			// must have left current where it was; one that succeeded
			// moved it to a complete release, checked above.
			t.Fatalf("%s: the deploy ended before the kill with exit %d, yet current moved from %s to %s", what, exitcode.Of(err), before, s.Current)
		}

		// The next deploy, without faults, takes over.
		p.Write("stagecoach.yml", base)
		changeFrontend(t, p, fmt.Sprintf("after chaos run %d", i))
		next := mustDeploy(t, p)
		s = inspectRoot(t, p.Root)
		if s.Current != next.run.Plan.Release || s.Intact != nil {
			t.Fatalf("%s: after the next deploy current is %s (%v), want %s", what, s.Current, s.Intact, next.run.Plan.Release)
		}
		if s.Locked || len(s.Leftovers) > 0 {
			t.Fatalf("%s: the next deploy left the lock %v, and %q\n%s", what, s.Locked, s.Leftovers, next.log)
		}
		mustHaveReservations(t, p, p.Root, guests...)
		guests = append(guests, reserve(t, p.Port, fmt.Sprintf("Chaos Guest %d", i+1)))
	}
	t.Logf("%d runs: %v", runs, counts)
}

// inspectRoot reads the deploy root on the server directly.
func inspectRoot(t *testing.T, root string) *chaos.Snapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := chaos.Inspect(ctx, root, "shared/data/restaurant.sqlite3", server.VerifySpec{Shared: sharedPaths, AssetsDir: assetsDir})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// deployKilled runs a deploy in a process of its own and kills it with
// SIGKILL after at; killed is false when it ended first.
func deployKilled(t *testing.T, p *testenv.Project, at time.Duration) (killed bool, code int, log string) {
	t.Helper()
	out := &testenv.SyncBuffer{}
	cmd := exec.Command(os.Args[0], "-test.run=^TestChaosDeployProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "STAGECOACH_E2E_CHAOS_DEPLOY_PROCESS=1", "STAGECOACH_CONFIG="+p.Config, "STAGECOACH_ENV=test")
	cmd.Dir = p.Dir
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
		return false, cmd.ProcessState.ExitCode(), out.String()
	case <-time.After(at):
	}
	// The whole group: the builds it started die with it, as with a
	// terminal closed.
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-done
	return true, -1, out.String()
}

// TestChaosDeployProcess is the deploying process TestChaosRealServers
// kills. It does nothing in a normal test run.
func TestChaosDeployProcess(t *testing.T) {
	if os.Getenv("STAGECOACH_E2E_CHAOS_DEPLOY_PROCESS") == "" {
		t.Skip("run by TestChaosRealServers")
	}
	err := targets.Deploy(context.Background(), nil, nil, nil, nil, nil, nil, nil, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(exitcode.Of(err))
}

// fillUp writes to path until the disk is full, as another writer would.
func fillUp(path string) {
	f, err := os.Create(path)
	if err != nil {
		return
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for {
		if _, err := f.Write(buf); err != nil {
			return
		}
	}
}

// killProcesses kills with SIGKILL every process running the executable
// at path, and says how many it found.
func killProcesses(path string) int {
	entries, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if argv0, _, _ := strings.Cut(string(cmdline), "\x00"); argv0 == path {
			syscall.Kill(pid, syscall.SIGKILL)
			n++
		}
	}
	return n
}
