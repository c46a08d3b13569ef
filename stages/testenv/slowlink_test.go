package testenv

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/remote"
)

// TestSlowLinkCarriesSSH dials an sshd through a slow link, with the
// route's own known_hosts, and runs a command; the link holds every round
// trip back by at least twice its latency.
func TestSlowLinkCarriesSSH(t *testing.T) {
	h := StartSSHD(t)
	link := StartSlowLink(t, h.address(), SlowLinkOptions{Latency: 20 * time.Millisecond, Mbit: 100})
	route := h.Through(t, link)
	cfg := h.SSHConfig()
	cfg.Target, cfg.KnownHostsFile = route.Target(), route.KnownHostsFile
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := remote.DialSSH(ctx, cfg)
	if err != nil {
		t.Fatalf("dial through the link: %v", err)
	}
	defer r.Close()
	start := time.Now()
	out, err := r.Run(ctx, remote.Command{Desc: "echo", Script: "echo through"})
	if err != nil {
		t.Fatalf("run through the link: %v", err)
	}
	if strings.TrimSpace(string(out.Stdout)) != "through" {
		t.Fatalf("output %q", out.Stdout)
	}
	if took := time.Since(start); took < 40*time.Millisecond {
		t.Errorf("a round trip through a link of 20 ms each way took %s", took)
	}
	if !strings.Contains(strings.Join(route.OpenSSHArgs(), " "), route.KnownHostsFile) {
		t.Errorf("OpenSSH options %v do not name the route's known_hosts", route.OpenSSHArgs())
	}
}
