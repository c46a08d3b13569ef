package fleet_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/config"
	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/fleet"
	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/remote/remotetest"
	"github.com/stagecoach/stagecoach/stages/testenv"
	"github.com/stagecoach/stagecoach/stages/ui"
)

// testFleet is a fleet of fake hosts that run the real server scripts on
// this machine, with a fast heartbeat so it is observed quickly. The TTL
// stays well above a second: the server tells ages in whole seconds, so a
// shorter one could take a live lock for a stale one.
type testFleet struct {
	*fleet.Fleet
	dialer *remotetest.Dialer
	log    *testenv.SyncBuffer
}

func newFleet(parallel int) *testFleet {
	d := &remotetest.Dialer{Inner: remote.NewLocal()}
	log := &testenv.SyncBuffer{}
	return &testFleet{
		Fleet: &fleet.Fleet{Dial: d.Dial, Parallel: parallel, Log: ui.New(log, true),
			Lease: fleet.LeaseTiming{Heartbeat: 5 * time.Millisecond, TTL: 5 * time.Second}, Now: time.Now},
		dialer: d, log: log,
	}
}

// open connects a host called name whose root is root.
func (f *testFleet) open(t *testing.T, name, root string) *fleet.Host {
	t.Helper()
	h := f.Hosts(config.Hosts(name), root)[0]
	if err := f.Open(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fleet.Close([]*fleet.Host{h}) })
	return h
}

// closed reports whether r's connection was closed, by a call's error.
func closed(r remote.Runner) bool {
	_, err := r.Run(context.Background(), remote.Script("probe", "true"))
	return errors.Is(err, remotetest.ErrClosed)
}

func TestNewUsesTheEnvironment(t *testing.T) {
	f := fleet.New(&config.Environment{Parallel: 7}, ui.Discard())
	if f.Parallel != 7 || f.Lease != fleet.DefaultLease || f.Dial == nil || f.Now == nil || f.Log == nil {
		t.Errorf("New = %+v", f)
	}
}

