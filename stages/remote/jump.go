package remote

import (
	"context"
	"errors"
	"strconv"
	"sync"

	"golang.org/x/crypto/ssh"
)

// JumpPool shares the connections to bastions (ProxyJump hosts) between
// the runners dialled through them, so a deploy connects to each bastion
// once however many hosts sit behind it. A bastion connection is closed
// when the last runner using it closes. The zero value is not usable;
// call NewJumpPool.
type JumpPool struct {
	mu    sync.Mutex
	conns map[string]*jumpConn
	ids   int64
}

// NewJumpPool returns an empty pool.
func NewJumpPool() *JumpPool { return &JumpPool{conns: map[string]*jumpConn{}} }

// jumpConn is one bastion connection and the runners holding it.
type jumpConn struct {
	id    int64
	key   string
	label string // "bastion i of n, user@host:port", for messages
	refs  int

	ready  chan struct{} // closed once dialled or failed
	client *ssh.Client
	err    error
	dead   chan struct{} // closed when the connection has ended
	stop   chan struct{} // ends its keepalive
}

// acquire returns the connection to h reached through parent (nil: h is
// the first bastion), dialling it unless the pool holds a live one, and
// whether this call opened it. Every success is paired with a release.
func (p *JumpPool) acquire(ctx context.Context, parent *jumpConn, h *hop, label string) (*jumpConn, bool, error) {
	// Keyed by the parent connection's id too: a chain through a bastion
	// that was dialled again is a new chain.
	key := h.key()
	if parent != nil {
		key = strconv.FormatInt(parent.id, 10) + ">" + key
	}
	for {
		p.mu.Lock()
		c := p.conns[key]
		if c == nil {
			p.ids++
			c = &jumpConn{id: p.ids, key: key, label: label, refs: 1, ready: make(chan struct{})}
			p.conns[key] = c
			p.mu.Unlock()
			return c, true, p.dial(ctx, c, parent, h)
		}
		c.refs++
		p.mu.Unlock()

		select {
		case <-c.ready:
		case <-ctx.Done():
			p.release(c)
			return nil, false, ctx.Err()
		}
		if c.err != nil {
			p.release(c)
			// Another runner's dial was cancelled: that is not this one's
			// failure.
			if errors.Is(c.err, context.Canceled) && ctx.Err() == nil {
				continue
			}
			return nil, false, c.err
		}
		select {
		case <-c.dead:
			// Lost since: forget it and dial anew.
			p.forget(c)
			p.release(c)
			continue
		default:
			return c, false, nil
		}
	}
}

// dial opens c, publishing the result to the runners waiting for it.
func (p *JumpPool) dial(ctx context.Context, c *jumpConn, parent *jumpConn, h *hop) error {
	var via *ssh.Client
	viaName := ""
	if parent != nil {
		via, viaName = parent.client, parent.label
	}
	client, err := dialHop(ctx, via, viaName, h)
	if err != nil {
		p.forget(c)
		c.err = err
		close(c.ready)
		p.release(c)
		return err
	}
	c.client = client
	c.dead = make(chan struct{})
	c.stop = make(chan struct{})
	go func() { client.Wait(); close(c.dead) }()
	if h.keepAlive > 0 {
		// A dead bastion is noticed here too, so a reconnect dials it
		// again instead of asking a connection that no longer answers.
		go keepAlive(client, c.label, h.keepAlive, h.keepAliveMax, c.stop, func(error) { client.Close() })
	}
	close(c.ready)
	return nil
}

// forget removes c from the pool, so the next acquire dials anew.
func (p *JumpPool) forget(c *jumpConn) {
	p.mu.Lock()
	if p.conns[c.key] == c {
		delete(p.conns, c.key)
	}
	p.mu.Unlock()
}

// release drops one hold on c, closing it with the last.
func (p *JumpPool) release(c *jumpConn) {
	p.mu.Lock()
	c.refs--
	last := c.refs == 0
	if last && p.conns[c.key] == c {
		delete(p.conns, c.key)
	}
	p.mu.Unlock()
	if last && c.client != nil {
		close(c.stop)
		c.client.Close()
	}
}
