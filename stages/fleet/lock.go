package fleet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/server"
)

// LeaseTiming says how a deploy lock is kept: its holder refreshes it every
// Heartbeat; a lock whose heartbeat is older than TTL belongs to a dead
// deploy and may be broken on request.
type LeaseTiming struct {
	Heartbeat time.Duration
	TTL       time.Duration
}

// DefaultLease is the lease timing of real deploys.
var DefaultLease = LeaseTiming{Heartbeat: 5 * time.Second, TTL: 30 * time.Second}

// lease is this run's hold of one host's deploy lock.
type lease struct {
	token string
	stop  context.CancelFunc
	done  chan struct{}
	// broke names the holder of a stale lock this run broke, for the history.
	broke string
	// mu orders the heartbeat's reads of the host's Runner after a
	// Reconnect's replacing it.
	mu sync.Mutex
	// releasing is set while a batch that ends with the lock's release
	// runs (UnlockAfter), and after one whose answer never came: a
	// heartbeat that fails then may only have come after the release.
	releasing atomic.Bool
}

// Locked reports whether this run holds h's deploy lock.
func (h *Host) Locked() bool { return h.lease != nil }

// Lock takes h's deploy lock for command, breaking a stale one only when
// breakStale is set, and keeps it alive with a heartbeat until Unlock.
func (f *Fleet) Lock(ctx context.Context, h *Host, command string, breakStale bool) error {
	return f.lock(ctx, h, command, breakStale, nil)
}

// Hold takes h's deploy lock as Lock does and reads h's state under it (see
// LoadState for app), in the same round trip when the lock is free. For a
// command that deploys (see Deploys), the same round trip looks for files
// Stagecoach did not create on a root no deploy has used, and Hold refuses
// such a root with a *server.ForeignTreeError, holding the lock still.
func (f *Fleet) Hold(ctx context.Context, h *Host, command string, breakStale bool, app string) error {
	read := server.ReadLive(h.Layout)
	guard := Deploys(command)
	look := server.ReadForeign(h.Layout, f.Databases)
	// A deploy's first round trip also readies the host for the upload
	// (ship.Prepare), which then need not take one of its own.
	prep := server.PrepareDeployed(h.Layout)
	var live server.Live
	var found server.Foreign
	var readErr, lookErr, prepErr error
	err := f.lock(ctx, h, command, breakStale, func(take server.Op[struct{}]) error {
		cmds := []remote.Command{take.Cmd, read.Cmd}
		if guard {
			cmds = append(cmds, look.Cmd, prep.Cmd)
		}
		results, errs := h.RunBatch(ctx, cmds...)
		live, readErr = read.Decode(results[1], errs[1])
		if guard {
			found, lookErr = look.Decode(results[2], errs[2])
			var p server.Prepared
			if p, prepErr = prep.Decode(results[3], errs[3]); prepErr == nil && p.Done {
				h.Prepared, h.PreparedAt = &p.Readiness, time.Now()
			}
		}
		_, err := take.Decode(results[0], errs[0])
		return err
	})
	if err != nil {
		return err
	}
	if prepErr != nil && !errors.Is(prepErr, remote.ErrSkipped) {
		return prepErr
	}
	if errors.Is(readErr, remote.ErrSkipped) {
		// The lock was taken only after breaking a stale one.
		if err := h.LoadState(ctx, app); err != nil {
			return err
		}
		if guard {
			found, lookErr = server.Run(ctx, h, look)
		}
	} else if readErr != nil {
		return readErr
	} else if err := h.setLive(live, app); err != nil {
		return err
	}
	if lookErr != nil {
		return lookErr
	}
	return found.Refusal(h.Layout.Root)
}

