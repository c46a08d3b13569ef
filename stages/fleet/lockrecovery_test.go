package fleet_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/fleet"
	"github.com/stagecoach/stagecoach/stages/server"
)

// TestLockMessages: a refusal says when a live lock becomes breakable, and
// that STAGECOACH_BREAK_LOCK=1, when set, was not used on it and why.
func TestLockMessages(t *testing.T) {
	for _, tc := range []struct {
		name       string
		age        time.Duration
		breakStale bool
		want, not  []string
	}{
		{name: "fresh", age: 20 * time.Second,
			want: []string{"deploy locked by alice@laptop (pid 123)", "heartbeat 20s ago; it becomes breakable in 40s if its holder stops its heartbeat"},
			not:  []string{"STAGECOACH_BREAK_LOCK", "stale"}},
		{name: "fresh with BREAK_LOCK", age: 20 * time.Second, breakStale: true,
			want: []string{"it becomes breakable in 40s", "STAGECOACH_BREAK_LOCK=1 was not used: the holder is alive (heartbeat 20s ago)"},
			not:  []string{"stale"}},
		{name: "an instant before it goes stale", age: time.Minute, breakStale: true,
			want: []string{"it becomes breakable in 1s", "STAGECOACH_BREAK_LOCK=1 was not used"}},
		{name: "stale", age: time.Hour,
			want: []string{"stale lock: ", "set STAGECOACH_BREAK_LOCK=1 to break it"},
			not:  []string{"becomes breakable", "was not used"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFleet(1)
			f.Lease.TTL = time.Minute
			h := f.open(t, "deploy@web1", t.TempDir())
			fake := f.dialer.Host(h.Name)
			fake.On("take deploy lock").Exit(server.ExitLockHeld, "").Stdout(heldReport(alice, tc.age))
			err := f.Lock(context.Background(), h, "deploy", tc.breakStale)
			if exitcode.Of(err) != exitcode.Locked {
				t.Fatalf("Lock = %v (exit %d), want exit %d", err, exitcode.Of(err), exitcode.Locked)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(err.Error(), w) {
					t.Errorf("error %q says %q", err, w)
				}
			}
			if n := fake.Count("break"); n != 0 {
				t.Errorf("%d attempts to break the lock", n)
			}
		})
	}
}

var (
	machineOnce sync.Once
	machineInfo server.LockInfo
)

// thisMachine is the lock info a deploy from this process writes: its
// holder, boot id and PID namespace. It skips the test where there is no
// boot id (not Linux): no lock is then ever broken automatically.
func thisMachine(t *testing.T) server.LockInfo {
	t.Helper()
	machineOnce.Do(func() {
		f := newFleet(1)
		root := t.TempDir()
		h := f.open(t, "deploy@web1", root)
		if err := f.Lock(context.Background(), h, "deploy", false); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(filepath.Join(root, ".stagecoach", "lock", "info.json"))
		f.Unlock([]*fleet.Host{h})
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, &machineInfo); err != nil {
			t.Fatal(err)
		}
	})
	if machineInfo.Holder != fleet.WhoAmI() || machineInfo.PID != os.Getpid() {
		t.Fatalf("this deploy's lock info %+v", machineInfo)
	}
	if machineInfo.BootID == "" || machineInfo.PIDNS == "" {
		t.Skip("no boot id or PID namespace on this system: locks are never broken automatically")
	}
	if machineInfo.BootID != fleet.BootID() {
		t.Fatalf("lock info boot id %q, BootID %q", machineInfo.BootID, fleet.BootID())
	}
	return machineInfo
}

// deadPID is the PID of a process that ran and was reaped.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

// livePID is the PID of a process that runs until the test ends.
func livePID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd.Process.Pid
}

