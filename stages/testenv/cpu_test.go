package testenv_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/testenv"
)

// TestServerCPU checks that a server's CPU counts the work of the
// commands run over its connections: a fixed amount (hashing 200 MB,
// a good deal more than 50 ms on any machine, however loaded), done in a
// process that outlives its parent, as setsid -f's child does, when the
// server has a cgroup, else in a child the shell waits for.
func TestServerCPU(t *testing.T) {
	h := testenv.StartSSHD(t)
	work := "head -c 200000000 /dev/zero | sha256sum >/dev/null"
	script := work
	if strings.HasPrefix(h.CPUAccounting(), "cgroup") {
		script = `d=$(mktemp -d); setsid -f sh -c '` + work + `; touch "$1/done"' sh "$d"
while [ ! -e "$d/done" ]; do sleep 0.05; done; rm -rf "$d"`
	}
	before := h.CPU()
	r := h.Dial(t)
	if _, err := r.Run(context.Background(), remote.Script("work", script)); err != nil {
		t.Fatal(err)
	}
	r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	if got := h.CPU() - before; got < 50*time.Millisecond {
		t.Errorf("server CPU grew by %s (%s), want the hashing's share", got, h.CPUAccounting())
	}
}
