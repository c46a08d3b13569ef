package testenv

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
)

const ipHint = "apt-get install -y iproute2"

// Netns is a network namespace the test made: it has only the links the
// test gives it, so its servers are reachable from nowhere else. It is
// deleted when the test ends.
type Netns struct {
	Name string
}

var netnsSeq atomic.Int64

// NewNetns creates an empty network namespace with loopback up. It needs
// root and ip (iproute2): without them the test fails under CI and is
// skipped elsewhere.
func NewNetns(t testing.TB) *Netns {
	t.Helper()
	skipShort(t, "servers in network namespaces")
	RequireTool(t, "ip", ipHint)
	if os.Geteuid() != 0 {
		missing(t, "network namespaces need root")
	}
	ns := &Netns{Name: fmt.Sprintf("stagecoach-%d-%d", os.Getpid(), netnsSeq.Add(1))}
	ip(t, "netns", "add", ns.Name)
	// Registered before anything runs in it, so it runs last: the servers
	// in it are stopped by then, and deleting it removes its links.
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns.Name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns.Name, err, out)
		}
	})
	ip(t, "-n", ns.Name, "link", "set", "lo", "up")
	return ns
}

// Run runs a command in the namespace and returns its combined output and
// error.
func (ns *Netns) Run(name string, args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns.Name, name}, args...)...).CombinedOutput()
	return string(out), err
}

// Link joins namespaces a and b by a veth pair, the end in a with address
// addrA and the one in b with addrB (CIDR, e.g. 10.0.1.1/24), and returns
// the two ends' device names.
func Link(t testing.TB, a, b *Netns, addrA, addrB string) (devA, devB string) {
	t.Helper()
	n := netnsSeq.Add(1)
	nameA, nameB := fmt.Sprintf("sc%da", n), fmt.Sprintf("sc%db", n)
	ip(t, "link", "add", nameA, "netns", a.Name, "type", "veth", "peer", "name", nameB, "netns", b.Name)
	for _, end := range []struct{ ns, dev, addr string }{{a.Name, nameA, addrA}, {b.Name, nameB, addrB}} {
		ip(t, "-n", end.ns, "addr", "add", end.addr, "dev", end.dev)
		ip(t, "-n", end.ns, "link", "set", end.dev, "up")
	}
	return nameA, nameB
}

// LinkHost joins this machine's namespace to ns by a veth pair on a /30
// of 10.251.0.0/16 that no route or address of this machine overlaps, and
// returns the two addresses. Only that /30 is routed to the link, so
// nothing else of this machine's traffic goes into ns, and ns (without a
// default route) can reach nothing but this end.
func LinkHost(t testing.TB, ns *Netns) (hostAddr, nsAddr string) {
	t.Helper()
	// Tests in other processes pick subnets too: one at a time.
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "stagecoach-netns.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatalf("lock %s: %v", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)

	used := usedNets(t)
	start := rand.IntN(1 << 14)
	var subnet net.IP
	for i := 0; i < 1<<14 && subnet == nil; i++ {
		k := (start + i) % (1 << 14) // 16384 /30s in a /16
		candidate := net.IPv4(10, 251, byte(k>>6), byte(k&63)<<2).To4()
		block := &net.IPNet{IP: candidate, Mask: net.CIDRMask(30, 32)}
		if !overlaps(block, used) {
			subnet = candidate
		}
	}
	if subnet == nil {
		t.Fatal("no free /30 in 10.251.0.0/16 for a test link")
	}
	host := net.IPv4(subnet[0], subnet[1], subnet[2], subnet[3]+1).String()
	inNs := net.IPv4(subnet[0], subnet[1], subnet[2], subnet[3]+2).String()

	n := netnsSeq.Add(1)
	nameHost, nameNs := fmt.Sprintf("sc%d-%d", os.Getpid()%100000, n), fmt.Sprintf("sc%db", n)
	ip(t, "link", "add", nameHost, "type", "veth", "peer", "name", nameNs, "netns", ns.Name)
	t.Cleanup(func() { exec.Command("ip", "link", "del", nameHost).Run() }) // gone already if ns went first
	ip(t, "addr", "add", host+"/30", "dev", nameHost)
	ip(t, "link", "set", nameHost, "up")
	ip(t, "-n", ns.Name, "addr", "add", inNs+"/30", "dev", nameNs)
	ip(t, "-n", ns.Name, "link", "set", nameNs, "up")
	return host, inNs
}

