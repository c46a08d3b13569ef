package server

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/stagecoach/stagecoach/stages/remote"
)

// Exit codes of the lock scripts.
const (
	ExitLockHeld    = 75 // Lock: another holder has the lock; its info is on stdout
	ExitLockLost    = 76 // Heartbeat, Unlock: the lock is gone or belongs to someone else
	ExitLockRefused = 77 // BreakLock: the lock is fresh again or holds another token
)

// LockInfo says who holds the deploy lock. It is stored as
// <root>/.stagecoach/lock/info.json; the file's mtime is the heartbeat.
// BootID and PIDNS, with the machine of Holder, say where PID lives: a
// deploy on that same machine, boot and PID namespace can tell that the
// holder's process is gone. Locks written before they existed lack them.
type LockInfo struct {
	Holder  string    `json:"holder"` // user@machine
	PID     int       `json:"pid"`
	BootID  string    `json:"boot_id,omitempty"` // the holder machine's boot (Linux); "" when unknown
	PIDNS   string    `json:"pid_ns,omitempty"`  // the holder's PID namespace (Linux); "" when unknown
	Started time.Time `json:"started"`
	Token   string    `json:"token"` // random, identifies this holder
	Command string    `json:"command"`
}

// LockHeld is what Lock reports when someone else holds the lock. Ages come
// from the server's own clock, so skew between machines does not matter.
type LockHeld struct {
	Info LockInfo // zero when the holder had not yet written its info
	// Age is how long ago the last heartbeat was, by the server's clock.
	Age time.Duration
}

// Stale reports whether the holder missed its heartbeats for longer than ttl.
func (h *LockHeld) Stale(ttl time.Duration) bool { return h.Age > ttl }

// BreakableIn is how long until a lock whose holder stops its heartbeat
// now goes stale under a lease of ttl: 0 when it is stale already.
func (h *LockHeld) BreakableIn(ttl time.Duration) time.Duration {
	if h.Stale(ttl) {
		return 0
	}
	// Ages are whole seconds; a lock not breakable yet is never said to
	// be breakable "in 0s".
	return max((ttl - h.Age).Round(time.Second), time.Second)
}

// Describe says who holds the lock, for an error message:
// "deploy locked by alice@laptop (pid 123) since 12:03:04, heartbeat 5s ago",
// and, for a lease ttl > 0, whether the lock is stale or else when it
// becomes breakable.
func (h *LockHeld) Describe(ttl time.Duration) string {
	who := h.Info.Holder
	if who == "" {
		who = "an unknown holder"
	}
	s := "deploy locked by " + who
	if h.Info.PID > 0 {
		s += fmt.Sprintf(" (pid %d)", h.Info.PID)
	}
	if !h.Info.Started.IsZero() {
		s += " since " + h.Info.Started.Local().Format("15:04:05")
	}
	s += fmt.Sprintf(", heartbeat %s ago", h.Age.Round(time.Second))
	switch {
	case ttl <= 0:
	case h.Stale(ttl):
		s = "stale lock: " + s + fmt.Sprintf(" (lease %s expired; break it explicitly if that deploy is dead)", ttl)
	default:
		s += fmt.Sprintf("; it becomes breakable in %s if its holder stops its heartbeat", h.BreakableIn(ttl))
	}
	return s
}

var lockScript = load("lock.sh")

// Lock takes the deploy lock: the lock directory, with its token and
// info.json, is built beside its place and renamed into it, so of two
// deploys exactly one takes it, and a take killed part-way leaves no lock
// without its token (only its temporary directory, which the next take
// removes). A loser prints the holder's info and exits ExitLockHeld, which
// the Op decodes into a *LockHeldError.
func Lock(l Layout, info LockInfo) (Op[struct{}], error) {
	if info.Token == "" {
		return Op[struct{}]{}, errors.New("lock: empty token")
	}
	js, err := json.Marshal(info)
	if err != nil {
		return Op[struct{}]{}, fmt.Errorf("lock: %w", err)
	}
	o := action(lockScript.public("take deploy lock", "take", l.LockDir(), info.Token, string(js), strconv.Itoa(ExitLockHeld)))
	o.failed = decodeHolder(ExitLockHeld, "deploy lock is held", func(held *LockHeld) error { return &LockHeldError{Held: held} })
	return o, nil
}

