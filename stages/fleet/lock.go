package fleet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/user"
	"sync"
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
}

// Locked reports whether this run holds h's deploy lock.
func (h *Host) Locked() bool { return h.lease != nil }

// Lock takes h's deploy lock for command, breaking a stale one only when
// breakStale is set, and keeps it alive with a heartbeat until Unlock.
func (f *Fleet) Lock(ctx context.Context, h *Host, command string, breakStale bool) error {
	return f.lock(ctx, h, command, breakStale, nil)
}

// Hold takes h's deploy lock as Lock does and reads h's state under it (see
// LoadState for app), in the same round trip when the lock is free.
func (f *Fleet) Hold(ctx context.Context, h *Host, command string, breakStale bool, app string) error {
	read := server.ReadLive(h.Layout)
	var live server.Live
	var readErr error
	err := f.lock(ctx, h, command, breakStale, func(take server.Op[struct{}]) error {
		results, errs := h.RunBatch(ctx, take.Cmd, read.Cmd)
		live, readErr = read.Decode(results[1], errs[1])
		_, err := take.Decode(results[0], errs[0])
		return err
	})
	if err != nil {
		return err
	}
	if errors.Is(readErr, remote.ErrSkipped) {
		// The lock was taken only after breaking a stale one.
		return h.LoadState(ctx, app)
	}
	if readErr != nil {
		return readErr
	}
	return h.setLive(live, app)
}

// lock is Lock; first, when set, makes the first attempt to take it.
func (f *Fleet) lock(ctx context.Context, h *Host, command string, breakStale bool, first func(server.Op[struct{}]) error) error {
	info := server.LockInfo{Holder: WhoAmI(), PID: os.Getpid(), Started: f.Now().UTC(), Token: randomToken(), Command: command}
	take, err := server.Lock(h.Layout, info)
	if err != nil {
		return err
	}
	ttl := f.Lease.TTL
	var broke string
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
			return err
		}
		held := locked.Held
		if !held.Stale(ttl) || !breakStale || attempt > 0 {
			msg := held.Describe(ttl)
			if held.Stale(ttl) {
				msg += "; set STAGECOACH_BREAK_LOCK=1 to break it"
			}
			return exitcode.Errorf(exitcode.Locked, "%s", msg)
		}
		if _, err := h.Run(ctx, server.BreakLock(h.Layout, held.Info.Token, ttl)); err != nil {
			return fmt.Errorf("break stale lock: %w", err)
		}
		broke = fmt.Sprintf("%s (pid %d) since %s", held.Info.Holder, held.Info.PID, held.Info.Started.Format(time.RFC3339))
		h.Log.Warnf("broke stale deploy lock of %s", broke)
	}
	hbCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	h.lease = &lease{token: info.Token, stop: stop, done: make(chan struct{}), broke: broke}
	go f.heartbeat(hbCtx, h, h.lease)
	return nil
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
			if _, err := r.Run(ctx, server.Heartbeat(h.Layout, l.token)); err != nil && ctx.Err() == nil {
				h.Log.Warnf("deploy lock heartbeat failed: %v", err)
			}
		}
	}
}

// Unlock releases every lock this run holds on hosts, with a fresh short
// context so that an interrupted run still cleans up. A lock whose host's
// connection is gone is released over a new one.
func (f *Fleet) Unlock(hosts []*Host) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, h := range hosts {
		if h.lease == nil {
			continue
		}
		h.lease.stop()
		<-h.lease.done
		_, err := h.Runner.Run(ctx, server.Unlock(h.Layout, h.lease.token))
		if err != nil && remote.IsConnectionLost(err) && ctx.Err() == nil {
			// The connection is gone (a network cut, a killed sshd), not
			// the lock: release it over a new one rather than leave the
			// next deploy locked out until the lease expires.
			if err = f.Reconnect(ctx, h); err == nil {
				_, err = h.Runner.Run(ctx, server.Unlock(h.Layout, h.lease.token))
			}
		}
		if err != nil {
			h.Log.Warnf("release deploy lock: %v", err)
		}
		h.lease = nil
	}
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

func randomToken() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}