// lock is Lock; first, when set, makes the first attempt to take it.
//
// A lock held by another deploy is broken at once, with a warning, when
// its holder is provably dead (see holderDead); a stale one only when
// breakStale is set. Once per call: a lock retaken after this run broke
// one, or found changed by a break, is not broken again. Else, for up to
// f.LockWait, the lock is polled until it is free or breakable.
func (f *Fleet) lock(ctx context.Context, h *Host, command string, breakStale bool, first func(server.Op[struct{}]) error) error {
	m := thisMachine()
	pid := f.PID
	if pid == 0 {
		pid = os.Getpid()
	}
	info := server.LockInfo{Holder: WhoAmI(), PID: pid, BootID: m.boot, PIDNS: m.pidNS,
		Started: f.Now().UTC(), Token: randomToken(), Command: command}
	take, err := server.Lock(h.Layout, info)
	if err != nil {
		return err
	}
	ttl := f.Lease.TTL
	var (
		broke        string
		breakRefused bool      // a break found the lock changed
		deadline     time.Time // of the wait, set at the first refusal
		waiting      bool      // the wait was logged
	)
	for attempt := 0; ; attempt++ {
		if attempt == 0 && first != nil {
			err = first(take)
		} else {
			_, err = server.Run(ctx, h, take)
		}
		if err == nil {
			break
		}
		var locked *server.LockHeldError
		if !errors.As(err, &locked) {
			f.dropUnanswered(ctx, h, info.Token, err)
			return err
		}
		held := locked.Held
		if broke == "" && !breakRefused {
			if brk, ok := breaking(h.Layout, held, ttl, breakStale); ok {
				_, err := server.Run(ctx, h, brk.op)
				var changed *server.LockBreakRefusedError
				switch {
				case errors.As(err, &changed):
					// Released, renewed or taken by another deploy since
					// it was read: taken or waited for as any lock is.
					breakRefused = true
					h.Log.Infof("%v", changed)
					continue
				case err != nil:
					return err
				}
				broke = brk.what
				h.Log.Warnf("%s", brk.warning)
				continue
			}
		}
		now := f.Now()
		if deadline.IsZero() {
			deadline = now.Add(f.LockWait)
		}
		left := deadline.Sub(now)
		if left <= 0 {
			return lockedError(held, ttl, breakStale, broke != "", f.LockWait)
		}
		if !waiting {
			waiting = true
			what := "to be released"
			if breakStale && broke == "" {
				what = "to be released or to go stale"
			}
			h.Log.Infof("waiting up to %s for the deploy lock %s: %s", f.LockWait, what, held.Describe(ttl))
		}
		if err := f.sleep(ctx, min(f.lockPoll(), left)); err != nil {
			return exitcode.With(exitcode.Locked, fmt.Errorf("stopped waiting for the deploy lock (%s): %w", held.Describe(ttl), err))
		}
	}
	hbCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	h.lease = &lease{token: info.Token, stop: stop, done: make(chan struct{}), broke: broke}
	go f.heartbeat(hbCtx, h, h.lease)
	return nil
}

// lockBreak is how a held lock is broken.
type lockBreak struct {
	op      server.Op[struct{}]
	what    string // whose lock, for the lease's record
	warning string
}

// breaking says whether and how a lock held by another is broken at once:
// one without holder info once stale, a dead holder's whatever its age, a
// stale one when breakStale is set.
func breaking(l server.Layout, held *server.LockHeld, ttl time.Duration, breakStale bool) (lockBreak, bool) {
	switch {
	case held.Info.Token == "" && held.Stale(ttl):
		// No info: an older take, which made the lock and then wrote
		// into it, was killed part-way. No live deploy leaves a lock so
		// for longer than an instant (today's takes put it in place
		// whole), so once past the lease it is dead.
		return lockBreak{server.BreakLock(l, "", ttl), "a deploy killed while taking the lock",
			fmt.Sprintf("broke a deploy lock without holder info (%s old): a deploy of an older Stagecoach was killed while taking it", held.Age.Round(time.Second))}, true
	case holderDead(held.Info):
		who := describeHolder(held.Info)
		return lockBreak{server.BreakDeadLock(l, held.Info.Token), who + ", process gone",
			"broke the deploy lock of " + who + ": that deploy is dead, its process is gone from this machine"}, true
	case breakStale && held.Stale(ttl):
		who := describeHolder(held.Info)
		return lockBreak{server.BreakLock(l, held.Info.Token, ttl), who, "broke stale deploy lock of " + who}, true
	}
	return lockBreak{}, false
}