func TestSSHDialer(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	known := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(known, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	dial := fleet.SSHDialer(config.SSH{KnownHosts: known, Identities: []string{filepath.Join(dir, "missing_key")}, DialTimeout: time.Second})
	r, err := dial(ctx, remote.LocalTarget)
	if err != nil || r.Target() != remote.LocalTarget {
		t.Fatalf("dial local = %v, %v; want the local transport", r, err)
	}
	// The settings reach the SSH transport: with only a missing key (and,
	// should an agent offer one, loopback's closed port 1) it fails at
	// once, naming the host.
	if _, err := dial(ctx, "deploy@127.0.0.1:1"); err == nil || !strings.Contains(err.Error(), "127.0.0.1") {
		t.Errorf("dial over SSH with a missing key: %v, want an error naming the host", err)
	}
}

func TestHostRoot(t *testing.T) {
	for _, tc := range []struct{ root, name, want string }{
		{"/srv/{host}/app", "deploy@web1:22", "/srv/web1/app"},
		{"/srv/{host}/app", "web2", "/srv/web2/app"},
		{"/srv/{host}/{host}", "deploy@[::1]:2222", "/srv/::1/::1"},
		{"/srv/app", "deploy@web1", "/srv/app"},
		{"srv/{host}", remote.LocalTarget, "srv/local"},
		// A name that is no target is used as it is.
		{"/srv/{host}", "", "/srv/"},
	} {
		if got := fleet.HostRoot(tc.root, tc.name); got != tc.want {
			t.Errorf("HostRoot(%q, %q) = %q, want %q", tc.root, tc.name, got, tc.want)
		}
	}
}

func TestHostsAreNamedAndRootedButNotConnected(t *testing.T) {
	f := newFleet(2)
	hosts := f.Hosts(config.Hosts("deploy@web1", "deploy@web2"), "/srv/{host}")
	for i, h := range hosts {
		name := fmt.Sprintf("deploy@web%d", i+1)
		if h.Name != name || h.Layout.Root != fmt.Sprintf("/srv/web%d", i+1) || h.Runner != nil || h.Log == nil {
			t.Errorf("host %d = %+v", i, h)
		}
	}
	if n := f.dialer.Dials("deploy@web1"); n != 0 {
		t.Errorf("Hosts dialled %d times", n)
	}
}

func TestConnect(t *testing.T) {
	names := []string{"deploy@web1", "deploy@web2", "deploy@web3"}
	t.Run("all reachable", func(t *testing.T) {
		f := newFleet(2)
		hosts, err := f.Connect(context.Background(), config.Hosts(names...), "/srv/{host}")
		if err != nil {
			t.Fatal(err)
		}
		defer fleet.Close(hosts)
		for i, h := range hosts {
			if h.Runner != f.dialer.Host(names[i]) || f.dialer.Dials(names[i]) != 1 {
				t.Errorf("%s: runner %v after %d dials", h.Name, h.Runner, f.dialer.Dials(names[i]))
			}
		}
	})
	t.Run("one unreachable", func(t *testing.T) {
		f := newFleet(3)
		f.dialer.Fail("deploy@web2", errors.New("connect to deploy@web2: no route to host"))
		hosts, err := f.Connect(context.Background(), config.Hosts(names...), "/srv/{host}")
		if hosts != nil || exitcode.Of(err) != exitcode.Unreachable || !strings.Contains(err.Error(), "no route to host") {
			t.Fatalf("Connect = %v, %v (exit %d); want no hosts and exit %d", hosts, err, exitcode.Of(err), exitcode.Unreachable)
		}
		// The error of the transport names the host already: no prefix.
		if strings.Count(err.Error(), "deploy@web2") != 1 {
			t.Errorf("error %q names the host more than once", err)
		}
		for _, name := range []string{"deploy@web1", "deploy@web3"} {
			if !closed(f.dialer.Host(name)) {
				t.Errorf("the connection to %s was left open", name)
			}
		}
	})
}

func TestReconnect(t *testing.T) {
	ctx := context.Background()
	f := newFleet(1)
	h := f.open(t, "deploy@web1", t.TempDir())
	old := h.Runner

	f.dialer.Fail(h.Name, errors.New("no route to host"))
	if err := f.Reconnect(ctx, h); err == nil || !strings.Contains(err.Error(), "reconnecting failed: no route to host") {
		t.Errorf("Reconnect to an unreachable host: %v", err)
	}
	if h.Runner != old || closed(old) {
		t.Error("a failed reconnect replaced or closed the connection")
	}

	f.dialer.Fail(h.Name, nil)
	if err := f.Reconnect(ctx, h); err != nil {
		t.Fatal(err)
	}
	if h.Runner == old || !closed(old) || closed(h.Runner) {
		t.Error("Reconnect did not replace the old connection by a working new one")
	}
	if !strings.Contains(f.log.String(), "reconnected") {
		t.Errorf("log %q does not tell of the reconnect", f.log)
	}
}

func TestCloseSkipsUnconnectedHosts(t *testing.T) {
	f := newFleet(1)
	h := f.open(t, "deploy@web1", t.TempDir())
	fleet.Close([]*fleet.Host{nil, {Name: "never connected"}, h})
	if !closed(h.Runner) {
		t.Error("the connected host stays open")
	}
}

// TestEachIsBoundedByParallel holds every call until the bound is reached,
// so the test sees the widest concurrency Each allows without timing.
func TestEachIsBoundedByParallel(t *testing.T) {
	for _, tc := range []struct{ parallel, hosts, want int }{
		{3, 10, 3},
		{1, 4, 1},
		{0, 4, 1}, // below 1 counts as 1
		{8, 5, 5},
	} {
		t.Run(fmt.Sprintf("parallel %d, %d hosts", tc.parallel, tc.hosts), func(t *testing.T) {
			f := newFleet(tc.parallel)
			var names []string
			for i := range tc.hosts {
				names = append(names, fmt.Sprintf("web%d", i))
			}
			var mu sync.Mutex
			var active, widest, ran int
			full := make(chan struct{})
			err := f.Each(context.Background(), f.Hosts(config.Hosts(names...), "/srv"), "work on", func(context.Context, *fleet.Host) error {
				mu.Lock()
				active++
				ran++
				widest = max(widest, active)
				if active == tc.want && widest == tc.want && ran == tc.want {
					close(full)
				}
				mu.Unlock()
				select {
				case <-full:
				case <-time.After(10 * time.Second):
					return errors.New("the bound was never reached")
				}
				mu.Lock()
				active--
				mu.Unlock()
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if widest != tc.want || ran != tc.hosts {
				t.Errorf("%d at once over %d calls, want %d at once over %d", widest, ran, tc.want, tc.hosts)
			}
		})
	}
}

func TestEachJoinsPrefixedErrors(t *testing.T) {
	names := []string{"web1", "web2", "web3", "web4"}
	fails := map[string]error{
		"web2": errors.New("disk full"),
		"web3": exitcode.Errorf(exitcode.Locked, "deploy locked by alice"),
	}
	fn := func(_ context.Context, h *fleet.Host) error { return fails[h.Name] }
	f := newFleet(2)
	for _, tc := range []struct {
		doing string
		want  []string
	}{
		{"ship to", []string{"ship to web2: disk full", "ship to web3: deploy locked by alice"}},
		{"", []string{"disk full", "deploy locked by alice"}},
	} {
		err := f.Each(context.Background(), f.Hosts(config.Hosts(names...), "/srv"), tc.doing, fn)
		if exitcode.Of(err) != exitcode.Locked {
			t.Errorf("doing %q: exit %d, want the Locked of web3", tc.doing, exitcode.Of(err))
		}
		if got := strings.Split(fmt.Sprint(err), "\n"); strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("doing %q: error lines %q, want %q", tc.doing, got, tc.want)
		}
	}
	if err := f.Each(context.Background(), f.Hosts(config.Hosts(names...), "/srv"), "noop", func(context.Context, *fleet.Host) error { return nil }); err != nil {
		t.Errorf("no failures: %v", err)
	}
}

func TestJoinCoded(t *testing.T) {
	plain := errors.New("plain")
	locked := exitcode.Errorf(exitcode.Locked, "locked")
	unreachable := exitcode.Errorf(exitcode.Unreachable, "unreachable")
	for _, tc := range []struct {
		name string
		errs []error
		code int
	}{
		{"none", nil, exitcode.OK},
		{"only nils", []error{nil, nil}, exitcode.OK},
		{"plain", []error{plain, nil}, exitcode.Failed},
		{"coded beside plain", []error{plain, locked, nil}, exitcode.Locked},
		{"coded before plain", []error{unreachable, plain}, exitcode.Unreachable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := fleet.JoinCoded(tc.errs)
			if exitcode.Of(err) != tc.code {
				t.Errorf("exit %d, want %d", exitcode.Of(err), tc.code)
			}
			for _, e := range tc.errs {
				if e != nil && !errors.Is(err, e) {
					t.Errorf("%v lost from %v", e, err)
				}
			}
		})
	}
}
