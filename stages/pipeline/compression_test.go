package pipeline

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stagecoach/stagecoach/stages/archive"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/run/runtest"
	"github.com/stagecoach/stagecoach/stages/testenv"
)

// TestDeployCompression: a large release goes to hosts that have zstd as
// a zstd archive, a small change as gzip; both stage and verify.
func TestDeployCompression(t *testing.T) {
	t.Parallel()
	testenv.RequireTool(t, "zstd", "apt-get install zstd")
	e := runtest.New(t, runtest.Options{Hosts: 2})
	big := make([]byte, 9<<20)
	rand.NewChaCha8([32]byte{2}).Read(big)
	e.Write(t, "site/big.bin", string(big))
	e.Commit(t, "big")
	for _, c := range []struct {
		name string
		want archive.Compression
	}{{"first deploy", archive.Zstd}, {"small change", archive.Gzip}} {
		if c.want == archive.Gzip {
			e.Write(t, "site/index.html", "<h1>small</h1>\n")
			e.Commit(t, "small")
		}
		r, err := deploy(context.Background(), t, e, run.Options{})
		if err != nil {
			t.Fatalf("%s: deploy: %v\n%s", c.name, err, e.Log)
		}
		if got := r.Packaged.Manifest.Archive.Codec(); got != c.want || !strings.HasSuffix(r.Packaged.ArchivePath, c.want.Ext()) {
			t.Errorf("%s: archive %s, %s; want %s", c.name, got, r.Packaged.ArchivePath, c.want)
		}
		assertLive(t, e, r.Plan.Release)
		assertIntact(t, e, r.Plan.Release)
	}
}