// usedNets lists the IPv4 networks this machine routes or has addresses
// in, and its name servers.
func usedNets(t testing.TB) []*net.IPNet {
	t.Helper()
	var nets []*net.IPNet
	add := func(s string) {
		if !strings.Contains(s, "/") {
			s += "/32"
		}
		if _, n, err := net.ParseCIDR(s); err == nil {
			nets = append(nets, n)
		}
	}
	routes, err := exec.Command("ip", "-o", "-4", "route", "show", "table", "all").Output()
	if err != nil {
		t.Fatalf("ip route: %v", err)
	}
	for _, line := range strings.Split(string(routes), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		dest := f[0]
		switch dest {
		case "default":
			continue
		case "broadcast", "local", "unreachable", "prohibit", "blackhole", "throw", "multicast", "anycast", "unicast":
			if len(f) < 2 {
				continue
			}
			dest = f[1]
		}
		add(dest)
	}
	addrs, err := exec.Command("ip", "-o", "-4", "addr", "show").Output()
	if err != nil {
		t.Fatalf("ip addr: %v", err)
	}
	for _, line := range strings.Split(string(addrs), "\n") {
		if f := strings.Fields(line); len(f) >= 4 && f[2] == "inet" {
			add(f[3])
		}
	}
	if conf, err := os.ReadFile("/etc/resolv.conf"); err == nil {
		for _, line := range strings.Split(string(conf), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "nameserver" {
				add(f[1])
			}
		}
	}
	return nets
}

func overlaps(a *net.IPNet, nets []*net.IPNet) bool {
	for _, b := range nets {
		if a.Contains(b.IP) || b.Contains(a.IP) {
			return true
		}
	}
	return false
}

