package server

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/remote"
)

func TestParseLockHeld(t *testing.T) {
	out := "stagecoach-lock now=1000 heartbeat=995\n" +
		`{"holder":"alice@laptop","pid":123,"started":"2026-01-01T12:03:04Z","token":"t1","command":"deploy"}` + "\n"
	h, err := ParseLockHeld([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if h.Info.Holder != "alice@laptop" || h.Info.PID != 123 || h.Age != 5*time.Second {
		t.Fatalf("%+v", h)
	}
	// A lock written before boot ids were recorded has none.
	if h.Info.BootID != "" || h.Info.PIDNS != "" {
		t.Errorf("boot id %q, pid namespace %q in an old lock", h.Info.BootID, h.Info.PIDNS)
	}
	msg := h.Describe(time.Minute)
	if !strings.HasPrefix(msg, "deploy locked by alice@laptop (pid 123) since ") ||
		!strings.HasSuffix(msg, "heartbeat 5s ago; it becomes breakable in 55s if its holder stops its heartbeat") {
		t.Errorf("describe: %q", msg)
	}
	if msg := h.Describe(2 * time.Second); !strings.HasPrefix(msg, "stale lock: ") || strings.Contains(msg, "breakable in") {
		t.Errorf("stale describe: %q", msg)
	}
	if msg := h.Describe(0); !strings.HasSuffix(msg, "heartbeat 5s ago") {
		t.Errorf("describe without a lease: %q", msg)
	}
	for _, tc := range []struct{ ttl, want time.Duration }{
		{time.Minute, 55 * time.Second}, {5 * time.Second, time.Second}, {5500 * time.Millisecond, time.Second},
		{200 * time.Millisecond, 0}, {4 * time.Second, 0},
	} {
		if got := h.BreakableIn(tc.ttl); got != tc.want {
			t.Errorf("BreakableIn(%v) of a 5s old heartbeat = %v, want %v", tc.ttl, got, tc.want)
		}
	}
	h, err = ParseLockHeld([]byte("stagecoach-lock now=1000 heartbeat=995\n" +
		`{"holder":"alice@laptop","pid":123,"boot_id":"b0-07","pid_ns":"pid:[4026531836]","token":"t1"}` + "\n"))
	if err != nil || h.Info.BootID != "b0-07" || h.Info.PIDNS != "pid:[4026531836]" {
		t.Errorf("%+v %v", h, err)
	}
	// A lock taken an instant ago may have no info yet.
	h, err = ParseLockHeld([]byte("stagecoach-lock now=10 heartbeat=10\n"))
	if err != nil || h.Info.Holder != "" || !strings.Contains(h.Describe(time.Minute), "unknown holder") {
		t.Errorf("%+v %v", h, err)
	}
	for _, bad := range []string{"", "garbage\n", "stagecoach-lock now=1 heartbeat=1\n{"} {
		if _, err := ParseLockHeld([]byte(bad)); err == nil {
			t.Errorf("ParseLockHeld(%q) accepted", bad)
		}
	}
}

func TestLockScripts(t *testing.T) {
	l := newRoot(t)
	alice := LockInfo{Holder: "alice@laptop", PID: 123, Started: time.Now(), Token: "tok-alice", Command: "deploy production"}
	bob := LockInfo{Holder: "bob@ci", PID: 9, Started: time.Now(), Token: "tok-bob'; rm -rf /", Command: "deploy"}

	cmd, err := cmdOf(Lock(l, alice))
	mustRun(t, cmd, err)

	// A second deploy is refused and told who holds the lock.
	cmd, _ = cmdOf(Lock(l, bob))
	res, err := run(t, cmd)
	if ExitCode(err) != ExitLockHeld {
		t.Fatalf("second lock: %v", err)
	}
	held, err := ParseLockHeld(res.Stdout)
	if err != nil || held.Info.Holder != "alice@laptop" || held.Info.Token != "tok-alice" || held.Age > 5*time.Second {
		t.Fatalf("held %+v %v", held, err)
	}

	// Heartbeat works for the holder only.
	mustRun(t, Heartbeat(l, "tok-alice"), nil)
	if _, err := run(t, Heartbeat(l, bob.Token)); ExitCode(err) != ExitLockLost {
		t.Errorf("heartbeat with the wrong token: %v", err)
	}

	// A fresh lock is not broken, even with the right token.
	if _, err := run(t, BreakLock(l, "tok-alice", time.Minute).Cmd); ExitCode(err) != ExitLockRefused {
		t.Errorf("break fresh lock: %v", err)
	}
	// Make it stale: heartbeat an hour ago by the server's clock.
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(filepath.Join(l.LockDir(), "info.json"), old, old); err != nil {
		t.Fatal(err)
	}
	res, err = run(t, BreakLock(l, "some-other-token", time.Minute).Cmd)
	if ExitCode(err) != ExitLockRefused {
		t.Errorf("break with a token the lock does not hold: %v", err)
	}
	if h, err := ParseLockHeld(res.Stdout); err != nil || !h.Stale(time.Minute) {
		t.Errorf("refusal report %+v %v", h, err)
	}
	// Someone else's unlock leaves it alone.
	if _, err := run(t, Unlock(l, bob.Token)); ExitCode(err) != ExitLockLost {
		t.Errorf("unlock someone else's lock: %v", err)
	}
	mustRun(t, BreakLock(l, "tok-alice", time.Minute).Cmd, nil)
	if _, err := os.Stat(l.LockDir()); !os.IsNotExist(err) {
		t.Fatalf("lock still there after break: %v", err)
	}
	if _, err := run(t, Heartbeat(l, "tok-alice")); ExitCode(err) != ExitLockLost {
		t.Errorf("heartbeat after break: %v", err)
	}

	// Bob takes it now, and unlocks his own.
	cmd, _ = cmdOf(Lock(l, bob))
	mustRun(t, cmd, nil)
	mustRun(t, Unlock(l, bob.Token), nil)
	if _, err := os.Stat(l.LockDir()); !os.IsNotExist(err) {
		t.Fatalf("lock still there after unlock: %v", err)
	}
	entries, _ := os.ReadDir(l.MetaDir())
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "lock") {
			t.Errorf("leftover %s", e.Name())
		}
	}
}