// TestDeadHolderAutoBreak: the lock of a deploy from this machine, boot and
// PID namespace whose process is gone is broken at once, fresh or not,
// without breakStale, with a warning, and BrokeLock tells the history.
// Every other lock stays.
func TestDeadHolderAutoBreak(t *testing.T) {
	me := thisMachine(t)
	with := func(change func(*server.LockInfo)) server.LockInfo {
		info := me
		info.Token, info.Command, info.Started = "deadtoken", "deploy", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		change(&info)
		return info
	}
	host := me.Holder[strings.LastIndex(me.Holder, "@")+1:]
	for _, tc := range []struct {
		name  string
		info  server.LockInfo
		hold  bool // through Hold rather than Lock
		broke bool
	}{
		{name: "dead", info: with(func(i *server.LockInfo) { i.PID = deadPID(t) }), broke: true},
		{name: "dead, through Hold", info: with(func(i *server.LockInfo) { i.PID = deadPID(t) }), hold: true, broke: true},
		{name: "dead, another user of this machine", info: with(func(i *server.LockInfo) { i.PID, i.Holder = deadPID(t), "bob@"+host }), broke: true},
		{name: "pid lives", info: with(func(i *server.LockInfo) { i.PID = livePID(t) })},
		{name: "pid is this process", info: with(func(i *server.LockInfo) { i.PID = os.Getpid() })},
		{name: "other host", info: with(func(i *server.LockInfo) { i.PID, i.Holder = deadPID(t), "alice@not-"+host })},
		{name: "no boot id", info: with(func(i *server.LockInfo) { i.PID, i.BootID = deadPID(t), "" })},
		{name: "another boot", info: with(func(i *server.LockInfo) { i.PID, i.BootID = deadPID(t), "0d5c1b62-0000-4000-8000-000000000000" })},
		{name: "no pid namespace", info: with(func(i *server.LockInfo) { i.PID, i.PIDNS = deadPID(t), "" })},
		{name: "another pid namespace", info: with(func(i *server.LockInfo) { i.PID, i.PIDNS = deadPID(t), "pid:[1]" })},
		{name: "no pid", info: with(func(i *server.LockInfo) { i.PID = 0 })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFleet(1)
			f.Lease.TTL = time.Minute
			root := t.TempDir()
			plantLock(t, root, tc.info, 0)
			h := f.open(t, "deploy@web1", root)
			var err error
			if tc.hold {
				err = f.Hold(context.Background(), h, "deploy", false, "shop")
			} else {
				err = f.Lock(context.Background(), h, "deploy", false)
			}
			defer f.Unlock([]*fleet.Host{h})
			if !tc.broke {
				if exitcode.Of(err) != exitcode.Locked || !strings.Contains(err.Error(), "becomes breakable in") {
					t.Fatalf("Lock = %v (exit %d), want the fresh lock refused", err, exitcode.Of(err))
				}
				if lockToken(t, root) != "deadtoken" || h.Locked() || strings.Contains(f.log.String(), "broke") {
					t.Errorf("the lock was broken: token %q, log %q", lockToken(t, root), f.log)
				}
				return
			}
			if err != nil {
				t.Fatalf("Lock = %v, want the dead holder's lock broken", err)
			}
			if tok := lockToken(t, root); tok == "deadtoken" || tok == "" || !h.Locked() {
				t.Errorf("lock token %q after breaking the dead holder's", tok)
			}
			holder := tc.info.Holder + " (pid " + strconv.Itoa(tc.info.PID) + ") since 2026-01-02T03:04:05Z"
			if want := holder + ", process gone"; h.BrokeLock() != want {
				t.Errorf("BrokeLock %q, want %q", h.BrokeLock(), want)
			}
			if want := "WARN " + h.Name + ": broke the deploy lock of " + holder + ": that deploy is dead"; !strings.Contains(f.log.String(), want) {
				t.Errorf("log %q lacks %q", f.log, want)
			}
			if tc.hold && (h.State == nil || h.State.App != "shop") {
				t.Errorf("state %+v not read after the break", h.State)
			}
		})
	}
}

// TestDeadHolderBreakRefused: a dead holder's lock that changed hands
// before the break is not broken: the deploy goes on as against any lock
// held, here one alive and fresh, and does not break again.
func TestDeadHolderBreakRefused(t *testing.T) {
	me := thisMachine(t)
	me.PID, me.Token = deadPID(t), "deadtoken"
	live := me
	live.PID, live.Token = livePID(t), "livetoken"
	f := newFleet(1)
	f.Lease.TTL = time.Minute
	root := t.TempDir()
	plantLock(t, root, me, 0)
	h := f.open(t, "deploy@web1", root)
	fake := f.dialer.Host(h.Name)
	fake.On("break dead deploy lock").Then(func() {
		os.RemoveAll(filepath.Join(root, ".stagecoach", "lock"))
		plantLock(t, root, live, 0)
	}).Pass()
	err := f.Lock(context.Background(), h, "deploy", false)
	if exitcode.Of(err) != exitcode.Locked || !strings.Contains(err.Error(), "becomes breakable in") || h.Locked() {
		t.Fatalf("Lock = %v (exit %d), Locked %v; want the live lock refused", err, exitcode.Of(err), h.Locked())
	}
	if want := "the deploy lock changed before it could be broken: deploy locked by " + me.Holder + " (pid " + strconv.Itoa(live.PID) + ")"; !strings.Contains(f.log.String(), want) {
		t.Errorf("log %q lacks %q", f.log, want)
	}
	if lockToken(t, root) != "livetoken" || fake.Count("break dead deploy lock") != 1 || strings.Contains(f.log.String(), "WARN") {
		t.Errorf("token %q after %d breaks, log %q: want the live lock kept, one break, no warning", lockToken(t, root), fake.Count("break dead deploy lock"), f.log)
	}
}