// decodeHolder decodes the exit code of a lock script that printed the
// lock's holder (see report in lock.sh) into the typed error of that
// holder; refusal says what happened, for when the report is unreadable.
func decodeHolder(code int, refusal string, typed func(*LockHeld) error) func(remote.Result, int, error) error {
	return func(res remote.Result, got int, _ error) error {
		if got != code {
			return nil
		}
		held, err := ParseLockHeld(res.Stdout)
		if err != nil {
			return fmt.Errorf("%s and its owner is unreadable: %v", refusal, err)
		}
		return typed(held)
	}
}

// ParseLockHeld reads what Lock printed when it exited ExitLockHeld (or
// what BreakLock printed when it refused).
func ParseLockHeld(stdout []byte) (*LockHeld, error) {
	sc := bufio.NewScanner(bytes.NewReader(stdout))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	if !sc.Scan() {
		return nil, errors.New("lock holder report is empty")
	}
	var now, hb int64
	if _, err := fmt.Sscanf(sc.Text(), "stagecoach-lock now=%d heartbeat=%d", &now, &hb); err != nil {
		return nil, fmt.Errorf("unexpected lock holder report %q: %v", sc.Text(), err)
	}
	held := &LockHeld{Age: secondsSince(hb, now)}
	rest := strings.TrimSpace(string(stdout[len(sc.Bytes()):]))
	if rest != "" {
		if err := json.Unmarshal([]byte(rest), &held.Info); err != nil {
			return nil, fmt.Errorf("lock info is unreadable: %v", err)
		}
	}
	return held, nil
}

// maxSeconds is the longest time.Duration in whole seconds.
const maxSeconds = time.Duration(math.MaxInt64/int64(time.Second)) * time.Second

// secondsSince is how long before now (both seconds since the epoch, as the
// server's clock prints them) then was: 0 when then is not before now, at
// most maxSeconds however far apart the two are, never overflowing.
func secondsSince(then, now int64) time.Duration {
	if then >= now {
		return 0
	}
	if d := uint64(now) - uint64(then); d <= uint64(maxSeconds/time.Second) {
		return time.Duration(d) * time.Second
	}
	return maxSeconds
}

// Heartbeat renews the lease: it touches info.json only while the lock
// still holds token, and exits ExitLockLost otherwise.
func Heartbeat(l Layout, token string) remote.Command {
	return lockScript.cmd("renew deploy lock", "heartbeat", l.LockDir(), token, strconv.Itoa(ExitLockLost))
}

// Unlock releases the lock if it is ours; it exits ExitLockLost, touching
// nothing, when the lock is gone or held by someone else.
func Unlock(l Layout, token string) remote.Command {
	return lockScript.cmd("release deploy lock", "release", l.LockDir(), token, strconv.Itoa(ExitLockLost))
}

// BreakLock removes a stale lock, but only if it still holds staleToken and
// its heartbeat, by the server's clock, is older than ttl. The lock is first
// renamed aside (one atomic step) and checked there, so a lock another
// deploy took in the meantime is put back rather than deleted. A refusal
// (the lock is fresh again or holds another token) is a
// *LockBreakRefusedError naming the lock's holder now. An empty staleToken
// breaks a lock without info.json: one that an older Stagecoach, which
// made the lock and then wrote into it, left when it was killed part-way.
func BreakLock(l Layout, staleToken string, ttl time.Duration) Op[struct{}] {
	return breakLock(l, "break stale deploy lock", staleToken, strconv.FormatInt(int64(ttl/time.Second), 10))
}

// BreakDeadLock removes the lock of a holder known to be dead (its process
// is gone from the machine it recorded), whatever its heartbeat's age, but
// only if it still holds deadToken; otherwise it refuses as BreakLock does.
func BreakDeadLock(l Layout, deadToken string) Op[struct{}] {
	return breakLock(l, "break dead deploy lock", deadToken, "-1")
}

func breakLock(l Layout, desc, token, ttlSeconds string) Op[struct{}] {
	o := action(lockScript.cmd(desc, "break", l.LockDir(), token, ttlSeconds, strconv.Itoa(ExitLockRefused)))
	o.failed = decodeHolder(ExitLockRefused, "breaking the deploy lock was refused", func(held *LockHeld) error { return &LockBreakRefusedError{Held: held} })
	return o
}
