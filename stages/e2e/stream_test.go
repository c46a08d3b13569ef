package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/archive"
	"github.com/stagecoach/stagecoach/stages/fleet"
	"github.com/stagecoach/stagecoach/stages/pipeline"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/testenv"
)

// TestStreamToHostsOneFails deploys to two hosts while the archive is
// being written, and kills one host's connection after the first megabyte:
// the other host still receives the whole archive and verifies it, the
// local package is complete, the deploy fails naming the dead host,
// neither host's current moves, and the upload is discarded.
func TestStreamToHostsOneFails(t *testing.T) {
	t.Parallel()
	hosts := []*testenv.Host{testenv.StartSSHD(t), testenv.StartSSHD(t, testenv.WithAddr("127.0.0.2"))}
	p := testenv.NewProject(t, testenv.ProjectOptions{Hosts: hosts, Root: filepath.Join(t.TempDir(), "{host}", "srv")})
	mustDeploy(t, p)
	live := make([]string, len(hosts))
	for i, h := range hosts {
		live[i] = verifyLive(t, p.HostRoot(h.Addr))
	}
	addImage(t, p, "photo.jpg", 4<<20, 3)

	r, out := openRun(t, p, pipeline.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := r.Detect(ctx); err != nil {
		t.Fatal(err)
	}
	var dead, alive *fleet.Host
	for _, h := range r.Hosts {
		if strings.Contains(h.Name, hosts[1].Addr) {
			dead = h
		} else {
			alive = h
		}
	}
	killer := &killingRunner{Runner: dead.Runner, after: 1 << 20, kill: hosts[1].KillConnections}
	dead.Runner = killer
	err := r.Deploy(ctx)
	if !killer.killed() {
		t.Fatalf("the archive upload never reached 1 MiB: %v\n%s", err, out.String())
	}
	if err == nil {
		t.Fatalf("the deploy survived a host's connection being killed\n%s", out.String())
	}
	t.Logf("deploy failed: %v", err)
	if msg := err.Error(); !strings.Contains(msg, "ship") || !strings.Contains(msg, dead.Name) || strings.Contains(msg, alive.Name) {
		t.Errorf("error does not name only the dead host %s and the ship: %v", dead.Name, err)
	}

	for i, h := range hosts {
		if got := verifyLive(t, p.HostRoot(h.Addr)); got != live[i] {
			t.Errorf("%s: current moved to %s", h.Addr, got)
		}
	}
	if r.Packaged == nil {
		t.Fatalf("no package although only the ship failed\n%s", out.String())
	}
	sum, err := archive.FileSHA256(r.Packaged.ArchivePath)
	if err != nil || sum != r.Packaged.Manifest.Archive.SHA256 {
		t.Errorf("local archive sha256 %s (%v), manifest says %s", sum, err, r.Packaged.Manifest.Archive.SHA256)
	}
	if !alive.Shipped {
		t.Errorf("%s did not get the archive while %s failed\n%s", alive.Name, dead.Name, out.String())
	}
	if alive.BytesSent < r.Packaged.Manifest.Archive.Size {
		t.Errorf("%s got %d bytes of a %d-byte archive", alive.Name, alive.BytesSent, r.Packaged.Manifest.Archive.Size)
	}
	// The failed deploy then discards the upload everywhere: it is of no
	// use to a later deploy.
	for _, h := range hosts {
		mustNotExist(t, server.Layout{Root: p.HostRoot(h.Addr)}.IncomingPath(r.Plan.Release))
	}
	for _, h := range hosts {
		mustNotExist(t, lockDir(p.HostRoot(h.Addr)))
	}
	if _, err := os.Stat(r.Packaged.ManifestPath); err != nil {
		t.Errorf("local manifest: %v", err)
	}
}
