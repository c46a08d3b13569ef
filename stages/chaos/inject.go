// Package chaos injects faults into deploys and checks, afterwards, the
// invariants no fault may break: every host's `current` names a complete
// release matching its manifest, the database is the one before or the
// one after the migration, never a mix, the hosts agree,
// no lock or staging is left behind. An Injector wraps the connections a
// fleet dials, so the real scripts run against the hosts and a fault
// strikes at a chosen remote call; Inspect reads a deploy root directly.
package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/stagecoach/stagecoach/stages/remote"
)

// Kind is a kind of fault.
type Kind int

// The faults an Injector can inject at a remote call.
const (
	// Fail: the command does not run and exits 1.
	Fail Kind = iota
	// Lost: the connection drops before the command reaches the host.
	Lost
	// LostAfter: the command runs, but the connection drops before its
	// answer comes back.
	LostAfter
	// Timeout: the command hangs and is killed part-way; the client gives
	// the connection up as dead.
	Timeout
	// DiskFull: the command runs with writes to files failing past their
	// first 512 bytes, as on a full disk; an upload fails part-way.
	DiskFull
	// Interrupt: Ctrl-C (the run's context is cancelled) before the call
	// or while it runs.
	Interrupt
	// Crash: the client dies with no cleanup: from this call on, nothing
	// it sends reaches a host, and what runs there is killed or finishes.
	Crash
	// ClockJump: the client's clock jumps by hours, either way.
	ClockJump
	nKinds
)

// Kinds is every kind of fault.
var Kinds = func() []Kind {
	var ks []Kind
	for k := Kind(0); k < nKinds; k++ {
		ks = append(ks, k)
	}
	return ks
}()

func (k Kind) String() string {
	return [...]string{"fail", "lost", "lost-after", "timeout", "disk-full", "interrupt", "crash", "clock-jump"}[k]
}

// When is where in its call a fault strikes.
type When int

// Where a fault strikes: before the call reaches the host, once it has
// run, or while it runs (after Fault.Delay).
const (
	Before When = iota
	After
	During
)

func (w When) String() string { return [...]string{"before", "after", "during"}[w] }

// Fault is one planned fault: Kind at the Call-th remote operation
// (dials included, 1-based) on Host.
type Fault struct {
	Kind  Kind
	Host  string
	Call  int
	When  When          // Interrupt and Crash only
	Delay time.Duration // During: how long the call runs first; Timeout: before it is killed
	Jump  time.Duration // ClockJump: by how much
}

func (f Fault) String() string {
	s := fmt.Sprintf("%s at call %d of %s", f.Kind, f.Call, f.Host)
	switch {
	case f.Kind == ClockJump:
		s += fmt.Sprintf(" (%+v)", f.Jump)
	case f.Kind == Timeout || f.When == During && (f.Kind == Interrupt || f.Kind == Crash):
		s += fmt.Sprintf(" (during, %v)", f.Delay)
	case f.Kind == Interrupt || f.Kind == Crash:
		s += " (" + f.When.String() + ")"
	}
	return s
}

// ErrInjected is wrapped by the errors of injected failures.
var ErrInjected = errors.New("injected fault")

// ErrCrashed is what a crashed client's later operations fail with; none
// of them reaches a host.
var ErrCrashed = errors.New("client crashed")

// Dialer has the shape of fleet.DialFunc.
type Dialer func(ctx context.Context, name string) (remote.Runner, error)

// Injector strikes planned faults into the connections it dials. It is
// safe for concurrent use. Set Cancel to the run's cancel function for
// Interrupt.
type Injector struct {
	Inner  Dialer
	Cancel context.CancelFunc

	mu      sync.Mutex
	planned []Fault
	fired   []Fault
	calls   map[string]int
	jump    time.Duration
	crashed bool
	crash   chan struct{} // closed at the crash
}

// NewInjector returns an Injector dialing through inner that will strike
// faults.
func NewInjector(inner Dialer, faults ...Fault) *Injector {
	return &Injector{Inner: inner, planned: faults, calls: map[string]int{}, crash: make(chan struct{})}
}

// Fired is the faults that struck so far.
func (in *Injector) Fired() []Fault {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]Fault(nil), in.fired...)
}

// Crashed reports whether the client crashed.
func (in *Injector) Crashed() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.crashed
}

// Calls is how many operations host has been asked for (dials included).
func (in *Injector) Calls(host string) int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.calls[host]
}

// Now is the client's clock, jumps included.
func (in *Injector) Now() time.Time {
	in.mu.Lock()
	defer in.mu.Unlock()
	return time.Now().Add(in.jump)
}

// next counts a call on host and returns the fault planned for it, if
// any; it applies a clock jump at once. ok is false when the client has
// crashed: the call must not reach the host.
func (in *Injector) next(host string) (f Fault, hit, ok bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.crashed {
		return Fault{}, false, false
	}
	in.calls[host]++
	for i, p := range in.planned {
		if p.Host == host && p.Call == in.calls[host] {
			in.planned = append(in.planned[:i:i], in.planned[i+1:]...)
			in.fired = append(in.fired, p)
			if p.Kind == ClockJump {
				in.jump += p.Jump
				return Fault{}, false, true
			}
			return p, true, true
		}
	}
	return Fault{}, false, true
}

// doCrash makes the client dead: later calls fail with ErrCrashed without
// reaching a host and calls in flight are cancelled, their commands killed.
func (in *Injector) doCrash() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if !in.crashed {
		in.crashed = true
		close(in.crash)
	}
}

func (in *Injector) interrupt() {
	if in.Cancel != nil {
		in.Cancel()
	}
}

