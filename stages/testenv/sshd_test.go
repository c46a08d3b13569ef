package testenv_test

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/testenv"
)

// TestSeveralHosts runs two servers on different loopback addresses and
// checks that killing one's connections leaves its listener and the other
// host alone.
func TestSeveralHosts(t *testing.T) {
	a := testenv.StartSSHD(t)
	b := testenv.StartSSHD(t, testenv.WithAddr("127.0.0.2"))
	if a.Addr == b.Addr || !strings.HasPrefix(b.Target(), b.User+"@127.0.0.2:") {
		t.Fatalf("targets %s and %s", a.Target(), b.Target())
	}
	ctx := context.Background()
	ra, rb := a.Dial(t), b.Dial(t)
	res, err := rb.Run(ctx, remote.Script("whoami", `echo "$SSH_CONNECTION"`))
	if err != nil || !strings.Contains(string(res.Stdout), "127.0.0.2 "+strconv.Itoa(b.Port)) {
		t.Fatalf("second host: %q, %v", res.Stdout, err)
	}

	b.KillConnections()
	if _, err := rb.Run(ctx, remote.Cmd("true", "true")); err == nil {
		t.Error("command on a killed connection succeeded")
	}
	if _, err := ra.Run(ctx, remote.Cmd("true", "true")); err != nil {
		t.Errorf("other host affected: %v", err)
	}
	if _, err := b.Dial(t).Run(ctx, remote.Cmd("true", "true")); err != nil {
		t.Errorf("listener gone after KillConnections: %v", err)
	}
	if n := b.AcceptedLogins(); n != 2 {
		t.Errorf("%d logins logged, want 2", n)
	}
}
