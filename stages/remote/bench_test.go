package remote_test

import (
	"context"
	"os/exec"
	"testing"

	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/testenv"
)

// BenchmarkRunOnOpenConnection is one command as a session on the runner's
// open connection: the cost of each step of a deploy.
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