// Dial connects to name through Inner, unless a fault strikes the dial:
// Fail, Lost and Timeout make it fail as an unreachable host; Interrupt
// and Crash strike as they would at any call.
func (in *Injector) Dial(ctx context.Context, name string) (remote.Runner, error) {
	f, hit, ok := in.next(name)
	if !ok {
		return nil, fmt.Errorf("connect to %s: %w", name, ErrCrashed)
	}
	if hit {
		switch f.Kind {
		case Interrupt:
			in.interrupt()
		case Crash:
			in.doCrash()
			return nil, fmt.Errorf("connect to %s: %w", name, ErrCrashed)
		default:
			return nil, fmt.Errorf("connect to %s: %w: connection refused", name, ErrInjected)
		}
	}
	r, err := in.Inner(ctx, name)
	if err != nil {
		return nil, err
	}
	return &conn{in: in, host: name, inner: r}, nil
}

// conn is one connection dialed by an Injector.
type conn struct {
	in    *Injector
	host  string
	inner remote.Runner

	mu   sync.Mutex
	lost bool
}

func (c *conn) Target() string      { return c.inner.Target() }
func (c *conn) Stats() remote.Stats { return c.inner.Stats() }
func (c *conn) Close() error        { return c.inner.Close() }

func (c *conn) isLost() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lost
}

func (c *conn) lose() {
	c.mu.Lock()
	c.lost = true
	c.mu.Unlock()
}

// call runs op, one operation described by desc, with the fault planned
// for it. script, when non-nil, lets DiskFull change a command's script;
// cutInput, an upload's input.
func (c *conn) call(ctx context.Context, desc string, op func(ctx context.Context) error, script *string, cutInput func()) error {
	in := c.in
	if c.isLost() {
		return fmt.Errorf("%s on %s: %w", desc, c.host, remote.ErrConnectionLost)
	}
	f, hit, ok := in.next(c.host)
	if !ok {
		return fmt.Errorf("%s on %s: %w", desc, c.host, ErrCrashed)
	}
	// A crash kills what is in flight: a killed client's sessions end.
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		select {
		case <-in.crash:
			stop()
		case <-ctx.Done():
		}
	}()
	lost := func() error {
		c.lose()
		c.inner.Close()
		return fmt.Errorf("%s on %s: %w", desc, c.host, remote.ErrConnectionLost)
	}
	if !hit {
		return c.result(desc, op(ctx))
	}
	switch f.Kind {
	case Fail:
		return &remote.ExitError{Target: c.host, Desc: desc, Code: 1, Stderr: ErrInjected.Error()}
	case Lost:
		return lost()
	case LostAfter:
		op(ctx)
		return lost()
	case Timeout:
		tctx, cancel := context.WithTimeout(ctx, f.Delay)
		defer cancel()
		op(tctx)
		return lost()
	case DiskFull:
		if script != nil {
			// A write past the limit fails with EFBIG, as one on a full
			// disk fails with ENOSPC; SIGXFSZ is ignored so that the
			// writers see the error rather than die of the signal.
			*script = "trap '' XFSZ; ulimit -f 1\n" + *script
		}
		if cutInput != nil {
			cutInput()
		}
		return c.result(desc, op(ctx))
	case Interrupt, Crash:
		strike := in.interrupt
		if f.Kind == Crash {
			strike = in.doCrash
		}
		switch f.When {
		case Before:
			strike()
			if f.Kind == Crash {
				return fmt.Errorf("%s on %s: %w", desc, c.host, ErrCrashed)
			}
		case During:
			t := time.AfterFunc(f.Delay, strike)
			defer t.Stop()
		}
		err := op(ctx)
		if f.When == After {
			strike()
		}
		if f.Kind == Crash {
			return fmt.Errorf("%s on %s: %w", desc, c.host, ErrCrashed)
		}
		return c.result(desc, err)
	}
	return c.result(desc, op(ctx))
}

// result is err, unless the client crashed meanwhile: a dead client
// learns nothing more.
func (c *conn) result(desc string, err error) error {
	if c.in.Crashed() {
		return fmt.Errorf("%s on %s: %w", desc, c.host, ErrCrashed)
	}
	return err
}

func (c *conn) Run(ctx context.Context, cmd remote.Command) (remote.Result, error) {
	var res remote.Result
	desc := cmd.Desc
	if desc == "" {
		desc, _, _ = strings.Cut(strings.TrimSpace(cmd.Script), "\n")
	}
	// Script is what a fault is injected into: it alone runs.
	cmd.Inline = ""
	err := c.call(ctx, desc, func(ctx context.Context) error {
		var err error
		res, err = c.inner.Run(ctx, cmd)
		return err
	}, &cmd.Script, nil)
	if err != nil && res.ExitCode == 0 {
		res.ExitCode = -1
	}
	return res, err
}

func (c *conn) Upload(ctx context.Context, r io.Reader, path string, progress func(n int)) error {
	desc := "upload " + path
	return c.call(ctx, desc, func(ctx context.Context) error {
		return c.inner.Upload(ctx, r, path, progress)
	}, nil, func() { r = &fullDisk{r: r, left: 4096} })
}

func (c *conn) ReadFile(ctx context.Context, path string) ([]byte, error) {
	var b []byte
	err := c.call(ctx, "read "+path, func(ctx context.Context) error {
		var err error
		b, err = c.inner.ReadFile(ctx, path)
		return err
	}, nil, nil)
	return b, err
}

// fullDisk passes left bytes of r, then fails as a write to a full disk.
type fullDisk struct {
	r    io.Reader
	left int
}

func (d *fullDisk) Read(p []byte) (int, error) {
	if d.left <= 0 {
		return 0, fmt.Errorf("write: %w", syscall.ENOSPC)
	}
	if len(p) > d.left {
		p = p[:d.left]
	}
	n, err := d.r.Read(p)
	d.left -= n
	return n, err
}