// dropUnanswered releases the lock this run may hold on h after taking it
// failed with err: an interrupt or a lost connection may have cut the
// answer of a take that ran to its end on the host, and nobody would
// release that lock. Only a lock holding token is removed, so this is
// harmless when the take never ran.
func (f *Fleet) dropUnanswered(ctx context.Context, h *Host, token string, err error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if errors.Is(err, remote.ErrConnectionLost) {
		if f.Reconnect(ctx, h) != nil {
			return
		}
	}
	if _, err := h.Runner.Run(ctx, server.Unlock(h.Layout, token)); err == nil {
		h.Log.Debugf("released the deploy lock taken by the attempt that failed")
	}
}

// lockedError is the error of a lock this run could not take: who holds
// it, and what the run's options did about it.
func lockedError(held *server.LockHeld, ttl time.Duration, breakStale, broke bool, waited time.Duration) error {
	msg := held.Describe(ttl)
	if held.Info.Token == "" && !held.Stale(ttl) {
		// See lock: such a lock is broken without asking once stale.
		return exitcode.Errorf(exitcode.Locked, "deploy lock without holder info (%s old): a deploy of an older Stagecoach is taking it, or was killed while taking it; "+
			"once %s old it is taken for dead and broken by the next deploy, in %s", held.Age.Round(time.Second), ttl, held.BreakableIn(ttl))
	}
	switch {
	case held.Stale(ttl) && broke:
		msg += "; taken again after this deploy broke a stale lock, and not broken twice"
	case held.Stale(ttl) && !breakStale:
		msg += "; set STAGECOACH_BREAK_LOCK=1 to break it"
	case !held.Stale(ttl) && breakStale:
		msg += fmt.Sprintf("; STAGECOACH_BREAK_LOCK=1 was not used: the holder is alive (heartbeat %s ago)", held.Age.Round(time.Second))
	}
	if waited > 0 {
		msg += fmt.Sprintf("; gave up after waiting %s", waited)
	}
	return exitcode.Errorf(exitcode.Locked, "%s", msg)
}

// describeHolder names a lock's holder for the log and the history.
func describeHolder(info server.LockInfo) string {
	return fmt.Sprintf("%s (pid %d) since %s", info.Holder, info.PID, info.Started.Format(time.RFC3339))
}

// lockPoll is how often a waiting run asks for the lock again: a
// holder's lock changes no faster than its heartbeat.
func (f *Fleet) lockPoll() time.Duration {
	return max(f.Lease.Heartbeat, time.Millisecond)
}

// sleep waits d or until ctx ends, through f.Sleep when set.
func (f *Fleet) sleep(ctx context.Context, d time.Duration) error {
	if f.Sleep != nil {
		return f.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// heartbeat refreshes the lease until stopped, so a live deploy's lock is
// never taken for a dead one's.
func (f *Fleet) heartbeat(ctx context.Context, h *Host, l *lease) {
	defer close(l.done)
	t := time.NewTicker(f.Lease.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			l.mu.Lock()
			r := h.Runner
			l.mu.Unlock()
			// A heartbeat may wait for a busy shell (a long staging)
			// rather than cost a session: up to a third of the TTL, so
			// the lease, renewed at most that and an interval ago, stays
			// fresh.
			var err error
			if p, ok := r.(remote.PatientRunner); ok {
				_, err = p.RunPatient(ctx, server.Heartbeat(h.Layout, l.token), f.Lease.TTL/3)
			} else {
				_, err = r.Run(ctx, server.Heartbeat(h.Layout, l.token))
			}
			switch {
			case err == nil || ctx.Err() != nil:
			case l.releasing.Load():
				h.Log.Debugf("deploy lock heartbeat failed while the lock is released: %v", err)
			default:
				h.Log.Warnf("deploy lock heartbeat failed: %v", err)
			}
		}
	}
}

// Unlock releases every lock this run holds on hosts, with a fresh short
// context so that an interrupted run still cleans up. A lock whose host's
// connection is gone is released over a new one.
func (f *Fleet) Unlock(hosts []*Host) {
	// At most Parallel hosts at once, as every other step: one after
	// another, a fleet's round trips would add up (a thousand hosts 50 ms
	// away: 50 s), and a shared deadline would leave the last hosts
	// locked. Not through Each, which would note the release as the
	// host's work.
	sem := make(chan struct{}, max(f.Parallel, 1))
	var wg sync.WaitGroup
	for _, h := range hosts {
		if h.lease == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			f.unlock(h)
		}()
	}
	wg.Wait()
}