func ip(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// JumpNet is three network namespaces in a row, for ProxyJump tests: this
// machine reaches only the first bastion's, the first bastion only this
// machine and the second bastion's, and only the second bastion reaches
// the target's. None has a default route, so nothing leaves them.
type JumpNet struct {
	Bastion1, Bastion2, Target *Netns
	Bastion1Addr               string   // on the link from this machine
	Bastion2Addr               string   // on the link from bastion 1
	TargetAddrs                []string // on the link from bastion 2
}

// NewJumpNet creates the namespaces and links, with targets addresses in
// the target's namespace (for as many hosts).
func NewJumpNet(t testing.TB, targets int) *JumpNet {
	t.Helper()
	n := &JumpNet{Bastion1: NewNetns(t), Bastion2: NewNetns(t), Target: NewNetns(t)}
	_, n.Bastion1Addr = LinkHost(t, n.Bastion1)
	// Private to the namespaces: the same subnets in another test's
	// namespaces do not meet these.
	Link(t, n.Bastion1, n.Bastion2, "10.0.1.1/24", "10.0.1.2/24")
	n.Bastion2Addr = "10.0.1.2"
	_, dev := Link(t, n.Bastion2, n.Target, "10.0.2.1/24", "10.0.2.10/24")
	n.TargetAddrs = []string{"10.0.2.10"}
	for i := 1; i < targets; i++ {
		addr := fmt.Sprintf("10.0.2.%d", 10+i)
		ip(t, "-n", n.Target.Name, "addr", "add", addr+"/24", "dev", dev)
		n.TargetAddrs = append(n.TargetAddrs, addr)
	}
	return n
}

// FleetNet is a small data centre for fleet tests: each host's network
// namespace is joined by a veth pair to one bridge, in a switch namespace
// of its own, and so is this machine, on a subnet of 10.251.0.0/16 that no
// route or address of this machine overlaps. Only that subnet is routed to
// the bridge, and no namespace has a default route, so the hosts reach
// each other and this machine, and nothing else.
type FleetNet struct {
	Switch *Netns
	Hosts  []*Netns // one per host
	Addrs  []string // each host's address
	Addr   string   // this machine's address on the bridge
	ports  []string // each host's port on the bridge, in Switch
}

// NewFleetNet creates the bridge and n hosts' namespaces (at most 13).
func NewFleetNet(t testing.TB, n int) *FleetNet {
	t.Helper()
	if n < 1 || n > 13 {
		t.Fatalf("NewFleetNet: %d hosts; 1 to 13 fit its /28", n)
	}
	f := &FleetNet{Switch: NewNetns(t)}
	ip(t, "-n", f.Switch.Name, "link", "add", "br0", "type", "bridge")
	ip(t, "-n", f.Switch.Name, "link", "set", "br0", "up")

	// Tests in other processes pick subnets too: one at a time.
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "stagecoach-netns.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatalf("lock %s: %v", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	subnet := freeSubnet(t, 28)
	addr := func(i int) string { return net.IPv4(subnet[0], subnet[1], subnet[2], subnet[3]+byte(i)).String() }

	seq := netnsSeq.Add(1)
	here, port := fmt.Sprintf("sc%d-%d", os.Getpid()%100000, seq), fmt.Sprintf("sc%dp", seq)
	ip(t, "link", "add", here, "type", "veth", "peer", "name", port, "netns", f.Switch.Name)
	t.Cleanup(func() { exec.Command("ip", "link", "del", here).Run() }) // gone already if the switch went first
	f.Addr = addr(1)
	ip(t, "addr", "add", f.Addr+"/28", "dev", here)
	ip(t, "link", "set", here, "up")
	f.plug(t, port)
	for i := range n {
		ns := NewNetns(t)
		seq := netnsSeq.Add(1)
		dev, port := fmt.Sprintf("sc%dh", seq), fmt.Sprintf("sc%dp", seq)
		ip(t, "link", "add", dev, "netns", ns.Name, "type", "veth", "peer", "name", port, "netns", f.Switch.Name)
		ip(t, "-n", ns.Name, "addr", "add", addr(2+i)+"/28", "dev", dev)
		ip(t, "-n", ns.Name, "link", "set", dev, "up")
		f.plug(t, port)
		f.Hosts, f.Addrs, f.ports = append(f.Hosts, ns), append(f.Addrs, addr(2+i)), append(f.ports, port)
	}
	return f
}

// plug attaches the switch's end of a veth pair to the bridge.
func (f *FleetNet) plug(t testing.TB, port string) {
	t.Helper()
	ip(t, "-n", f.Switch.Name, "link", "set", port, "master", "br0")
	ip(t, "-n", f.Switch.Name, "link", "set", port, "up")
}

// Cut brings host i's link to the bridge down: its packets, both ways, are
// lost from then on, as when a cable is pulled; nothing tells either end.
func (f *FleetNet) Cut(t testing.TB, i int) {
	t.Helper()
	ip(t, "-n", f.Switch.Name, "link", "set", f.ports[i], "down")
}

// Mend brings host i's link up again.
func (f *FleetNet) Mend(t testing.TB, i int) {
	t.Helper()
	ip(t, "-n", f.Switch.Name, "link", "set", f.ports[i], "up")
}

// freeSubnet picks a /bits of 10.251.0.0/16 that no route, address or name
// server of this machine overlaps. The caller holds the subnet lock.
func freeSubnet(t testing.TB, bits int) net.IP {
	t.Helper()
	used := usedNets(t)
	n := 1 << (bits - 16)
	start := rand.IntN(n)
	for i := range n {
		k := uint32((start+i)%n) << (32 - bits)
		candidate := net.IPv4(10, 251, byte(k>>8), byte(k)).To4()
		if !overlaps(&net.IPNet{IP: candidate, Mask: net.CIDRMask(bits, 32)}, used) {
			return candidate
		}
	}
	t.Fatalf("no free /%d in 10.251.0.0/16 for a test network", bits)
	return nil
}
