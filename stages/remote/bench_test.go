package remote_test

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/testenv"
)

// BenchmarkRunOnOpenConnection is one command on the runner's open
// connection: the cost of each step of a deploy.
func BenchmarkRunOnOpenConnection(b *testing.B) {
	h := startSSHD(b)
	r := h.Dial(b)
	ctx := context.Background()
	cmd := remote.Cmd("true", "true")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := r.Run(ctx, cmd); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if c := r.Stats().Connections; c != 1 {
		b.Fatalf("%d connections", c)
	}
}

// BenchmarkRunCommand compares one command on the runner's persistent
// shell with a session of its own per command: with a login shell that
// starts at once and with one that takes 0.2s (pyenv, nvm in .bashrc),
// which a session pays for every command and the shell once; and over a
// link with 10ms of round trip, of which a session needs more.
func BenchmarkRunCommand(b *testing.B) {
	for _, env := range []struct {
		name, delay string
		rtt         time.Duration
	}{{"light", "", 0}, {"slow-0.2s", "0.2", 0}, {"light-rtt-10ms", "", 10 * time.Millisecond}} {
		for _, mode := range []struct {
			name   string
			agents int
		}{{"agent", 0}, {"session", -1}} {
			b.Run(env.name+"/"+mode.name, func(b *testing.B) {
				var h *testenv.Host
				if env.delay == "" {
					h = startSSHD(b)
				} else {
					h = startWrappedSSHD(b, wrapper{delay: env.delay}).Host
				}
				r := dialWith(b, h, func(c *remote.SSHConfig) {
					c.MaxAgents = mode.agents
					if env.rtt > 0 {
						p := startProxy(b, net.JoinHostPort(h.Addr, strconv.Itoa(h.Port)))
						p.delay.Store(int64(env.rtt / 2))
						c.Target = fmt.Sprintf("%s@127.0.0.1:%d", h.User, p.port())
						c.KnownHostsFile = knownHostsFor(b, h, p.port())
					}
				})
				ctx := context.Background()
				cmd := remote.Cmd("true", "true")
				// The shell's start is paid once per runner, not per command.
				if _, err := r.Run(ctx, cmd); err != nil {
					b.Fatal(err)
				}
				before := r.Stats().Sessions
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, err := r.Run(ctx, cmd); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				b.ReportMetric(float64(r.Stats().Sessions-before)/float64(b.N), "sessions/op")
			})
		}
	}
}

// BenchmarkOpenSSHFreshClient is the same command with the OpenSSH client
// connecting anew each time, as a shell deploy script does.
func BenchmarkOpenSSHFreshClient(b *testing.B) {
	ssh := testenv.RequireTool(b, "ssh", "apt-get install -y openssh-client")
	h := startSSHD(b)
	args := append(h.OpenSSHArgs(), h.User+"@"+h.Addr, "true")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if out, err := exec.Command(ssh, args...).CombinedOutput(); err != nil {
			b.Fatalf("ssh: %v: %s", err, out)
		}
	}
}
