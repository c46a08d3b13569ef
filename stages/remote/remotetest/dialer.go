package remotetest

import (
	"context"
	"fmt"
	"sync"

	"github.com/stagecoach/stagecoach/stages/remote"
)

// Dialer dials fake hosts by name, for tests of code that connects to
// hosts itself: its Dial has the shape of fleet.DialFunc. The first dial of
// a host returns its Fake; every later one returns a new connection to it
// (Fake.Connect), as a reconnect after a lost connection would. It is safe
// for concurrent use; the zero Dialer has no hosts yet and is ready.
type Dialer struct {
	Inner remote.Runner // the Inner of the hosts the Dialer creates

	mu        sync.Mutex
	hosts     map[string]*Fake
	fails     map[string]error
	dials     map[string]int
	connected map[string]bool
}

// NewDialer returns a Dialer knowing hosts, each by its Target.
func NewDialer(hosts ...*Fake) *Dialer {
	d := &Dialer{}
	for _, h := range hosts {
		d.add(h.Target(), h)
	}
	return d
}

func (d *Dialer) add(name string, h *Fake) {
	if d.hosts == nil {
		d.hosts = map[string]*Fake{}
		d.fails = map[string]error{}
		d.dials = map[string]int{}
		d.connected = map[string]bool{}
	}
	d.hosts[name] = h
}

// Host returns the fake host called name, creating it (with the Dialer's
// Inner) when it does not exist yet, so a test can set rules before the
// code under test dials it.
func (d *Dialer) Host(name string) *Fake {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.hostLocked(name)
}

func (d *Dialer) hostLocked(name string) *Fake {
	h, ok := d.hosts[name]
	if !ok {
		h = New(name, d.Inner)
		d.add(name, h)
	}
	return h
}

// Fail makes every later dial of name fail with err as is, e.g. an
// unreachable host, until Fail(name, nil).
func (d *Dialer) Fail(name string, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.hostLocked(name)
	d.fails[name] = err
}

// Dial connects to the fake host called name, creating it when unknown.
// It fails with the error set by Fail, or when ctx is done.
func (d *Dialer) Dial(ctx context.Context, name string) (remote.Runner, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	h := d.hostLocked(name)
	d.dials[name]++
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("connect to %s: %w", name, err)
	}
	if err := d.fails[name]; err != nil {
		return nil, err
	}
	if !d.connected[name] {
		d.connected[name] = true
		return h, nil
	}
	return h.Connect(), nil
}

// Dials counts the dials of name so far, failed ones included.
func (d *Dialer) Dials(name string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dials[name]
}