// unlock stops h's heartbeat and releases its lock, with a deadline of
// its own.
func (f *Fleet) unlock(h *Host) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h.lease.stop()
	<-h.lease.done
	_, err := h.Runner.Run(ctx, server.Unlock(h.Layout, h.lease.token))
	var exit *remote.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.Code == server.ExitLockLost) && ctx.Err() == nil {
		// Once more rather than leave the next deploy locked out
		// until the lease expires: a command can fail once, and when
		// the connection is gone (a network cut, a killed sshd), not
		// the lock, over a new one.
		if !remote.IsConnectionLost(err) {
			err = nil
		} else {
			err = f.Reconnect(ctx, h)
		}
		if err == nil {
			_, err = h.Runner.Run(ctx, server.Unlock(h.Layout, h.lease.token))
		}
	}
	if err != nil {
		h.Log.Warnf("release deploy lock: %v", err)
	}
	h.lease = nil
}

// UnlockAfter runs cmds on h, then releases the deploy lock this run holds
// there, in one round trip (see RunBatch); it returns the results of cmds.
// The lock goes only once every one of cmds succeeded: else it stays held,
// for Unlock to release. The heartbeat goes on while the batch runs, since
// cmds may take long (a release's activation: a migration, a restart), and
// stops once the lock is gone.
func (f *Fleet) UnlockAfter(ctx context.Context, h *Host, cmds ...remote.Command) ([]remote.Result, []error) {
	l := h.lease
	if l == nil {
		return h.RunBatch(ctx, cmds...)
	}
	l.releasing.Store(true)
	results, errs := h.RunBatch(ctx, append(cmds, server.Unlock(h.Layout, l.token))...)
	n := len(cmds)
	var exit *remote.ExitError
	switch err := errs[n]; {
	case err == nil || errors.As(err, &exit) && exit.Code == server.ExitLockLost:
		l.stop()
		<-l.done
		h.lease = nil
	case errors.Is(err, remote.ErrSkipped):
		l.releasing.Store(false) // held still, and kept alive
	default:
		// Released or not, no one can tell: Unlock tries again.
		h.Log.Debugf("release deploy lock: %v; trying again", err)
	}
	return results[:n], errs[:n]
}

// WhoAmI names the deploying user and machine, for locks and the history.
func WhoAmI() string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	return name + "@" + MachineName()
}

// MachineName is the deploying machine's name, for the deploy history.
func MachineName() string {
	name, err := os.Hostname()
	if err != nil {
		return "unknown"
	}
	return name
}

// machine is what tells this machine's processes apart from every other
// machine's, boot's and PID namespace's.
type machine struct {
	host  string // os.Hostname
	boot  string // Linux: /proc/sys/kernel/random/boot_id; "" elsewhere
	pidNS string // Linux: the PID namespace, "pid:[4026531836]"; "" elsewhere
}

var thisMachine = sync.OnceValue(func() machine {
	m := machine{}
	if host, err := os.Hostname(); err == nil {
		m.host = host
	}
	if b, err := os.ReadFile("/proc/sys/kernel/random/boot_id"); err == nil {
		m.boot = strings.TrimSpace(string(b))
	}
	if ns, err := os.Readlink("/proc/self/ns/pid"); err == nil {
		m.pidNS = ns
	}
	return m
})

// BootID is this machine's boot id (Linux), "" where there is none: locks
// of deploys from such machines are never broken automatically.
func BootID() string { return thisMachine().boot }

// holderDead reports whether a lock's holder is provably dead: it ran on
// this machine (its hostname), in this boot and PID namespace, and its PID
// is gone. The PID namespace keeps a container that shares the machine's
// hostname (host networking) from taking the deploys of the host, or of
// another container, for dead. A PID reused since by another process looks
// alive: the safe direction. Without a boot id, nothing is proven.
func holderDead(info server.LockInfo) bool {
	m := thisMachine()
	if info.PID <= 0 || m.host == "" || m.boot == "" || m.pidNS == "" {
		return false
	}
	at := strings.LastIndex(info.Holder, "@")
	if at < 0 || info.Holder[at+1:] != m.host || info.BootID != m.boot || info.PIDNS != m.pidNS {
		return false
	}
	return errors.Is(syscall.Kill(info.PID, 0), syscall.ESRCH)
}

func randomToken() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}
