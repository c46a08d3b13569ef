package stages

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/user"
	"time"

	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/server"
)

// Lease timing: a holder refreshes its lock every heartbeatEvery; a lock
// whose heartbeat is older than leaseTTL belongs to a dead deploy and may be
// broken with Options.BreakLock.
const (
	heartbeatEvery = 5 * time.Second
	leaseTTL       = 30 * time.Second
)

// lease is this run's hold of one host's deploy lock.
type lease struct {
	token string
	stop  context.CancelFunc
	done  chan struct{}
	// broke names the holder of a stale lock this run broke, for the history.
	broke string
}

// Hold connects to the hosts, takes their deploy locks and reads their
// state, once for however many nested targets ask; the returned release
// gives the locks back when the outermost holder is done. Locks are released
// on errors and interrupts too: release runs with a context of its own.
func (r *Run) Hold(ctx context.Context) (release func(), err error) {
	r.holds++
	release = func() {
		r.holds--
		if r.holds == 0 {
			r.unlockAll()
			r.Close()
		}
	}
	if r.holds > 1 {
		return release, nil
	}
	if err := r.connect(ctx); err != nil {
		release()
		return func() {}, err
	}
	if err := r.eachHost(ctx, r.Hosts, "lock", r.lock); err != nil {
		release()
		return func() {}, err
	}
	if err := r.eachHost(ctx, r.Hosts, "read state of", r.loadState); err != nil {
		release()
		return func() {}, err
	}
	return release, nil
}

// lock takes h's deploy lock, breaking a stale one only when asked.
func (r *Run) lock(ctx context.Context, h *Host) error {
	info := server.LockInfo{Holder: whoAmI(), PID: os.Getpid(), Started: time.Now().UTC(), Token: randomToken(), Command: r.Command}
	cmd, err := server.Lock(h.Layout, info)
	if err != nil {
		return err
	}
	var broke string
	for attempt := 0; ; attempt++ {
		res, err := h.run(ctx, cmd)
		if err == nil {
			break
		}
		if server.ExitCode(err) != server.ExitLockHeld {
			return err
		}
		held, perr := server.ParseLockHeld(res.Stdout)
		if perr != nil {
			return fmt.Errorf("deploy lock is held and its owner is unreadable: %v", perr)
		}
		if !held.Stale(leaseTTL) || !r.Opts.BreakLock || attempt > 0 {
			msg := held.Describe(leaseTTL)
			if held.Stale(leaseTTL) {
				msg += "; set STAGECOACH_BREAK_LOCK=1 to break it"
			}
			return exitcode.Errorf(exitcode.Locked, "%s", msg)
		}
		if _, err := h.run(ctx, server.BreakLock(h.Layout, held.Info.Token, leaseTTL)); err != nil {
			return fmt.Errorf("break stale lock: %w", err)
		}
		broke = fmt.Sprintf("%s (pid %d) since %s", held.Info.Holder, held.Info.PID, held.Info.Started.Format(time.RFC3339))
		h.Log.Warnf("broke stale deploy lock of %s", broke)
	}
	hbCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	h.lease = &lease{token: info.Token, stop: stop, done: make(chan struct{}), broke: broke}
	go r.heartbeat(hbCtx, h, h.lease)
	return nil
}

// heartbeat refreshes the lease until stopped, so a live deploy's lock is
// never taken for a dead one's.
func (r *Run) heartbeat(ctx context.Context, h *Host, l *lease) {
	defer close(l.done)
	t := time.NewTicker(heartbeatEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := h.Runner.Run(ctx, server.Heartbeat(h.Layout, l.token)); err != nil && ctx.Err() == nil {
				h.Log.Warnf("deploy lock heartbeat failed: %v", err)
			}
		}
	}
}

// unlockAll releases every lock this run holds, with a fresh short context
// so that an interrupted run still cleans up.
func (r *Run) unlockAll() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, h := range r.Hosts {
		if h.lease == nil {
			continue
		}
		h.lease.stop()
		<-h.lease.done
		_, err := h.Runner.Run(ctx, server.Unlock(h.Layout, h.lease.token))
		if err != nil && server.ExitCode(err) < 0 && ctx.Err() == nil {
			// The connection is gone (a network cut, a killed sshd), not
			// the lock: release it over a new one rather than leave the
			// next deploy locked out until the lease expires.
			if err = r.reconnect(ctx, h); err == nil {
				_, err = h.Runner.Run(ctx, server.Unlock(h.Layout, h.lease.token))
			}
		}
		if err != nil {
			h.Log.Warnf("release deploy lock: %v", err)
		}
		h.lease = nil
	}
}

func whoAmI() string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	return name + "@" + hostName()
}

func randomToken() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}
