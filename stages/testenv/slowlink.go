package testenv

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"golang.org/x/crypto/ssh/knownhosts"
)

// SlowLinkOptions describe a network link between a client and a server that
// loopback lacks. The kernels tests run on often have no netem, so a proxy
// in the test's own process imposes them.
type SlowLinkOptions struct {
	Latency time.Duration // added to every chunk, each way: a round trip costs twice this
	Mbit    int           // bandwidth each way in Mbit/s; 0: unlimited
}

// SlowLink is a TCP proxy on a loopback port that forwards to a server through
// a slow link.
type SlowLink struct {
	Addr  string // host:port clients dial instead of the server's
	Host  string // the address part of Addr
	Port  int    // the port part of Addr
	proxy *toxiproxy.Proxy
}

var (
	linkServerOnce sync.Once
	linkServer     *toxiproxy.ApiServer
)

// StartSlowLink starts a toxiproxy proxy in this process on a free loopback
// port, forwarding to upstream (host:port) with o's latency and
// bandwidth, and stops it when the test ends.
func StartSlowLink(t testing.TB, upstream string, o SlowLinkOptions) *SlowLink {
	t.Helper()
	linkServerOnce.Do(func() {
		// The toxics log through zerolog's global logger: keep them quiet.
		zerolog.SetGlobalLevel(zerolog.WarnLevel)
		linkServer = toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	})
	name := fmt.Sprintf("link-%s-%d", upstream, time.Now().UnixNano())
	p := toxiproxy.NewProxy(linkServer, name, "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		t.Fatalf("start link proxy to %s: %v", upstream, err)
	}
	t.Cleanup(p.Stop)
	for _, stream := range []string{"upstream", "downstream"} {
		if o.Latency > 0 {
			addToxic(t, p, stream, "latency", map[string]int64{"latency": o.Latency.Milliseconds()})
		}
		if o.Mbit > 0 {
			// The bandwidth toxic's rate is in KB/s (1,000 bytes).
			addToxic(t, p, stream, "bandwidth", map[string]int64{"rate": int64(o.Mbit) * 1000 / 8})
		}
	}
	host, port, err := net.SplitHostPort(p.Listen)
	if err != nil {
		t.Fatalf("link proxy address %q: %v", p.Listen, err)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		t.Fatalf("link proxy port %q: %v", port, err)
	}
	return &SlowLink{Addr: p.Listen, Host: host, Port: n, proxy: p}
}

func addToxic(t testing.TB, p *toxiproxy.Proxy, stream, kind string, attrs map[string]int64) {
	t.Helper()
	body, err := json.Marshal(map[string]any{"name": kind + "_" + stream, "type": kind, "stream": stream, "attributes": attrs})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Toxics.AddToxicJson(bytes.NewReader(body)); err != nil {
		t.Fatalf("add %s toxic (%s) to link proxy: %v", kind, stream, err)
	}
}

// Through returns a copy of h's connection details that dials it through
// the link: a known_hosts file trusting h's key at the link's address, and
// the link's port.
func (h *Host) Through(t testing.TB, l *SlowLink) *Route {
	t.Helper()
	known := fmt.Sprintf("%s/known_hosts-%d", t.TempDir(), l.Port)
	line := knownhosts.Line([]string{l.Addr}, h.HostKey) + "\n"
	if err := os.WriteFile(known, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	return &Route{Addr: l.Host, Port: l.Port, User: h.User, KnownHostsFile: known, IdentityFile: h.IdentityFile}
}

// Direct returns h's own connection details, without a link.
func (h *Host) Direct() *Route {
	return &Route{Addr: h.Addr, Port: h.Port, User: h.User, KnownHostsFile: h.KnownHostsFile, IdentityFile: h.IdentityFile}
}

// Route is how a client reaches a host: directly or through a Link.
type Route struct {
	Addr           string
	Port           int
	User           string
	KnownHostsFile string
	IdentityFile   string
}

// Target is "user@addr:port" for remote.DialSSH and stagecoach.yml.
func (r *Route) Target() string {
	return fmt.Sprintf("%s@%s", r.User, net.JoinHostPort(r.Addr, strconv.Itoa(r.Port)))
}

// OpenSSHArgs are the OpenSSH client's options for this route, as
// Host.OpenSSHArgs.
func (r *Route) OpenSSHArgs() []string {
	return openSSHArgs(r.IdentityFile, r.KnownHostsFile, r.Port)
}
