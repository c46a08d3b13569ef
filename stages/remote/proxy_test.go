package remote_test

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/testenv"
	"golang.org/x/crypto/ssh/knownhosts"
)

// proxy forwards loopback TCP connections to a host, counting them, and can
// freeze traffic to imitate a peer that stopped answering, or delay it to
// imitate a distant one.
type proxy struct {
	ln       net.Listener
	accepted atomic.Int64
	delay    atomic.Int64 // nanoseconds each chunk waits, each way
	mu       sync.Mutex
	frozen   chan struct{} // closed while traffic flows
}

func startProxy(t testing.TB, to string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, frozen: make(chan struct{})}
	close(p.frozen)
	var conns sync.WaitGroup
	t.Cleanup(func() { ln.Close(); conns.Wait() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.accepted.Add(1)
			up, err := net.Dial("tcp", to)
			if err != nil {
				c.Close()
				continue
			}
			conns.Add(2)
			pipe := func(dst, src net.Conn) {
				defer conns.Done()
				buf := make([]byte, 32<<10)
				for {
					n, err := src.Read(buf)
					p.mu.Lock()
					gate := p.frozen
					p.mu.Unlock()
					<-gate
					if d := p.delay.Load(); d > 0 && n > 0 {
						time.Sleep(time.Duration(d))
					}
					if n > 0 {
						if _, werr := dst.Write(buf[:n]); werr != nil {
							break
						}
					}
					if err != nil {
						break
					}
				}
				dst.Close()
				src.Close()
			}
			go pipe(up, c)
			go pipe(c, up)
		}
	}()
	return p
}

// freeze stops forwarding until the test ends.
func (p *proxy) freeze(t *testing.T) {
	p.mu.Lock()
	gate := make(chan struct{})
	p.frozen = gate
	p.mu.Unlock()
	t.Cleanup(func() { close(gate) })
}

func (p *proxy) port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// knownHostsFor writes a known_hosts file trusting h's key at addr.
func knownHostsFor(t testing.TB, h *testenv.Host, port int) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "known_hosts")
	line := knownhosts.Line([]string{net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}, h.HostKey)
	if err := os.WriteFile(f, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}