// clock is a fake clock for waits: Sleep moves it on at once and runs
// what the test wants done at the n-th sleep.
type clock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
	at     map[int]func() // 1-based
}

func newClock() *clock {
	return &clock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), at: map[int]func(){}}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.sleeps = append(c.sleeps, d)
	fn := c.at[len(c.sleeps)]
	c.mu.Unlock()
	if fn != nil {
		fn()
	}
	return ctx.Err()
}

func (c *clock) Sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

// waitingFleet is a fleet waiting up to a minute for locks, polling every
// 10 s of a fake clock; its lease's TTL is 30 s.
func waitingFleet() (*testFleet, *clock) {
	f := newFleet(1)
	c := newClock()
	f.Now, f.Sleep = c.Now, c.Sleep
	f.LockWait = time.Minute
	f.Lease = fleet.LeaseTiming{Heartbeat: 10 * time.Second, TTL: 30 * time.Second}
	return f, c
}

// TestLockWait: with LockWait, a held lock is polled until it is released
// or breakable, or the wait ends; the wait is logged once.
func TestLockWait(t *testing.T) {
	release := func(root string) func() {
		return func() { os.RemoveAll(filepath.Join(root, ".stagecoach", "lock")) }
	}
	goStale := func(t *testing.T, root string) func() {
		return func() {
			old := time.Now().Add(-time.Hour)
			if err := os.Chtimes(filepath.Join(root, ".stagecoach", "lock", "info.json"), old, old); err != nil {
				t.Error(err)
			}
		}
	}
	for _, tc := range []struct {
		name       string
		breakStale bool
		hold       bool
		at         func(t *testing.T, root string) map[int]func()
		sleeps     int
		want       []string // in the error; none: the lock is taken
		broke      string
		waitsFor   string
	}{
		{name: "until released", at: func(t *testing.T, root string) map[int]func() { return map[int]func(){3: release(root)} },
			sleeps: 3, waitsFor: "to be released: deploy locked by alice@laptop"},
		{name: "until released, through Hold", hold: true,
			at:     func(t *testing.T, root string) map[int]func() { return map[int]func(){2: release(root)} },
			sleeps: 2, waitsFor: "to be released: "},
		{name: "until stale, with BREAK_LOCK", breakStale: true,
			at:     func(t *testing.T, root string) map[int]func() { return map[int]func(){2: goStale(t, root)} },
			sleeps: 2, broke: "alice@laptop (pid 123)", waitsFor: "to be released or to go stale: deploy locked by alice@laptop"},
		{name: "stale without BREAK_LOCK: until the end",
			at:     func(t *testing.T, root string) map[int]func() { return map[int]func(){2: goStale(t, root)} },
			sleeps: 6, want: []string{"stale lock: ", "set STAGECOACH_BREAK_LOCK=1 to break it", "gave up after waiting 1m0s"}},
		{name: "times out", sleeps: 6,
			want: []string{"deploy locked by alice@laptop", "it becomes breakable in ", "gave up after waiting 1m0s"}},
		{name: "times out, with BREAK_LOCK", breakStale: true, sleeps: 6,
			want: []string{"STAGECOACH_BREAK_LOCK=1 was not used: the holder is alive", "gave up after waiting 1m0s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, c := waitingFleet()
			root := t.TempDir()
			plantLock(t, root, alice, 0)
			if tc.at != nil {
				c.at = tc.at(t, root)
			}
			h := f.open(t, "deploy@web1", root)
			var err error
			if tc.hold {
				err = f.Hold(context.Background(), h, "deploy", tc.breakStale, "shop")
			} else {
				err = f.Lock(context.Background(), h, "deploy", tc.breakStale)
			}
			defer f.Unlock([]*fleet.Host{h})
			if tc.want == nil && err != nil {
				t.Fatalf("Lock = %v, want the lock taken after waiting\n%s", err, f.log)
			}
			if tc.want != nil {
				if exitcode.Of(err) != exitcode.Locked {
					t.Fatalf("Lock = %v (exit %d), want exit %d", err, exitcode.Of(err), exitcode.Locked)
				}
				for _, w := range tc.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				if h.Locked() || lockToken(t, root) != alice.Token {
					t.Error("the lock changed hands")
				}
			}
			sleeps := c.Sleeps()
			if len(sleeps) != tc.sleeps {
				t.Errorf("slept %v, want %d sleeps", sleeps, tc.sleeps)
			}
			for _, d := range sleeps {
				if d != 10*time.Second {
					t.Errorf("slept %v, want polls of the heartbeat's 10s", sleeps)
					break
				}
			}
			if n := f.dialer.Host(h.Name).Count("take deploy lock"); n != tc.sleeps+1+btoi(tc.broke != "") {
				t.Errorf("%d attempts to take the lock after %d sleeps", n, tc.sleeps)
			}
			if n := strings.Count(f.log.String(), "waiting up to 1m0s for the deploy lock"); n != 1 {
				t.Errorf("the wait was logged %d times, want once:\n%s", n, f.log)
			}
			if tc.waitsFor != "" && !strings.Contains(f.log.String(), "for the deploy lock "+tc.waitsFor) {
				t.Errorf("log %q does not say it waits %q", f.log, tc.waitsFor)
			}
			if !strings.HasPrefix(h.BrokeLock(), tc.broke) || (tc.broke == "") != (h.BrokeLock() == "") {
				t.Errorf("BrokeLock %q, want %q", h.BrokeLock(), tc.broke)
			}
			if tc.hold && (h.State == nil || h.State.App != "shop") {
				t.Errorf("state %+v not read after the wait", h.State)
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestLockWaitShortensTheLastPoll: the last poll ends with the wait.
func TestLockWaitShortensTheLastPoll(t *testing.T) {
	f, c := waitingFleet()
	f.LockWait = 25 * time.Second
	root := t.TempDir()
	plantLock(t, root, alice, 0)
	h := f.open(t, "deploy@web1", root)
	err := f.Lock(context.Background(), h, "deploy", false)
	if exitcode.Of(err) != exitcode.Locked || !strings.Contains(err.Error(), "gave up after waiting 25s") {
		t.Fatalf("Lock = %v", err)
	}
	if got, want := c.Sleeps(), []time.Duration{10 * time.Second, 10 * time.Second, 5 * time.Second}; len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("slept %v, want %v", got, want)
	}
}

// TestLockWaitEndsWithTheContext: the wait, on the real clock, ends as soon
// as its context does.
func TestLockWaitEndsWithTheContext(t *testing.T) {
	f := newFleet(1)
	f.LockWait = time.Hour
	f.Lease = fleet.LeaseTiming{Heartbeat: time.Hour, TTL: time.Minute}
	root := t.TempDir()
	plantLock(t, root, alice, 0)
	h := f.open(t, "deploy@web1", root)
	// The deadline ends the wait, not the first attempt: on a loaded
	// machine that attempt alone can take longer than a short deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	f.Sleep = func(ctx context.Context, d time.Duration) error {
		<-ctx.Done()
		return ctx.Err()
	}
	start := time.Now()
	err := f.Lock(ctx, h, "deploy", false)
	if !errors.Is(err, context.DeadlineExceeded) || exitcode.Of(err) != exitcode.Locked ||
		!strings.Contains(err.Error(), "stopped waiting for the deploy lock (deploy locked by alice@laptop") {
		t.Fatalf("Lock = %v (exit %d), want the wait ended by the context", err, exitcode.Of(err))
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("the wait took %v", d)
	}
	if h.Locked() || lockToken(t, root) != alice.Token {
		t.Error("the lock changed hands")
	}
	// Cancelled, as an interrupt does.
	ctx, cancel = context.WithCancel(context.Background())
	f.Sleep = func(ctx context.Context, d time.Duration) error {
		cancel()
		return ctx.Err()
	}
	if err := f.Lock(ctx, h, "deploy", false); !errors.Is(err, context.Canceled) || exitcode.Of(err) != exitcode.Locked {
		t.Fatalf("Lock = %v (exit %d), want context.Canceled", err, exitcode.Of(err))
	}
}

// TestNoWaitByDefault: without LockWait nothing sleeps.
func TestNoWaitByDefault(t *testing.T) {
	f, c := waitingFleet()
	f.LockWait = 0
	root := t.TempDir()
	plantLock(t, root, alice, 0)
	h := f.open(t, "deploy@web1", root)
	if err := f.Lock(context.Background(), h, "deploy", false); exitcode.Of(err) != exitcode.Locked || strings.Contains(err.Error(), "waiting") {
		t.Fatalf("Lock = %v", err)
	}
	if len(c.Sleeps()) != 0 || strings.Contains(f.log.String(), "waiting") {
		t.Errorf("slept %v; log %q", c.Sleeps(), f.log)
	}
}
