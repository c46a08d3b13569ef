package ship_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/archive"
	"github.com/stagecoach/stagecoach/stages/fleet"
	"github.com/stagecoach/stagecoach/stages/pipeline/pipelinetest"
	"github.com/stagecoach/stagecoach/stages/run/runtest"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/ship"
)

func TestCompression(t *testing.T) {
	with := &server.Readiness{Zstd: true}
	without := &server.Readiness{}
	for _, c := range []struct {
		name  string
		hosts []*server.Readiness
		size  int64
		want  archive.Compression
	}{
		{"every host has zstd", []*server.Readiness{with, with}, 50 << 20, archive.Zstd},
		{"a small change", []*server.Readiness{with, with}, 1 << 20, archive.Gzip},
		{"one lacks it", []*server.Readiness{with, without}, 50 << 20, archive.Gzip},
		{"one not prepared", []*server.Readiness{with, nil}, 50 << 20, archive.Gzip},
		{"one host without", []*server.Readiness{without}, 50 << 20, archive.Gzip},
	} {
		var hosts []*fleet.Host
		for _, r := range c.hosts {
			hosts = append(hosts, &fleet.Host{Prepared: r})
		}
		if got := ship.Compression(hosts, c.size); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}

// TestShipRefusesZstdToAHostWithout: a zstd archive (a retry's, made for
// hosts that had zstd) is not sent to a host that has none.
func TestShipRefusesZstdToAHostWithout(t *testing.T) {
	e := runtest.New(t, runtest.Options{})
	r := pipelinetest.Packaged(t, e)
	r.Packaged.Manifest.Archive.Compression = archive.Zstd
	h := r.Hosts[0]
	h.Prepared, h.PreparedAt = &server.Readiness{Usage: server.DiskUsage{AvailKB: 1 << 30}}, time.Now()
	err := ship.To(context.Background(), h, r.Packaged, nil)
	if err == nil || !strings.Contains(err.Error(), "compressed with zstd, which "+h.Name+" does not have") {
		t.Fatalf("ship: %v", err)
	}
}