// TestBreakDeadLock: the lock of a dead holder goes whatever its age, but
// only while it holds the dead holder's token.
func TestBreakDeadLock(t *testing.T) {
	l := newRoot(t)
	dead := LockInfo{Holder: "alice@laptop", PID: 123, BootID: "b0-07", Started: time.Now(), Token: "tok-dead", Command: "deploy"}
	cmd, err := cmdOf(Lock(l, dead))
	mustRun(t, cmd, err)
	if data, err := os.ReadFile(filepath.Join(l.LockDir(), "info.json")); err != nil || !strings.Contains(string(data), `"boot_id":"b0-07"`) {
		t.Errorf("info.json %s (%v) lacks the boot id", data, err)
	}
	other := BreakDeadLock(l, "tok-other")
	_, err = other.Decode(run(t, other.Cmd))
	var refused *LockBreakRefusedError
	if !errors.As(err, &refused) {
		t.Fatalf("break with a token the lock does not hold: %v, want a refusal", err)
	}
	if refused.Held.Info.Token != "tok-dead" || !strings.Contains(err.Error(), "changed before it could be broken: deploy locked by alice@laptop (pid 123)") {
		t.Errorf("refusal %+v: %v", refused.Held, err)
	}
	// Fresh: its heartbeat is an instant old.
	mustRun(t, BreakDeadLock(l, "tok-dead").Cmd, nil)
	if _, err := os.Stat(l.LockDir()); !os.IsNotExist(err) {
		t.Fatalf("lock still there after break: %v", err)
	}
	mustRun(t, BreakDeadLock(l, "tok-dead").Cmd, nil) // nothing left to break
}

func TestLockRace(t *testing.T) {
	l := newRoot(t)
	const n = 8
	codes := make(chan int, n)
	for i := 0; i < n; i++ {
		go func(i int) {
			cmd, _ := cmdOf(Lock(l, LockInfo{Holder: "h", Token: "t" + string(rune('a'+i))}))
			_, err := run(t, cmd)
			if err == nil {
				codes <- 0
			} else {
				codes <- ExitCode(err)
			}
		}(i)
	}
	won := 0
	for i := 0; i < n; i++ {
		switch c := <-codes; c {
		case 0:
			won++
		case ExitLockHeld:
		default:
			t.Errorf("lock exited %d", c)
		}
	}
	if won != 1 {
		t.Errorf("%d deploys took the lock at once", won)
	}
}

func TestLockNeedsToken(t *testing.T) {
	if _, err := Lock(Layout{Root: "/r"}, LockInfo{}); err == nil {
		t.Error("empty token accepted")
	}
}

// TestLockTakeKilledLeavesNoLock: a take killed at any point of its work
// leaves no lock without its token (the lock is built aside and renamed
// into place), and the next take removes what the killed one left.
// Regression: a take killed between making the lock directory and writing
// its token left a lock nobody could prove dead.
func TestLockTakeKilledLeavesNoLock(t *testing.T) {
	for _, at := range []string{"mkdir", "mv"} {
		t.Run("killed at "+at, func(t *testing.T) {
			l := newRoot(t)
			cmd, err := cmdOf(Lock(l, LockInfo{Holder: "alice@laptop", Token: "tok-killed"}))
			if err != nil {
				t.Fatal(err)
			}
			// A stand-in for the command that does its work, when it is
			// the take's, then kills the take's whole process group, as
			// kill -9 of a session does.
			runKilled(t, cmd, at, `case "$*" in *.taking-*) "$real" "$@"; kill -9 0;; esac`)
			if _, err := os.Lstat(l.LockDir()); at == "mkdir" && !os.IsNotExist(err) {
				t.Fatalf("a take killed before its rename left a lock: %v", err)
			}
			if _, err := os.Lstat(l.LockDir()); err == nil {
				// Killed after the rename: the lock is whole, the
				// killed deploy's own.
				if b, _ := os.ReadFile(filepath.Join(l.LockDir(), "token")); string(b) != "tok-killed\n" {
					t.Fatalf("lock left with token %q", b)
				}
				mustRun(t, Unlock(l, "tok-killed"), nil)
			}
			takeCleansUp(t, l)
		})
	}
}

// TestLockReleaseKilled: a release killed at any point of its work leaves
// the whole lock, which its holder's token still breaks, or none; the next
// take removes what the killed one left. Regression: a release killed
// during its rm -rf left a lock with info.json but no token, which no
// break accepted.
func TestLockReleaseKilled(t *testing.T) {
	for _, at := range []string{"mv", "rm"} {
		t.Run("killed at "+at, func(t *testing.T) {
			l := newRoot(t)
			cmd, err := cmdOf(Lock(l, LockInfo{Holder: "alice@laptop", Token: "tok-killed"}))
			mustRun(t, cmd, err)
			// A stand-in for the command that, when it is the release's,
			// removes the token (all that an rm -rf may get to) and kills
			// the release's whole process group.
			runKilled(t, Unlock(l, "tok-killed"), at, `case "$*" in *lock*) for a; do :; done; /bin/rm -f "$a/token"; kill -9 0;; esac`)
			if _, err := os.Lstat(l.LockDir()); err == nil {
				mustRun(t, BreakDeadLock(l, "tok-killed").Cmd, nil)
			}
			takeCleansUp(t, l)
		})
	}
}

// runKilled runs cmd with the command named at replaced by a script that
// runs the shell code first (where $real names the real command), then
// the real command. cmd must be killed.
func runKilled(t *testing.T, cmd remote.Command, at, first string) {
	t.Helper()
	bin := t.TempDir()
	real, err := exec.LookPath(at)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(bin, at), "#!/bin/sh\nreal="+real+"\n"+first+"\nexec \"$real\" \"$@\"\n")
	if err := os.Chmod(filepath.Join(bin, at), 0o755); err != nil {
		t.Fatal(err)
	}
	c := exec.Command("/bin/sh", "-c", cmd.Script)
	c.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.Run(); err == nil {
		t.Fatalf("%s was not killed", cmd.Desc)
	}
}

// takeCleansUp takes the lock on l and checks that nothing is left beside it.
func takeCleansUp(t *testing.T, l Layout) {
	t.Helper()
	cmd, err := cmdOf(Lock(l, LockInfo{Holder: "bob@ci", Token: "tok-next"}))
	mustRun(t, cmd, err)
	entries, _ := os.ReadDir(l.MetaDir())
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "lock.") {
			t.Errorf("the next take left %s", e.Name())
		}
	}
}

// TestBreakLockLeftWithoutToken: a lock an older release left with its
// info but not its token (killed during its rm -rf) is broken with the
// token its info names, and with no other.
func TestBreakLockLeftWithoutToken(t *testing.T) {
	l := newRoot(t)
	cmd, err := cmdOf(Lock(l, LockInfo{Holder: "alice@laptop", PID: 123, Token: "tok-old"}))
	mustRun(t, cmd, err)
	if err := os.Remove(filepath.Join(l.LockDir(), "token")); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, BreakDeadLock(l, "tok-other").Cmd); ExitCode(err) != ExitLockRefused {
		t.Fatalf("break with a token the info does not name: %v", err)
	}
	mustRun(t, BreakDeadLock(l, "tok-old").Cmd, nil)
	if _, err := os.Lstat(l.LockDir()); !os.IsNotExist(err) {
		t.Fatalf("lock still there after break: %v", err)
	}
}

// TestLockWithoutInfo: a lock an older take left without info (killed
// after its mkdir) is reported held, with its directory's age as its
// heartbeat, and is broken by BreakLock with an empty token once stale,
// never a lock that has info.
func TestLockWithoutInfo(t *testing.T) {
	for _, withToken := range []bool{false, true} {
		t.Run(fmt.Sprintf("token file %v", withToken), func(t *testing.T) {
			l := newRoot(t)
			if err := os.Mkdir(l.LockDir(), 0o755); err != nil {
				t.Fatal(err)
			}
			if withToken { // killed between the token and info.json
				writeFile(t, filepath.Join(l.LockDir(), "token"), "tok-old\n")
			}
			old := time.Now().Add(-time.Hour)
			if err := os.Chtimes(l.LockDir(), old, old); err != nil {
				t.Fatal(err)
			}
			cmd, _ := cmdOf(Lock(l, LockInfo{Holder: "bob@ci", Token: "tok-bob"}))
			res, err := run(t, cmd)
			if ExitCode(err) != ExitLockHeld {
				t.Fatalf("take over a lock without info: %v", err)
			}
			held, err := ParseLockHeld(res.Stdout)
			if err != nil || held.Info.Token != "" || !held.Stale(time.Minute) {
				t.Fatalf("held %+v %v", held, err)
			}
			mustRun(t, BreakLock(l, "", time.Minute).Cmd, nil)
			mustRun(t, cmd, nil)
			// A lock with info is not one to break without its token.
			if _, err := run(t, BreakLock(l, "", -time.Second).Cmd); ExitCode(err) != ExitLockRefused {
				t.Errorf("break of a whole lock with an empty token: %v", err)
			}
		})
	}
}
